// Sea polygons from coastline ways. The OSM convention (wiki: Tag:natural=coastline) puts land to
// the left of a coastline's direction; reversed, every coastline has the sea to its left, and a
// region to the left of its boundary is what a counter-clockwise ring encloses. So: reverse,
// chain, clip to the box, and walk: from where a piece leaves the box, follow the box's edge
// counter-clockwise (keeping the sea on the left) to where the next piece enters, and so on until
// the ring closes. Closed coastlines inside the box are islands (holes) or, the other way round,
// enclosed water. The geometry is done in a y-up frame so "counter-clockwise" means what it says.
#include "workers/tiles/coastline.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <unordered_map>

namespace coop::tiles {

namespace {

struct P {
  double x, y;
  friend bool operator==(const P&, const P&) = default;
};

using Chain = std::vector<P>;

// The box in the y-up frame: x0 west, x1 east, y0 south, y1 north.
struct Frame {
  double x0, y0, x1, y1;
};

P up(const WorldPoint& w) { return {w.x, -w.y}; }
WorldPoint down(const P& p) { return {p.x, -p.y}; }

bool inside(const Frame& b, const P& p) { return p.x >= b.x0 && p.x <= b.x1 && p.y >= b.y0 && p.y <= b.y1; }
bool on_edge(const Frame& b, const P& p) {
  return inside(b, p) && (p.x == b.x0 || p.x == b.x1 || p.y == b.y0 || p.y == b.y1);
}

// A point on the edge as a distance along it, counter-clockwise from the south-west corner:
// south edge [0,1), east [1,2), north [2,3), west [3,4).
double edge_position(const Frame& b, const P& p) {
  const double w = b.x1 - b.x0, h = b.y1 - b.y0;
  if (p.y == b.y0 && p.x < b.x1) return (p.x - b.x0) / w;
  if (p.x == b.x1 && p.y < b.y1) return 1 + (p.y - b.y0) / h;
  if (p.y == b.y1 && p.x > b.x0) return 2 + (b.x1 - p.x) / w;
  return 3 + (b.y1 - p.y) / h;
}

P corner(const Frame& b, int k) {
  switch (k % 4) {
    case 0: return {b.x0, b.y0};
    case 1: return {b.x1, b.y0};
    case 2: return {b.x1, b.y1};
    default: return {b.x0, b.y1};
  }
}

// The nearest point on the box's edge, for an end that stops inside.
P snap_to_edge(const Frame& b, const P& p) {
  const double west = p.x - b.x0, east = b.x1 - p.x, south = p.y - b.y0, north = b.y1 - p.y;
  const double nearest = std::min({west, east, south, north});
  if (nearest == west) return {b.x0, p.y};
  if (nearest == east) return {b.x1, p.y};
  if (nearest == south) return {p.x, b.y0};
  return {p.x, b.y1};
}

double area2(const Chain& ring) {
  double sum = 0;
  for (std::size_t i = 0; i + 1 < ring.size(); ++i) sum += ring[i].x * ring[i + 1].y - ring[i + 1].x * ring[i].y;
  return sum;
}

// Even-odd test; the ring is closed.
bool contains(const Chain& ring, const P& p) {
  bool in = false;
  for (std::size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++) {
    const P& a = ring[i];
    const P& c = ring[j];
    if ((a.y > p.y) != (c.y > p.y) && p.x < (c.x - a.x) * (p.y - a.y) / (c.y - a.y) + a.x) in = !in;
  }
  return in;
}

// Liang–Barsky on each segment; points where a piece enters or leaves are put exactly on the
// edge they cross, so edge_position finds them there.
std::vector<Chain> clip(const Chain& line, const Frame& b) {
  std::vector<Chain> pieces;
  Chain current;
  for (std::size_t i = 0; i + 1 < line.size(); ++i) {
    const P a = line[i], c = line[i + 1];
    const double dx = c.x - a.x, dy = c.y - a.y;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {a.x - b.x0, b.x1 - a.x, a.y - b.y0, b.y1 - a.y};
    double t0 = 0, t1 = 1;
    int e0 = -1, e1 = -1;
    bool rejected = false;
    for (int k = 0; k < 4 && !rejected; ++k) {
      if (p[k] == 0) {
        rejected = q[k] < 0;
        continue;
      }
      const double r = q[k] / p[k];
      if (p[k] < 0) {
        if (r > t1) rejected = true;
        else if (r > t0) t0 = r, e0 = k;
      } else {
        if (r < t0) rejected = true;
        else if (r < t1) t1 = r, e1 = k;
      }
    }
    if (rejected) {
      if (current.size() >= 2) pieces.push_back(std::move(current));
      current.clear();
      continue;
    }
    auto at = [&](double t, int edge) {
      P point{a.x + t * dx, a.y + t * dy};
      point.x = std::clamp(point.x, b.x0, b.x1);
      point.y = std::clamp(point.y, b.y0, b.y1);
      if (edge == 0) point.x = b.x0;
      if (edge == 1) point.x = b.x1;
      if (edge == 2) point.y = b.y0;
      if (edge == 3) point.y = b.y1;
      return point;
    };
    const P from = t0 > 0 ? at(t0, e0) : a;
    const P to = t1 < 1 ? at(t1, e1) : c;
    if (current.empty() || !(current.back() == from)) {
      if (current.size() >= 2) pieces.push_back(std::move(current));
      current.assign(1, from);
    }
    if (!(to == current.back())) current.push_back(to);
    if (t1 < 1) {
      if (current.size() >= 2) pieces.push_back(std::move(current));
      current.clear();
    }
  }
  if (current.size() >= 2) pieces.push_back(std::move(current));
  return pieces;
}

struct Piece {
  Chain points;
  double start, end;  // edge positions
  bool extended = false;  // an end was drawn out to the edge: a guess, the first thing to doubt
  bool used = false;
};

// Along the edge, where pieces leave the box and where they enter must alternate: each walk
// from a piece's exit reaches an entry next. A broken coast drawn out to the nearest edge can
// break that (two exits in a row), and its walk would then swallow the whole box. Such guessed
// pieces are left out, the shortest first, until the rest agree. Returns how many were dropped.
uint64_t drop_contradicting(std::vector<Piece>& pieces) {
  uint64_t dropped = 0;
  while (pieces.size() >= 2) {
    struct Event {
      double at;
      std::size_t piece;
      bool entry;
    };
    std::vector<Event> events;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      events.push_back({pieces[i].start, i, true});
      events.push_back({pieces[i].end, i, false});
    }
    // At one position an exit comes before an entry: a walk may continue where it arrives.
    std::sort(events.begin(), events.end(),
              [](const Event& a, const Event& b) { return a.at != b.at ? a.at < b.at : !a.entry && b.entry; });
    std::optional<std::size_t> doubt;
    for (std::size_t k = 0; k < events.size() && !doubt; ++k) {
      const Event& a = events[k];
      const Event& b = events[(k + 1) % events.size()];
      if (a.entry != b.entry) continue;
      std::size_t pick = pieces.size();
      for (std::size_t candidate : {a.piece, b.piece})
        if (pieces[candidate].extended &&
            (pick == pieces.size() || pieces[candidate].points.size() < pieces[pick].points.size()))
          pick = candidate;
      if (pick < pieces.size()) doubt = pick;
    }
    if (!doubt) break;
    pieces.erase(pieces.begin() + static_cast<std::ptrdiff_t>(*doubt));
    ++dropped;
  }
  return dropped;
}

}  // namespace

