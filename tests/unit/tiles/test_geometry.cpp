// Unit tests for coop-tiles' tile-space geometry: projection, clipping, simplification, winding.
#include <catch2/catch.hpp>

#include "workers/tiles/geometry.h"

using namespace coop::tiles;

namespace {
bool same(const Line& a, const Line& b) { return a == b; }
}  // namespace

TEST_CASE("lon 0 lat 0 projects to the centre of the world") {
  const auto [x, y] = lonlat_to_world(0, 0);
  CHECK(x == Approx(0.5));
  CHECK(y == Approx(0.5));
  const auto [west, north] = lonlat_to_world(-180, 90);  // clamped to the Mercator limit
  CHECK(west == Approx(0.0));
  CHECK(north == Approx(0.0).margin(1e-6));
  CHECK(north >= 0.0);
  const auto [east, south] = lonlat_to_world(179.999, -90);
  CHECK(east < 1.0);
  CHECK(south == Approx(1.0).margin(1e-6));
  CHECK(south <= 1.0);
}

TEST_CASE("world coordinates map to z1 tile coordinates") {
  // The world centre is the shared corner of all four z1 tiles.
  CHECK(to_tile(0.5, 0.5, 1, 0, 0) == Point{4096, 4096});
  CHECK(to_tile(0.5, 0.5, 1, 1, 1) == Point{0, 0});
  CHECK(to_tile(0.5, 0.5, 1, 1, 0) == Point{0, 4096});
  CHECK(to_tile(0.75, 0.25, 1, 1, 0) == Point{2048, 2048});
  CHECK(to_tile(0.25, 0.75, 1, 0, 1, 512) == Point{256, 256});
  CHECK(to_tile(0.0, 0.0, 0, 0, 0) == Point{0, 0});
  // Rounded to the nearest unit.
  CHECK(to_tile(0.5 + 0.6 / 8192, 0.5 - 0.4 / 8192, 1, 1, 0) == Point{1, 4096});
}

TEST_CASE("a line that leaves and re-enters the tile is split into two parts") {
  const Line line{{10, 10}, {10, 200}, {50, 200}, {50, 10}};
  const auto parts = clip_line(line, 0, 100);
  REQUIRE(parts.size() == 2);
  CHECK(same(parts[0], Line{{10, 10}, {10, 100}}));
  CHECK(same(parts[1], Line{{50, 100}, {50, 10}}));
}

TEST_CASE("line clipping interpolates crossings and keeps inside lines whole") {
  const auto crossing = clip_line({{-50, 50}, {150, 50}}, 0, 100);
  REQUIRE(crossing.size() == 1);
  CHECK(same(crossing[0], Line{{0, 50}, {100, 50}}));

  const Line inside{{1, 1}, {2, 3}, {99, 99}};
  const auto whole = clip_line(inside, 0, 100);
  REQUIRE(whole.size() == 1);
  CHECK(same(whole[0], inside));

  CHECK(clip_line({{-10, -10}, {-10, 200}}, 0, 100).empty());
  CHECK(clip_line({{5, 5}}, 0, 100).empty());
  // A line only touching a corner leaves nothing of length.
  CHECK(clip_line({{-10, 10}, {10, -10}}, 0, 100).empty());
  // Buffered square with negative minimum.
  const auto buffered = clip_line({{-200, 10}, {10, 10}}, -64, 4160);
  REQUIRE(buffered.size() == 1);
  CHECK(same(buffered[0], Line{{-64, 10}, {10, 10}}));
}

TEST_CASE("a square half outside the tile is clipped to the inside half") {
  Polygon square;
  square.outer = {{-50, 0}, {50, 0}, {50, 100}, {-50, 100}, {-50, 0}};
  const auto clipped = clip_polygon(square, 0, 100);
  REQUIRE(clipped);
  const Ring& ring = clipped->outer;
  REQUIRE(ring.size() == 5);
  CHECK(ring.front() == ring.back());
  for (const Point& p : ring) {
    CHECK(p.x >= 0);
    CHECK(p.x <= 50);
  }
  CHECK(signed_area2(ring) == 2 * 50 * 100);
}

