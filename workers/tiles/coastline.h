// The sea from the OSM coastline, as osmcoastline makes it: natural=coastline ways joined end
// to end into chains and rings (land lies to the left of a coastline's direction, water to its
// right), clipped to the extract's box, and the pieces that the box cuts closed along the box
// into water polygons; islands become holes. Pure geometry, no osmium: the importer feeds it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coop::tiles {

// World coordinates as lonlat_to_world gives them: [0,1) x [0,1), y down.
struct WorldPoint {
  double x, y;
  friend bool operator==(const WorldPoint&, const WorldPoint&) = default;
};

// One stretch of coastline: a way, or the part of one between nodes the extract left out.
// first and last are the OSM node ids at its ends, by which stretches join; 0 for an end that
// cannot join anything (a node the extract left out was next to it).
struct CoastSegment {
  int64_t first = 0, last = 0;
  std::vector<WorldPoint> points;
};

struct WorldBox {
  double minx, miny, maxx, maxy;  // y down: miny is the north edge
};

// What the assembly found and what it mended, for the import's report.
struct CoastlineReport {
  uint64_t segments = 0;
  uint64_t rings = 0;              // closed coastlines (islands, or a coast that closes)
  uint64_t pieces = 0;             // stretches the box cuts, closed along the box's edge
  uint64_t ends_extended = 0;      // ends that stop short of the box, drawn out to its edge
  uint64_t dropped = 0;            // drawn-out pieces that contradicted the others, left out
  uint64_t unmatched = 0;          // box walks that found no consistent partner (bad data)
  uint64_t water_polygons = 0;
  bool box_is_sea = false;         // no coast crosses the box and islands say it is sea
  std::string summary() const;     // one line for the import's output; empty without coastline
};

// A polygon: rings[0] is the exterior, the rest are holes; every ring closed (last == first).
struct WaterPolygon {
  std::vector<std::vector<WorldPoint>> rings;
};

// Assembles the sea inside box. Segments outside the box are ignored; ends inside the box that
// join nothing are extended straight to the nearest edge (and counted).
std::vector<WaterPolygon> assemble_sea(std::vector<CoastSegment> segments, const WorldBox& box,
                                       CoastlineReport& report);

}  // namespace coop::tiles
