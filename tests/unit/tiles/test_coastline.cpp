// Unit tests for the sea assembled from coastline stretches: which side is sea, islands as
// holes, stretches joined by their node ids, ends short of the box drawn out to it.
#include <catch2/catch.hpp>

#include <cmath>

#include "workers/tiles/coastline.h"

using namespace coop::tiles;

namespace {

// The box of these tests: 10 x 10, y down as in world coordinates.
const WorldBox kBox{0, 0, 10, 10};

double ring_area(const std::vector<WorldPoint>& ring) {
  double sum = 0;
  for (std::size_t i = 0; i + 1 < ring.size(); ++i) sum += ring[i].x * ring[i + 1].y - ring[i + 1].x * ring[i].y;
  return std::abs(sum) / 2;
}

// Sea area: exteriors minus holes.
double sea_area(const std::vector<WaterPolygon>& polygons) {
  double area = 0;
  for (const auto& polygon : polygons)
    for (std::size_t i = 0; i < polygon.rings.size(); ++i) area += (i == 0 ? 1 : -1) * ring_area(polygon.rings[i]);
  return area;
}

bool in_ring(const std::vector<WorldPoint>& ring, WorldPoint p) {
  bool in = false;
  for (std::size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++)
    if ((ring[i].y > p.y) != (ring[j].y > p.y) &&
        p.x < (ring[j].x - ring[i].x) * (p.y - ring[i].y) / (ring[j].y - ring[i].y) + ring[i].x)
      in = !in;
  return in;
}

bool is_sea(const std::vector<WaterPolygon>& polygons, WorldPoint p) {
  for (const auto& polygon : polygons) {
    if (!in_ring(polygon.rings[0], p)) continue;
    bool in_hole = false;
    for (std::size_t i = 1; i < polygon.rings.size(); ++i) in_hole = in_hole || in_ring(polygon.rings[i], p);
    if (!in_hole) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a coast running east has land to its north and sea to its south") {
  // Land is on the left of a coastline's direction: heading east, left is north (smaller y).
  CoastlineReport report;
  const auto sea = assemble_sea({{1, 2, {{-1, 5}, {11, 5}}}}, kBox, report);
  REQUIRE(sea.size() == 1);
  CHECK(sea_area(sea) == Approx(50));
  CHECK(is_sea(sea, {5, 8}));
  CHECK_FALSE(is_sea(sea, {5, 2}));
  CHECK(report.pieces == 1);
  CHECK(report.ends_extended == 0);
  CHECK(report.summary().find("cut by the extract's edge, closed along it") != std::string::npos);
}

TEST_CASE("the same coast running west puts the sea to the north") {
  CoastlineReport report;
  const auto sea = assemble_sea({{1, 2, {{11, 5}, {-1, 5}}}}, kBox, report);
  CHECK(sea_area(sea) == Approx(50));
  CHECK(is_sea(sea, {5, 2}));
  CHECK_FALSE(is_sea(sea, {5, 8}));
}

TEST_CASE("stretches join by their node ids, in any order") {
  CoastlineReport report;
  // A headland of the northern land reaching south: in from the west, down, across, up, out east.
  const auto sea = assemble_sea({{3, 4, {{6, 5}, {6, 2}, {11, 2}}},
                                 {1, 2, {{-1, 2}, {4, 2}, {4, 5}}},
                                 {2, 3, {{4, 5}, {6, 5}}}},
                                kBox, report);
  REQUIRE(sea.size() == 1);
  CHECK(report.pieces == 1);  // one chain after joining
  // Land north of y=2 and in the headland (x 4..6, y 2..5): 10*8 - 2*3 of sea.
  CHECK(sea_area(sea) == Approx(74));
  CHECK_FALSE(is_sea(sea, {5, 4}));
  CHECK(is_sea(sea, {2, 4}));
}

TEST_CASE("an island in an extract with no mainland makes the whole box sea around it") {
  // Counter-clockwise on a map (y up) is land inside: listed here in y-down coordinates.
  CoastlineReport report;
  const auto sea = assemble_sea({{7, 7, {{4, 6}, {6, 6}, {6, 4}, {4, 4}, {4, 6}}}}, kBox, report);
  REQUIRE(sea.size() == 1);
  CHECK(sea[0].rings.size() == 2);
  CHECK(sea_area(sea) == Approx(96));
  CHECK(report.box_is_sea);
  CHECK(report.rings == 1);
  CHECK(is_sea(sea, {1, 1}));
  CHECK_FALSE(is_sea(sea, {5, 5}));
}

TEST_CASE("an island off a coast becomes a hole in that coast's sea") {
  CoastlineReport report;
  const auto sea = assemble_sea({{1, 2, {{-1, 3}, {11, 3}}}, {7, 7, {{4, 8}, {6, 8}, {6, 6}, {4, 6}, {4, 8}}}},
                                kBox, report);
  REQUIRE(sea.size() == 1);
  CHECK(sea[0].rings.size() == 2);
  CHECK(sea_area(sea) == Approx(70 - 4));
  CHECK_FALSE(report.box_is_sea);
}

TEST_CASE("a coast that stops inside the extract is drawn out to the nearest edge and reported") {
  // The extract left out the nodes past x=8: the stretch ends there, joined to nothing.
  CoastlineReport report;
  const auto sea = assemble_sea({{1, 0, {{-1, 5}, {8, 5}}}}, kBox, report);
  REQUIRE(sea.size() == 1);
  CHECK(report.ends_extended == 1);
  CHECK(sea_area(sea) == Approx(50));
  CHECK(report.summary().find("1 end short of the edge drawn out to it") != std::string::npos);
}

TEST_CASE("a coast that leaves and comes back gives two sea polygons or one, as the shape says") {
  // Out through the south edge and back in: a headland of land reaching south splits the sea.
  CoastlineReport report;
  const auto sea =
      assemble_sea({{1, 2, {{-1, 5}, {3, 5}, {3, 11}}}, {3, 4, {{7, 11}, {7, 5}, {11, 5}}}}, kBox, report);
  CHECK(sea.size() == 2);
  CHECK(report.pieces == 2);
  CHECK(sea_area(sea) == Approx(15 + 15));
  CHECK(is_sea(sea, {1, 8}));
  CHECK(is_sea(sea, {9, 8}));
  CHECK_FALSE(is_sea(sea, {5, 8}));
}

TEST_CASE("no coastline, no sea; a coastline wholly outside the box changes nothing") {
  CoastlineReport report;
  CHECK(assemble_sea({}, kBox, report).empty());
  CHECK(report.summary().empty());
  CHECK(assemble_sea({{1, 2, {{20, 20}, {30, 20}}}}, kBox, report).empty());
}

TEST_CASE("a broken stub that contradicts the coast is left out instead of flooding the land") {
  // The coast runs north along x=6 (land to its west, sea to its east). A stub, cut by the
  // extract, starts just above the south edge at x=4.5 and leaves south at x=4: drawn out to
  // the edge, its end and the coast's would meet the south edge as two exits in a row (as
  // Monaco's extract does at Fontvieille), and the walk from it would go round the whole box.
  CoastlineReport report;
  const auto sea = assemble_sea({{1, 2, {{6, 11}, {6, -1}}}, {0, 9, {{4.5, 9.9}, {4, 9.9}, {4, 11}}}}, kBox, report);
  CHECK(report.dropped == 1);
  CHECK(report.summary().find("1 broken piece that contradicted the rest left out") != std::string::npos);
  REQUIRE(sea.size() == 1);
  CHECK(sea_area(sea) == Approx(40));
  CHECK(is_sea(sea, {8, 5}));
  CHECK_FALSE(is_sea(sea, {2, 5}));
}