std::string CoastlineReport::summary() const {
  if (segments == 0) return {};
  std::string text = "coastline: " + std::to_string(segments) + " stretch" + (segments == 1 ? "" : "es");
  if (rings) text += ", " + std::to_string(rings) + " closed";
  if (pieces)
    text += "; " + std::to_string(pieces) + " cut by the extract's edge, closed along it";
  if (ends_extended)
    text += "; " + std::to_string(ends_extended) + " end" + (ends_extended == 1 ? "" : "s") +
            " short of the edge drawn out to it";
  if (dropped)
    text += "; " + std::to_string(dropped) + " broken piece" + (dropped == 1 ? "" : "s") +
            " that contradicted the rest left out";
  if (unmatched) text += "; " + std::to_string(unmatched) + " that did not fit, closed where they stopped";
  if (box_is_sea) text += "; the open sea around the islands fills the extract";
  text += " -> " + std::to_string(water_polygons) + " sea polygon" + (water_polygons == 1 ? "" : "s");
  return text;
}

std::vector<WaterPolygon> assemble_sea(std::vector<CoastSegment> segments, const WorldBox& box,
                                       CoastlineReport& report) {
  report = {};
  report.segments = segments.size();
  if (segments.empty() || !(box.maxx > box.minx) || !(box.maxy > box.miny)) return {};
  const Frame frame{box.minx, -box.maxy, box.maxx, -box.miny};

  // Chain the stretches by their end nodes. A stretch that no other ends at starts a chain;
  // what is left over after those are followed is made of cycles.
  std::unordered_multimap<int64_t, std::size_t> by_first;
  std::unordered_map<int64_t, int> ending_at;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].first != 0) by_first.emplace(segments[i].first, i);
    if (segments[i].last != 0) ++ending_at[segments[i].last];
  }
  std::vector<bool> used(segments.size(), false);
  std::vector<Chain> open, closed;
  auto follow = [&](std::size_t start) {
    Chain chain;
    std::size_t at = start;
    bool ring = false;
    while (true) {
      used[at] = true;
      for (const auto& w : segments[at].points) {
        const P p = up(w);
        if (chain.empty() || !(chain.back() == p)) chain.push_back(p);
      }
      const int64_t last = segments[at].last;
      if (last == 0) break;
      if (last == segments[start].first) {
        ring = true;
        break;
      }
      std::size_t next = segments.size();
      for (auto [it, end] = by_first.equal_range(last); it != end; ++it)
        if (!used[it->second]) next = std::min(next, it->second);
      if (next == segments.size()) break;
      at = next;
    }
    if (chain.size() < 2) return;
    if (ring) {
      if (!(chain.front() == chain.back())) chain.push_back(chain.front());
      if (chain.size() >= 4) closed.push_back(std::move(chain));
    } else {
      open.push_back(std::move(chain));
    }
  };
  for (std::size_t i = 0; i < segments.size(); ++i)
    if (!used[i] && (segments[i].first == 0 || !ending_at.count(segments[i].first))) follow(i);
  for (std::size_t i = 0; i < segments.size(); ++i)
    if (!used[i]) follow(i);
  segments.clear();

  // Reversed, the sea is on the left of every chain.
  for (auto& chain : open) std::reverse(chain.begin(), chain.end());
  for (auto& ring : closed) std::reverse(ring.begin(), ring.end());

  std::vector<Piece> pieces;
  std::vector<Chain> sea_rings, islands;
  int enclosing = 0;  // +1: a coast around the box with the sea inside; -1: land inside
  auto add_pieces = [&](const Chain& line) {
    for (auto& piece : clip(line, frame)) {
      bool extended = false;
      if (!on_edge(frame, piece.front())) {
        piece.insert(piece.begin(), snap_to_edge(frame, piece.front()));
        ++report.ends_extended;
        extended = true;
      }
      if (!on_edge(frame, piece.back())) {
        piece.push_back(snap_to_edge(frame, piece.back()));
        ++report.ends_extended;
        extended = true;
      }
      const double start = edge_position(frame, piece.front()), end = edge_position(frame, piece.back());
      pieces.push_back({std::move(piece), start, end, extended});
    }
  };
  for (const auto& chain : open) add_pieces(chain);
  for (auto& ring : closed) {
    ++report.rings;
    const bool all_inside = std::all_of(ring.begin(), ring.end(), [&](const P& p) { return inside(frame, p); });
    if (all_inside) {
      (area2(ring) > 0 ? sea_rings : islands).push_back(std::move(ring));
      continue;
    }
    // Start at a point outside so that every piece the box cuts runs from edge to edge.
    const auto outside = std::find_if(ring.begin(), ring.end(), [&](const P& p) { return !inside(frame, p); });
    Chain rotated(outside, ring.end() - 1);
    rotated.insert(rotated.end(), ring.begin(), outside + 1);
    const std::size_t before = pieces.size();
    add_pieces(rotated);
    if (pieces.size() == before && contains(ring, {(frame.x0 + frame.x1) / 2, (frame.y0 + frame.y1) / 2}))
      enclosing = area2(ring) > 0 ? 1 : -1;
  }

  report.dropped = drop_contradicting(pieces);

  std::vector<Chain> outers;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].used) continue;
    ++report.pieces;
    Chain ring = pieces[i].points;
    pieces[i].used = true;
    std::size_t at = i;
    for (std::size_t guard = 0; guard <= pieces.size(); ++guard) {
      // The next piece to start counter-clockwise from where this one left the box.
      const double leaves = pieces[at].end;
      std::size_t next = pieces.size();
      double best = 5;
      for (std::size_t j = 0; j < pieces.size(); ++j) {
        if (pieces[j].used && j != i) continue;
        const double d = std::fmod(pieces[j].start - leaves + 4, 4);
        if (d < best) best = d, next = j;
      }
      if (next == pieces.size()) {
        ++report.unmatched;
        break;
      }
      // The box's corners passed on the way, in order.
      std::vector<std::pair<double, int>> corners;
      for (int k = 0; k < 4; ++k) {
        const double d = std::fmod(k - leaves + 4, 4);
        if (d > 0 && d < best) corners.emplace_back(d, k);
      }
      std::sort(corners.begin(), corners.end());
      for (const auto& [d, k] : corners) ring.push_back(corner(frame, k));
      if (next == i) break;
      ++report.pieces;
      pieces[next].used = true;
      ring.insert(ring.end(), pieces[next].points.begin(), pieces[next].points.end());
      at = next;
    }
    if (!(ring.front() == ring.back())) ring.push_back(ring.front());
    if (ring.size() >= 4 && area2(ring) != 0) outers.push_back(std::move(ring));
  }
  if (pieces.empty()) {
    const bool sea = enclosing != 0 ? enclosing > 0 : !islands.empty() && sea_rings.empty();
    if (sea) {
      outers.push_back({corner(frame, 0), corner(frame, 1), corner(frame, 2), corner(frame, 3), corner(frame, 0)});
      report.box_is_sea = true;
    }
  }
  for (auto& ring : sea_rings) outers.push_back(std::move(ring));

  // Each island becomes a hole of the smallest sea polygon around it; one on land is no hole.
  std::vector<WaterPolygon> out(outers.size());
  std::vector<double> areas(outers.size());
  for (std::size_t i = 0; i < outers.size(); ++i) areas[i] = std::abs(area2(outers[i]));
  std::vector<std::vector<Chain>> holes(outers.size());
  for (auto& island : islands) {
    std::size_t best = outers.size();
    for (std::size_t i = 0; i < outers.size(); ++i)
      if ((best == outers.size() || areas[i] < areas[best]) && contains(outers[i], island.front())) best = i;
    if (best < outers.size()) holes[best].push_back(std::move(island));
  }
  auto to_world = [](const Chain& ring) {
    std::vector<WorldPoint> points;
    points.reserve(ring.size());
    for (const auto& p : ring) points.push_back(down(p));
    return points;
  };
  for (std::size_t i = 0; i < outers.size(); ++i) {
    out[i].rings.push_back(to_world(outers[i]));
    for (const auto& hole : holes[i]) out[i].rings.push_back(to_world(hole));
  }
  report.water_polygons = out.size();
  return out;
}

}  // namespace coop::tiles
