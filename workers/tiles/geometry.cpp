// Tile-space geometry for coop-tiles: projection, clipping, simplification and ring winding.
#include "workers/tiles/geometry.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace coop::tiles {

std::pair<double, double> lonlat_to_world(double lon, double lat) {
  lat = std::clamp(lat, -kMaxMercatorLatitude, kMaxMercatorLatitude);
  const double phi = lat * std::numbers::pi / 180.0;
  const double x = (lon + 180.0) / 360.0;
  const double y = (1.0 - std::log(std::tan(phi) + 1.0 / std::cos(phi)) / std::numbers::pi) / 2.0;
  return {x, y};
}

Point to_tile(double wx, double wy, int z, int tx, int ty, int extent) {
  const double tiles = std::ldexp(1.0, z);
  return {std::llround((wx * tiles - tx) * extent), std::llround((wy * tiles - ty) * extent)};
}

void remove_repeated_points(Line& line) {
  line.erase(std::unique(line.begin(), line.end()), line.end());
}

namespace {

Point lerp(const Point& a, const Point& b, double t) {
  return {a.x + std::llround(static_cast<double>(b.x - a.x) * t),
          a.y + std::llround(static_cast<double>(b.y - a.y) * t)};
}

// Liang–Barsky: the parameter interval [t0,t1] of segment a->b inside the square, if any.
std::optional<std::pair<double, double>> clip_segment(const Point& a, const Point& b, int64_t min,
                                                       int64_t max) {
  const double dx = static_cast<double>(b.x - a.x);
  const double dy = static_cast<double>(b.y - a.y);
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {static_cast<double>(a.x - min), static_cast<double>(max - a.x),
                       static_cast<double>(a.y - min), static_cast<double>(max - a.y)};
  double t0 = 0.0, t1 = 1.0;
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0.0) {
      if (q[i] < 0.0) return std::nullopt;  // parallel to this edge and outside it
      continue;
    }
    const double r = q[i] / p[i];
    if (p[i] < 0.0) {
      t0 = std::max(t0, r);
    } else {
      t1 = std::min(t1, r);
    }
    if (t0 > t1) return std::nullopt;
  }
  return std::pair{t0, t1};
}

void flush_part(Line& part, std::vector<Line>& out) {
  remove_repeated_points(part);
  if (part.size() >= 2) out.push_back(std::move(part));
  part.clear();
}

// One Sutherland–Hodgman pass against a single edge. axis 0 is x, 1 is y; keep_above selects
// the side (coordinate >= bound, else coordinate <= bound).
std::vector<Point> clip_against_edge(const std::vector<Point>& in, int axis, int64_t bound,
                                     bool keep_above) {
  auto coord = [axis](const Point& p) { return axis == 0 ? p.x : p.y; };
  auto inside = [&](const Point& p) { return keep_above ? coord(p) >= bound : coord(p) <= bound; };
  auto intersect = [&](const Point& a, const Point& b) {
    const double t = static_cast<double>(bound - coord(a)) / static_cast<double>(coord(b) - coord(a));
    Point p = lerp(a, b, t);
    (axis == 0 ? p.x : p.y) = bound;  // exact on the clipping edge despite rounding
    return p;
  };
  std::vector<Point> out;
  out.reserve(in.size() + 4);
  for (size_t i = 0; i < in.size(); ++i) {
    const Point& cur = in[i];
    const Point& prev = in[(i + in.size() - 1) % in.size()];
    if (inside(cur)) {
      if (!inside(prev)) out.push_back(intersect(prev, cur));
      out.push_back(cur);
    } else if (inside(prev)) {
      out.push_back(intersect(prev, cur));
    }
  }
  return out;
}

// A closed ring clipped to the square, or an empty ring when it vanishes.
Ring clip_ring(const Ring& ring, int64_t min, int64_t max) {
  std::vector<Point> open(ring.begin(), ring.end());
  if (open.size() >= 2 && open.front() == open.back()) open.pop_back();
  if (open.empty()) return {};

  int64_t min_x = open[0].x, max_x = open[0].x, min_y = open[0].y, max_y = open[0].y;
  for (const Point& p : open) {
    min_x = std::min(min_x, p.x), max_x = std::max(max_x, p.x);
    min_y = std::min(min_y, p.y), max_y = std::max(max_y, p.y);
  }
  if (max_x < min || min_x > max || max_y < min || min_y > max) return {};
  const bool inside = min_x >= min && max_x <= max && min_y >= min && max_y <= max;
  if (!inside) {
    open = clip_against_edge(open, 0, min, true);
    open = clip_against_edge(open, 0, max, false);
    open = clip_against_edge(open, 1, min, true);
    open = clip_against_edge(open, 1, max, false);
  }
  remove_repeated_points(open);
  while (open.size() >= 2 && open.front() == open.back()) open.pop_back();
  if (open.size() < 3) return {};
  open.push_back(open.front());
  return open;
}