TEST_CASE("polygon clipping drops rings that vanish") {
  Polygon p;
  p.outer = {{10, 10}, {90, 10}, {90, 90}, {10, 90}, {10, 10}};
  p.inners.push_back({{200, 200}, {210, 200}, {210, 210}, {200, 200}});  // outside entirely
  p.inners.push_back({{20, 20}, {20, 30}, {30, 30}, {30, 20}, {20, 20}});
  const auto clipped = clip_polygon(p, 0, 100);
  REQUIRE(clipped);
  CHECK(clipped->outer == p.outer);
  REQUIRE(clipped->inners.size() == 1);
  CHECK(clipped->inners[0] == p.inners[1]);

  Polygon outside;
  outside.outer = {{200, 200}, {300, 200}, {300, 300}, {200, 200}};
  CHECK_FALSE(clip_polygon(outside, 0, 100));

  // A polygon covering the whole tile becomes the tile square.
  Polygon cover;
  cover.outer = {{-1000, -1000}, {1000, -1000}, {1000, 1000}, {-1000, 1000}, {-1000, -1000}};
  const auto full = clip_polygon(cover, 0, 100);
  REQUIRE(full);
  CHECK(signed_area2(full->outer) == 2 * 100 * 100);
}

TEST_CASE("Douglas-Peucker flattens a small zig-zag and keeps a large one") {
  const Line zigzag{{0, 0}, {10, 1}, {20, 0}, {30, 1}, {40, 0}};
  CHECK(same(simplify(zigzag, 2.0), Line{{0, 0}, {40, 0}}));
  CHECK(same(simplify(zigzag, 0.5), zigzag));

  const Line spikes{{0, 0}, {10, 26}, {20, 50}, {30, 24}, {40, 0}};
  CHECK(same(simplify(spikes, 2.0), Line{{0, 0}, {20, 50}, {40, 0}}));
}

TEST_CASE("simplify_ring keeps rings closed and drops rings that collapse") {
  const Ring square{{0, 0}, {50, 1}, {100, 0}, {100, 100}, {0, 100}, {0, 0}};
  const Ring simplified = simplify_ring(square, 2.0);
  REQUIRE(simplified.size() == 5);
  CHECK(simplified.front() == simplified.back());
  CHECK(simplify_ring({{0, 0}, {10, 1}, {20, 0}, {10, -1}, {0, 0}}, 5.0).empty());
}

TEST_CASE("remove_repeated_points drops consecutive duplicates only") {
  Line line{{1, 1}, {1, 1}, {2, 2}, {1, 1}, {1, 1}};
  remove_repeated_points(line);
  CHECK(same(line, Line{{1, 1}, {2, 2}, {1, 1}}));
}

TEST_CASE("signed area is positive for rings clockwise on screen (y down)") {
  // (0,0) -> (10,0) -> (10,10) -> (0,10): right, then down: clockwise with y down.
  CHECK(signed_area2({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}}) == 200);
  CHECK(signed_area2({{0, 0}, {10, 0}, {10, 10}, {0, 10}}) == 200);
  CHECK(signed_area2({{0, 0}, {0, 10}, {10, 10}, {10, 0}, {0, 0}}) == -200);
}

TEST_CASE("orient_for_mvt fixes a counter-clockwise exterior and a clockwise hole") {
  Polygon p;
  p.outer = {{0, 0}, {0, 100}, {100, 100}, {100, 0}, {0, 0}};          // area < 0
  p.inners.push_back({{20, 20}, {40, 20}, {40, 40}, {20, 40}, {20, 20}});  // area > 0
  p.inners.push_back({{50, 50}, {60, 60}, {70, 70}, {50, 50}});            // zero area
  REQUIRE(signed_area2(p.outer) < 0);
  REQUIRE(signed_area2(p.inners[0]) > 0);
  orient_for_mvt(p);
  CHECK(signed_area2(p.outer) == 20000);
  REQUIRE(p.inners.size() == 1);
  CHECK(signed_area2(p.inners[0]) == -800);

  Polygon flat;
  flat.outer = {{0, 0}, {10, 10}, {20, 20}, {0, 0}};
  flat.inners.push_back({{1, 1}, {2, 1}, {2, 2}, {1, 1}});
  orient_for_mvt(flat);
  CHECK(flat.outer.empty());
  CHECK(flat.inners.empty());
}
