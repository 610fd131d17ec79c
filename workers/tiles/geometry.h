// Tile-space geometry for coop-tiles: Web Mercator projection, clipping to a buffered tile,
// Douglas–Peucker simplification and MVT 2.1 ring winding.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace coop::tiles {

// Integer tile coordinates: x grows right, y grows down (MVT 2.1 4.3.1).
struct Point {
  int64_t x, y;
  friend bool operator==(const Point&, const Point&) = default;
};

using Line = std::vector<Point>;
// Rings are closed: the last point repeats the first.
using Ring = std::vector<Point>;

struct Polygon {
  Ring outer;
  std::vector<Ring> inners;
};

// Latitudes beyond this are outside the square Web Mercator world.
constexpr double kMaxMercatorLatitude = 85.0511;

// Web Mercator world coordinates in [0,1) x [0,1), y down. Latitude is clamped to
// ±kMaxMercatorLatitude; longitude is taken as given (180 maps to x = 1).
std::pair<double, double> lonlat_to_world(double lon, double lat);

// World coordinates to the integer coordinates of tile z/tx/ty, rounded to the nearest unit.
// Points outside the tile get coordinates outside [0, extent].
Point to_tile(double wx, double wy, int z, int tx, int ty, int extent = 4096);

// Clips a polyline to the square [min,max]² (Liang–Barsky per segment). A line that leaves and
// re-enters the square becomes several lines. Returned lines have at least two distinct points
// and no consecutive repeats.
std::vector<Line> clip_line(const Line& line, int64_t min, int64_t max);

// Clips each ring to the square [min,max]² (Sutherland–Hodgman). Rings that vanish (fewer than
// three distinct points left) are dropped; nullopt when the outer ring vanishes. Output rings
// are closed and keep their input winding.
std::optional<Polygon> clip_polygon(const Polygon& polygon, int64_t min, int64_t max);

// Douglas–Peucker with the given tolerance in tile units; always keeps both endpoints.
Line simplify(const Line& line, double tolerance);

// Douglas–Peucker on a ring; the result is closed, or empty when fewer than 4 points
// (3 distinct plus the closing one) remain.
Ring simplify_ring(const Ring& ring, double tolerance);

// Drops consecutive duplicate points.
void remove_repeated_points(Line& line);

// Twice the signed area by the surveyor's (shoelace) formula, sum of x[i]*y[i+1] - x[i+1]*y[i],
// on the raw tile coordinates. Works for closed and open rings alike.
int64_t signed_area2(const Ring& ring);

// MVT 2.1 4.3.4.4: the exterior ring gets a positive signed_area2 (clockwise on screen, since y
// grows down), interior rings a negative one. Rings with zero area are dropped; if the exterior
// has zero area the whole polygon is cleared (outer and inners empty).
void orient_for_mvt(Polygon& polygon);

}  // namespace coop::tiles