// Squared distance from p to the segment a-b.
double segment_distance2(const Point& p, const Point& a, const Point& b) {
  const double dx = static_cast<double>(b.x - a.x);
  const double dy = static_cast<double>(b.y - a.y);
  double px = static_cast<double>(p.x - a.x);
  double py = static_cast<double>(p.y - a.y);
  const double length2 = dx * dx + dy * dy;
  if (length2 > 0.0) {
    const double t = std::clamp((px * dx + py * dy) / length2, 0.0, 1.0);
    px -= t * dx;
    py -= t * dy;
  }
  return px * px + py * py;
}

}  // namespace

std::vector<Line> clip_line(const Line& line, int64_t min, int64_t max) {
  std::vector<Line> out;
  Line part;
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    const Point& a = line[i];
    const Point& b = line[i + 1];
    const auto range = clip_segment(a, b, min, max);
    if (!range) {
      flush_part(part, out);
      continue;
    }
    const auto [t0, t1] = *range;
    // Endpoints inside the square are kept exactly; only crossings are interpolated.
    const Point start = t0 == 0.0 ? a : lerp(a, b, t0);
    const Point end = t1 == 1.0 ? b : lerp(a, b, t1);
    if (t0 > 0.0) flush_part(part, out);  // re-entering: a new part begins
    if (part.empty()) part.push_back(start);
    part.push_back(end);
    if (t1 < 1.0) flush_part(part, out);  // leaving the square
  }
  flush_part(part, out);
  return out;
}

std::optional<Polygon> clip_polygon(const Polygon& polygon, int64_t min, int64_t max) {
  Polygon out;
  out.outer = clip_ring(polygon.outer, min, max);
  if (out.outer.empty()) return std::nullopt;
  for (const Ring& inner : polygon.inners) {
    Ring clipped = clip_ring(inner, min, max);
    if (!clipped.empty()) out.inners.push_back(std::move(clipped));
  }
  return out;
}

Line simplify(const Line& line, double tolerance) {
  if (line.size() < 3 || tolerance <= 0.0) return line;
  const double tolerance2 = tolerance * tolerance;
  std::vector<bool> keep(line.size(), false);
  keep.front() = keep.back() = true;
  std::vector<std::pair<size_t, size_t>> ranges{{0, line.size() - 1}};
  while (!ranges.empty()) {
    const auto [first, last] = ranges.back();
    ranges.pop_back();
    double farthest2 = -1.0;
    size_t farthest = first;
    for (size_t i = first + 1; i < last; ++i) {
      const double d2 = segment_distance2(line[i], line[first], line[last]);
      if (d2 > farthest2) farthest2 = d2, farthest = i;
    }
    if (farthest2 > tolerance2) {
      keep[farthest] = true;
      ranges.emplace_back(first, farthest);
      ranges.emplace_back(farthest, last);
    }
  }
  Line out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (keep[i]) out.push_back(line[i]);
  }
  return out;
}

Ring simplify_ring(const Ring& ring, double tolerance) {
  Ring closed = ring;
  remove_repeated_points(closed);
  if (closed.empty()) return {};
  if (closed.front() != closed.back()) closed.push_back(closed.front());
  // With first == last the first split is at the point farthest from the start, so the ring
  // is never reduced to its (degenerate) closing segment.
  Ring out = simplify(closed, tolerance);
  if (out.size() < 4) return {};
  return out;
}

int64_t signed_area2(const Ring& ring) {
  if (ring.size() < 3) return 0;
  int64_t sum = 0;
  for (size_t i = 0; i < ring.size(); ++i) {
    const Point& a = ring[i];
    const Point& b = ring[(i + 1) % ring.size()];
    sum += a.x * b.y - b.x * a.y;
  }
  return sum;
}

void orient_for_mvt(Polygon& polygon) {
  const int64_t outer_area = signed_area2(polygon.outer);
  if (outer_area == 0) {
    polygon.outer.clear();
    polygon.inners.clear();
    return;
  }
  // MVT 2.1 4.3.4.4: exterior positive area, interior negative, in tile coordinates.
  if (outer_area < 0) std::reverse(polygon.outer.begin(), polygon.outer.end());
  std::erase_if(polygon.inners, [](const Ring& r) { return signed_area2(r) == 0; });
  for (Ring& inner : polygon.inners) {
    if (signed_area2(inner) > 0) std::reverse(inner.begin(), inner.end());
  }
}

}  // namespace coop::tiles
