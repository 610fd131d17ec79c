// The import: two passes over the extract (relations first, for the multipolygon manager; then
// everything, with node locations), features kept in world coordinates, then per zoom every
// feature simplified once and cut into the tiles it touches (so neighbours share one
// simplification and their seams agree), tiles encoded on several threads.
#include "workers/tiles/importer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <osmium/area/assembler.hpp>
#include <osmium/area/multipolygon_manager.hpp>
#include <osmium/handler.hpp>
#include <osmium/handler/node_locations_for_ways.hpp>
#include <osmium/index/map/flex_mem.hpp>
#include <osmium/io/pbf_input.hpp>
#include <osmium/relations/relations_manager.hpp>
#include <osmium/tags/tags_filter.hpp>
#include <osmium/visitor.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <deque>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "common/error.h"
#include "workers/tiles/coastline.h"
#include "workers/tiles/geometry.h"
#include "workers/tiles/mbtiles.h"
#include "workers/tiles/mvt.h"
#include "workers/tiles/schema.h"

namespace fs = std::filesystem;

namespace coop::tiles {

namespace {

constexpr int kExtent = 4096;
constexpr int kExtentBits = 12;
constexpr int64_t kBuffer = 64;  // tile units drawn beyond each edge, so strokes and labels join

// World coordinates as 32-bit fixed point (about 1 cm at the equator).
struct WPoint {
  uint32_t x, y;
};

struct Part {
  bool outer = true;  // polygons: an exterior ring, followed by its holes
  std::vector<WPoint> points;
};

struct Feature {
  Layer layer;
  GeomType type;
  uint8_t minzoom;
  uint64_t id;
  Properties properties;
  std::vector<Part> parts;
  uint32_t minx = UINT32_MAX, miny = UINT32_MAX, maxx = 0, maxy = 0;
};

WPoint to_world(const osmium::Location& location) {
  const auto [wx, wy] = lonlat_to_world(location.lon(), location.lat());
  auto fix = [](double v) {
    return static_cast<uint32_t>(std::clamp(std::llround(v * 4294967296.0), 0LL, 4294967295LL));
  };
  return {fix(wx), fix(wy)};
}

double world_to_lon(double wx) { return wx / 4294967296.0 * 360.0 - 180.0; }
double world_to_lat(double wy) {
  const double n = M_PI * (1.0 - 2.0 * wy / 4294967296.0);
  return std::atan(std::sinh(n)) * 180.0 / M_PI;
}

void grow(Feature& f, WPoint p) {
  f.minx = std::min(f.minx, p.x);
  f.miny = std::min(f.miny, p.y);
  f.maxx = std::max(f.maxx, p.x);
  f.maxy = std::max(f.maxy, p.y);
}

// The ways of administrative boundary relations, read in the relations pass: way id to the
// lowest admin_level of the relations it is in.
class BoundaryRelations : public osmium::handler::Handler {
 public:
  std::unordered_map<osmium::object_id_type, int> levels;

  void relation(const osmium::Relation& relation) {
    const char* boundary = relation.tags().get_value_by_key("boundary");
    const char* level = relation.tags().get_value_by_key("admin_level");
    if (!boundary || std::strcmp(boundary, "administrative") != 0 || !level) return;
    char* end = nullptr;
    const long value = std::strtol(level, &end, 10);
    if (end == level || *end != '\0' || value < 1 || value > 10) return;
    for (const auto& member : relation.members()) {
      if (member.type() != osmium::item_type::way) continue;
      auto [it, added] = levels.emplace(member.ref(), static_cast<int>(value));
      if (!added) it->second = std::min(it->second, static_cast<int>(value));
    }
  }
  void prepare_for_lookup() {}
};

// Collects the features of the second pass.
class Collector : public osmium::handler::Handler {
 public:
  explicit Collector(const BoundaryRelations& boundaries) : boundaries_(boundaries) {}

  // A deque grows without copying: no doubling peak for millions of features.
  std::deque<Feature> features;
  std::vector<CoastSegment> coastline;
  uint64_t nodes = 0, ways = 0, relations = 0;

  void node(const osmium::Node& node) {
    ++nodes;
    if (node.tags().empty() || !node.location().valid()) return;
    const auto tags = getter(node.tags());
    const uint64_t id = static_cast<uint64_t>(node.positive_id()) * 4;
    if (auto c = classify(Shape::kNode, tags)) add_point(*c, id, to_world(node.location()));
    if (auto address = classify_address(tags)) add_point(*address, id, to_world(node.location()));
  }

  void way(const osmium::Way& way) {
    ++ways;
    const auto tags = getter(way.tags());
    // Boundary ways often carry no tags of their own: their relation says what they are.
    if (auto it = boundaries_.levels.find(way.id()); it != boundaries_.levels.end()) {
      const char* boundary = tags("boundary");
      const bool maritime = is_yes_value(tags("maritime")) || (boundary && std::strcmp(boundary, "maritime") == 0);
      if (auto b = classify_boundary(it->second, maritime, is_yes_value(tags("disputed"))))
        add_line(*b, way, static_cast<uint64_t>(way.positive_id()) * 4 + 1);
    }
    if (way.tags().empty()) return;
    if (const char* natural = tags("natural"); natural && std::strcmp(natural, "coastline") == 0) add_coastline(way);
    auto c = classify(Shape::kLine, tags);
    if (!c) return;
    add_line(*c, way, static_cast<uint64_t>(way.positive_id()) * 4 + 1);
  }

 private:
  static bool is_yes_value(const char* value) { return value && std::strcmp(value, "yes") == 0; }

  void add_point(Classified& c, uint64_t id, WPoint point) {
    Feature f = start(c, GeomType::kPoint, id);
    Part part;
    part.points.push_back(point);
    grow(f, point);
    f.parts.push_back(std::move(part));
    features.push_back(std::move(f));
  }

  // Coastline ways in stretches between the nodes the extract left out; a stretch's end joins
  // others by its node id unless a missing node was next to it.
  void add_coastline(const osmium::Way& way) {
    const auto& refs = way.nodes();
    CoastSegment segment;
    for (std::size_t i = 0; i < refs.size(); ++i) {
      const auto& ref = refs[i];
      if (!ref.location().valid()) {
        if (segment.points.size() >= 2) coastline.push_back(std::move(segment));
        segment = {};
        continue;
      }
      if (segment.points.empty()) segment.first = i == 0 ? ref.positive_ref() : 0;
      const auto [wx, wy] = lonlat_to_world(ref.location().lon(), ref.location().lat());
      segment.points.push_back({wx, wy});
      segment.last = i + 1 == refs.size() ? ref.positive_ref() : 0;
    }
    if (segment.points.size() >= 2) coastline.push_back(std::move(segment));
  }

  void add_line(Classified& c, const osmium::Way& way, uint64_t id) {
    Feature f = start(c, GeomType::kLineString, id);
    Part part;
    for (const auto& ref : way.nodes()) {
      // Extracts cut ways at their border: nodes outside have no location and are skipped.
      if (!ref.location().valid()) continue;
      const WPoint p = to_world(ref.location());
      if (!part.points.empty() && part.points.back().x == p.x && part.points.back().y == p.y) continue;
      part.points.push_back(p);
      grow(f, p);
    }
    if (part.points.size() < 2) return;
    f.parts.push_back(std::move(part));
    features.push_back(std::move(f));
  }

  const BoundaryRelations& boundaries_;

 public:
  void relation(const osmium::Relation&) { ++relations; }

  void area(const osmium::Area& area) {
    const auto tags = getter(area.tags());
    // Feature ids tell the OSM object: node id * 4, way * 4 + 1, area from a closed way
    // * 4 + 2, area from a multipolygon relation * 4 + 3 (its POI point shares the area's).
    const uint64_t osm_id = static_cast<uint64_t>(area.orig_id() < 0 ? -area.orig_id() : area.orig_id());
    const uint64_t id = osm_id * 4 + (area.from_way() ? 2 : 3);
    if (auto c = classify(Shape::kArea, tags)) {
      Feature f = start(*c, GeomType::kPolygon, id);
      for (const auto& outer : area.outer_rings()) {
        Part part = ring(outer, true, f);
        if (part.points.size() < 4) continue;
        f.parts.push_back(std::move(part));
        for (const auto& inner : area.inner_rings(outer)) {
          Part hole = ring(inner, false, f);
          if (hole.points.size() >= 4) f.parts.push_back(std::move(hole));
        }
      }
      if (!f.parts.empty()) features.push_back(std::move(f));
    }
    auto poi = classify(Shape::kArea, tags, true);
    auto address = classify_address(tags);
    if (!poi && !address) return;
    const auto centre = label_point(area);
    if (!centre) return;
    if (poi) add_point(*poi, id, *centre);
    if (address) add_point(*address, id, *centre);
  }

 private:
  static TagGetter getter(const osmium::TagList& tags) {
    return [&tags](const char* key) { return tags.get_value_by_key(key); };
  }

  // The label point of an area: the centroid of its first exterior ring.
  static std::optional<WPoint> label_point(const osmium::Area& area) {
    auto rings = area.outer_rings();
    if (rings.begin() == rings.end()) return std::nullopt;
    const auto& outer = *rings.begin();
    double a = 0, cx = 0, cy = 0;
    std::vector<WPoint> points;
    for (const auto& ref : outer)
      if (ref.location().valid()) points.push_back(to_world(ref.location()));
    if (points.size() < 4) return std::nullopt;
    const double ox = points[0].x, oy = points[0].y;  // origin shift keeps the sums precise
    for (std::size_t i = 0; i + 1 < points.size(); ++i) {
      const double x0 = points[i].x - ox, y0 = points[i].y - oy;
      const double x1 = points[i + 1].x - ox, y1 = points[i + 1].y - oy;
      const double cross = x0 * y1 - x1 * y0;
      a += cross;
      cx += (x0 + x1) * cross;
      cy += (y0 + y1) * cross;
    }
    WPoint centre = points[0];
    if (a != 0) {
      centre.x = static_cast<uint32_t>(std::clamp(std::llround(ox + cx / (3 * a)), 0LL, 4294967295LL));
      centre.y = static_cast<uint32_t>(std::clamp(std::llround(oy + cy / (3 * a)), 0LL, 4294967295LL));
    }
    return centre;
  }

  static Feature start(Classified& c, GeomType type, uint64_t id) {
    Feature f{c.layer, type, static_cast<uint8_t>(c.minzoom), id, std::move(c.properties), {}};
    return f;
  }

  template <typename TRing>
  static Part ring(const TRing& ring, bool outer, Feature& f) {
    Part part;
    part.outer = outer;
    for (const auto& ref : ring) {
      if (!ref.location().valid()) continue;
      const WPoint p = to_world(ref.location());
      if (!part.points.empty() && part.points.back().x == p.x && part.points.back().y == p.y) continue;
      part.points.push_back(p);
      grow(f, p);
    }
    return part;
  }
};

// A feature's geometry at one zoom, in that zoom's pixel coordinates (the world is
// 2^(z+12) units wide), simplified for the zoom.
// Pixel coordinates fit 32 bits up to z19 (2^31 units); half the memory of Point.
struct Pixel {
  int32_t x, y;
};

struct ZoomGeometry {
  uint32_t feature;
  std::vector<std::vector<Pixel>> parts;  // lines or rings
  std::vector<bool> outer;
};

int64_t to_pixel(uint32_t w, int shift) {
  if (shift == 0) return w;
  return (static_cast<int64_t>(w) + (int64_t{1} << (shift - 1))) >> shift;
}

std::optional<ZoomGeometry> at_zoom(const Feature& f, uint32_t index, int z, int maxzoom) {
  const int shift = 32 - (z + kExtentBits);
  // Below the last zoom, a quarter of a (512 px) screen pixel; at the last, an eighth of a unit
  // less than half a unit so nothing moves by more than the grid already does.
  const double tolerance = z < maxzoom ? 2.0 : 0.5;
  ZoomGeometry g{index, {}, {}};
  bool exterior_kept = false;  // holes follow their exterior; a dropped exterior drops them
  for (const auto& part : f.parts) {
    if (f.type == GeomType::kPolygon && !part.outer && !exterior_kept) continue;
    if (part.outer) exterior_kept = false;
    std::vector<Point> points;
    points.reserve(part.points.size());
    for (const auto& p : part.points) points.push_back({to_pixel(p.x, shift), to_pixel(p.y, shift)});
    auto pixels = [](const std::vector<Point>& in) {
      std::vector<Pixel> out;
      out.reserve(in.size());
      for (const auto& p : in) out.push_back({static_cast<int32_t>(p.x), static_cast<int32_t>(p.y)});
      return out;
    };
    if (f.type == GeomType::kPoint) {
      g.parts.push_back(pixels(points));
      g.outer.push_back(true);
      continue;
    }
    remove_repeated_points(points);
    if (f.type == GeomType::kLineString) {
      if (points.size() < 2) continue;
      points = simplify(points, tolerance);
      if (points.size() < 2) continue;
    } else {
      if (points.front() != points.back()) points.push_back(points.front());
      points = simplify_ring(points, tolerance);
      if (points.empty()) continue;
      // Below the last zoom, areas smaller than about a quarter of a screen pixel are dropped.
      if (z < maxzoom && part.outer && std::llabs(signed_area2(points)) < 32) continue;
      if (part.outer) exterior_kept = true;
    }
    g.parts.push_back(pixels(points));
    g.outer.push_back(part.outer);
  }
  if (g.parts.empty()) return std::nullopt;
  return g;
}

// Everything one zoom needs to build its tiles.
struct ZoomJob {
  int z;
  std::vector<ZoomGeometry> geometries;
  // (tile key, geometry index), sorted: key = ty << 32 | tx.
  std::vector<std::pair<uint64_t, uint32_t>> entries;
  // [begin, end) ranges of entries, one per tile.
  std::vector<std::pair<std::size_t, std::size_t>> tiles;
};

std::string build_tile(const std::deque<Feature>& features, const ZoomJob& job, std::size_t begin, std::size_t end) {
  const uint64_t key = job.entries[begin].first;
  const int64_t tx = static_cast<int64_t>(key & 0xffffffffu), ty = static_cast<int64_t>(key >> 32);
  const int64_t ox = tx * kExtent, oy = ty * kExtent;
  std::vector<LayerBuilder> layers;
  layers.reserve(kLayerCount);
  for (int l = 0; l < kLayerCount; ++l) layers.emplace_back(std::string(layer_name(static_cast<Layer>(l))), kExtent);

  for (std::size_t i = begin; i < end; ++i) {
    const ZoomGeometry& g = job.geometries[job.entries[i].second];
    const Feature& f = features[g.feature];
    LayerBuilder& layer = layers[static_cast<int>(f.layer)];
    auto local = [&](const std::vector<Pixel>& points) {
      std::vector<Point> out;
      out.reserve(points.size());
      for (const auto& p : points) out.push_back({p.x - ox, p.y - oy});
      return out;
    };
    switch (f.type) {
      case GeomType::kPoint: {
        const Point p{g.parts[0][0].x - ox, g.parts[0][0].y - oy};
        if (p.x < -kBuffer || p.y < -kBuffer || p.x > kExtent + kBuffer || p.y > kExtent + kBuffer) break;
        layer.add_point(p, f.properties, f.id);
        break;
      }
      case GeomType::kLineString: {
        std::vector<Line> lines;
        for (const auto& part : g.parts)
          for (auto& clipped : clip_line(local(part), -kBuffer, kExtent + kBuffer)) lines.push_back(std::move(clipped));
        if (!lines.empty()) layer.add_line(lines, f.properties, f.id);
        break;
      }
      case GeomType::kPolygon: {
        std::vector<Polygon> polygons;
        for (std::size_t p = 0; p < g.parts.size();) {
          Polygon polygon{local(g.parts[p]), {}};
          std::size_t q = p + 1;
          for (; q < g.parts.size() && !g.outer[q]; ++q) polygon.inners.push_back(local(g.parts[q]));
          p = q;
          if (auto clipped = clip_polygon(polygon, -kBuffer, kExtent + kBuffer)) polygons.push_back(std::move(*clipped));
        }
        if (!polygons.empty()) layer.add_polygon(polygons, f.properties, f.id);
        break;
      }
      default: break;
    }
  }
  std::vector<LayerBuilder> used;
  for (auto& layer : layers)
    if (!layer.empty()) used.push_back(std::move(layer));
  if (used.empty()) return {};
  return encode_tile(used);
}

ZoomJob plan_zoom(const std::deque<Feature>& features, int z, int maxzoom) {
  ZoomJob job;
  job.z = z;
  const int shift = 32 - (z + kExtentBits);
  const int64_t last_tile = (int64_t{1} << z) - 1;
  for (uint32_t i = 0; i < features.size(); ++i) {
    const Feature& f = features[i];
    // The last zoom carries everything, whatever the feature's own first zoom.
    if (f.minzoom > z && z < maxzoom) continue;
    // Tiles touched by the bounding box grown by the buffer.
    auto tile_of = [&](uint32_t w, int64_t delta) {
      return std::clamp((to_pixel(w, shift) + delta) >> kExtentBits, int64_t{0}, last_tile);
    };
    const int64_t x0 = tile_of(f.minx, -kBuffer), x1 = tile_of(f.maxx, kBuffer);
    const int64_t y0 = tile_of(f.miny, -kBuffer), y1 = tile_of(f.maxy, kBuffer);
    auto g = at_zoom(f, i, z, maxzoom);
    if (!g) continue;
    const auto index = static_cast<uint32_t>(job.geometries.size());
    job.geometries.push_back(std::move(*g));
    for (int64_t ty = y0; ty <= y1; ++ty)
      for (int64_t tx = x0; tx <= x1; ++tx)
        job.entries.emplace_back(static_cast<uint64_t>(ty) << 32 | static_cast<uint64_t>(tx), index);
  }
  std::sort(job.entries.begin(), job.entries.end());
  for (std::size_t i = 0; i < job.entries.size();) {
    std::size_t j = i + 1;
    while (j < job.entries.size() && job.entries[j].first == job.entries[i].first) ++j;
    job.tiles.emplace_back(i, j);
    i = j;
  }
  return job;
}

// Holds an exclusive lock on "<dir>/.<name>.lock" so two imports of one archive never race.
class ImportLock {
 public:
  explicit ImportLock(const fs::path& output) {
    const auto path = output.parent_path() / ("." + output.filename().string() + ".lock");
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(errc::kArchiveWriteFailed, "cannot create " + path.string(), 500);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw Error(errc::kBusy, "another import of " + output.filename().string() + " is running", 409);
    }
  }
  ~ImportLock() { ::close(fd_); }

 private:
  int fd_ = -1;
};

std::string random_id() {
  std::random_device device;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 16; ++i) id += kHex[device() % 16];
  return id;
}

std::string format_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.7f", value);
  std::string text = buffer;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

// The sea from the coastline, clipped to the extract's box (its header's, else the features'
// extent), as features of the ocean layer from zoom 0.
void add_sea(Collector& collector, const osmium::Box& header_box, ImportSummary& summary) {
  if (collector.coastline.empty()) return;
  WorldBox box{};
  if (header_box.valid()) {
    const auto [west, north] = lonlat_to_world(header_box.bottom_left().lon(), header_box.top_right().lat());
    const auto [east, south] = lonlat_to_world(header_box.top_right().lon(), header_box.bottom_left().lat());
    box = {west, north, east, south};
  } else {
    // In doubles, so that the coast's own outermost points lie exactly on the box.
    box = {1, 1, 0, 0};
    auto take = [&box](double x, double y) {
      box.minx = std::min(box.minx, x), box.miny = std::min(box.miny, y);
      box.maxx = std::max(box.maxx, x), box.maxy = std::max(box.maxy, y);
    };
    for (const auto& f : collector.features) {
      take(f.minx / 4294967296.0, f.miny / 4294967296.0);
      take(f.maxx / 4294967296.0, f.maxy / 4294967296.0);
    }
    for (const auto& segment : collector.coastline)
      for (const auto& p : segment.points) take(p.x, p.y);
  }
  CoastlineReport report;
  const auto sea = assemble_sea(std::move(collector.coastline), box, report);
  collector.coastline.clear();
  auto fix = [](double v) {
    return static_cast<uint32_t>(std::clamp(std::llround(v * 4294967296.0), 0LL, 4294967295LL));
  };
  uint64_t id = 0;
  for (const auto& polygon : sea) {
    Feature f{Layer::kOcean, GeomType::kPolygon, 0, id++, {}, {}};
    for (std::size_t r = 0; r < polygon.rings.size(); ++r) {
      Part part;
      part.outer = r == 0;
      for (const auto& p : polygon.rings[r]) {
        const WPoint w{fix(p.x), fix(p.y)};
        if (!part.points.empty() && part.points.back().x == w.x && part.points.back().y == w.y) continue;
        part.points.push_back(w);
        grow(f, w);
      }
      if (part.points.size() >= 4) f.parts.push_back(std::move(part));
      else if (part.outer) break;
    }
    if (!f.parts.empty() && f.parts.front().outer) collector.features.push_back(std::move(f));
  }
  summary.coastline_segments = report.segments;
  summary.coastline_rings = report.rings;
  summary.coastline_pieces = report.pieces;
  summary.coastline_ends_extended = report.ends_extended;
  summary.sea_polygons = report.water_polygons;
  summary.coastline = report.summary();
}

// The place search index: every named place, street, stop, POI and named area or water, with
// one point to fly to. A street is many ways with one name; ways of one name within about
// 1.5 km of each other are one entry, at the way point nearest their middle.
std::vector<SearchEntry> search_entries(const std::deque<Feature>& features) {
  auto rank_of = [](Layer layer, const std::string& kind) {
    switch (layer) {
      case Layer::kPlaceLabels: {
        static const char* const kOrder[] = {"city", "town", "village", "suburb", "quarter", "neighbourhood", "island"};
        for (int i = 0; i < 7; ++i)
          if (kind == kOrder[i]) return i;
        return 7;
      }
      case Layer::kStreets: return kind == "rail" || kind == "tram" || kind == "subway" ? 14 : 10;
      case Layer::kPublicTransport: return 12;
      case Layer::kPois: return 15;
      case Layer::kWaterPolygons:
      case Layer::kWaterLines:
      case Layer::kLand: return 20;
      default: return -1;
    }
  };
  struct Cluster {
    std::string name, kind;
    Layer layer;
    int rank;
    std::vector<WPoint> points;
  };
  std::vector<Cluster> clusters;
  std::unordered_map<std::string, std::vector<std::size_t>> by_name;
  constexpr double kJoin = 1500.0 / 40075016.0 * 4294967296.0;  // 1.5 km at the equator, in world units
  for (const auto& f : features) {
    const std::string* name = nullptr;
    std::string kind;
    for (const auto& [key, value] : f.properties) {
      if (key == "name" && std::holds_alternative<std::string>(value)) name = &std::get<std::string>(value);
      if (key == "kind" && std::holds_alternative<std::string>(value)) kind = std::get<std::string>(value);
    }
    if (!name || name->empty() || f.parts.empty() || f.parts[0].points.empty()) continue;
    const int rank = rank_of(f.layer, kind);
    if (rank < 0) continue;
    WPoint point;
    if (f.type == GeomType::kLineString) point = f.parts[0].points[f.parts[0].points.size() / 2];
    else if (f.type == GeomType::kPolygon) point = {f.minx / 2 + f.maxx / 2, f.miny / 2 + f.maxy / 2};
    else point = f.parts[0].points[0];
    auto& candidates = by_name[std::to_string(static_cast<int>(f.layer)) + '\x1f' + *name];
    Cluster* home = nullptr;
    for (std::size_t index : candidates) {
      const WPoint first = clusters[index].points.front();
      if (std::hypot(double(first.x) - point.x, double(first.y) - point.y) <= kJoin) {
        home = &clusters[index];
        break;
      }
    }
    if (!home) {
      candidates.push_back(clusters.size());
      clusters.push_back({*name, kind, f.layer, rank, {}});
      home = &clusters.back();
    }
    home->points.push_back(point);
    home->rank = std::min(home->rank, rank);
  }
  std::vector<SearchEntry> entries;
  entries.reserve(clusters.size());
  for (const auto& c : clusters) {
    double mx = 0, my = 0;
    for (const auto& p : c.points) mx += p.x, my += p.y;
    mx /= static_cast<double>(c.points.size()), my /= static_cast<double>(c.points.size());
    WPoint best = c.points.front();
    double best_d = HUGE_VAL;
    for (const auto& p : c.points)
      if (const double d = std::hypot(p.x - mx, p.y - my); d < best_d) best_d = d, best = p;
    entries.push_back({c.name, c.kind, std::string(layer_name(c.layer)), world_to_lon(best.x), world_to_lat(best.y), c.rank});
  }
  return entries;
}

}  // namespace

ImportSummary import_osm(const ImportOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (options.minzoom < 0 || options.maxzoom > kMaxImportZoom || options.minzoom > options.maxzoom)
    throw Error(errc::kBadInput, "zooms must satisfy 0 <= minzoom <= maxzoom <= " + std::to_string(kMaxImportZoom), 400);
  std::error_code ec;
  if (!fs::is_regular_file(options.input, ec))
    throw Error(errc::kBadInput, options.input.string() + ": no such file", 400);
  const uint64_t input_size = fs::file_size(options.input, ec);
  fs::create_directories(options.output.parent_path(), ec);
  ImportLock lock(options.output);
  // Temporary files of imports that were killed (OOM, SIGKILL, a cron timeout): no other
  // import of this archive runs while the lock is held, so they are garbage.
  for (const auto& entry : fs::directory_iterator(options.output.parent_path(), ec)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("." + options.output.filename().string() + ".tmp-", 0) == 0) fs::remove(entry.path(), ec);
  }
  auto progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (options.progress) options.progress(phase, done, total);
  };

  ImportSummary summary;
  BoundaryRelations boundaries;
  Collector collector{boundaries};
  osmium::Box header_box;
  std::string source_timestamp;
  try {
    const osmium::io::File input{options.input.string(), "pbf"};

    // Areas come from closed ways and multipolygon relations with these keys.
    osmium::TagsFilter area_filter{false};
    for (const char* key : {"building", "landuse", "leisure", "natural", "waterway", "amenity", "shop", "tourism",
                            "historic", "office", "craft", "emergency", "man_made", "aeroway", "railway"})
      area_filter.add_rule(true, osmium::TagMatcher{key});
    osmium::area::Assembler::config_type assembler_config;
    osmium::area::MultipolygonManager<osmium::area::Assembler> multipolygons{assembler_config, area_filter};
    progress("relations", 0, 0);
    osmium::relations::read_relations(input, multipolygons, boundaries);

    // FlexMem keeps a sparse index and turns dense when the extract is large enough to fill
    // one; a country-sized extract starts dense right away.
    using Index = osmium::index::map::FlexMem<osmium::unsigned_object_id_type, osmium::Location>;
    Index index{input_size > (512ULL << 20)};
    osmium::handler::NodeLocationsForWays<Index> locations{index};
    locations.ignore_errors();  // extracts reference nodes outside their border

    osmium::io::Reader reader{input, osmium::osm_entity_bits::all, osmium::io::read_meta::no};
    const auto header = reader.header();
    header_box = header.box();
    source_timestamp = header.get("osmosis_replication_timestamp", header.get("timestamp", ""));
    auto areas = multipolygons.handler([&collector](osmium::memory::Buffer&& buffer) {
      osmium::apply(buffer, collector);
    });
    while (osmium::memory::Buffer buffer = reader.read()) {
      osmium::apply(buffer, locations, collector, areas);
      progress("reading", reader.offset(), input_size);
    }
    reader.close();
    if (collector.nodes == 0 && collector.ways == 0)
      throw Error(errc::kBadInput, options.input.string() + " holds no OSM data", 400);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    // osmium::pbf_error, osmium::io_error, protozero::exception, std::system_error...
    throw Error(errc::kBadInput, options.input.string() + ": " + e.what(), 400);
  }
  summary.nodes = collector.nodes;
  summary.ways = collector.ways;
  summary.relations = collector.relations;
  add_sea(collector, header_box, summary);
  summary.features = collector.features.size();
  const auto& features = collector.features;

  try {
    MbtilesWriter writer(options.output);
    std::mutex write_mutex;
    const unsigned threads =
      std::min(64u, options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency()));
    for (int z = options.minzoom; z <= options.maxzoom; ++z) {
      const ZoomJob job = plan_zoom(features, z, options.maxzoom);
      const std::string phase = "tiles z" + std::to_string(z);
      std::atomic<std::size_t> next{0}, done{0};
      std::exception_ptr failure;
      auto work = [&] {
        try {
          constexpr std::size_t kChunk = 64;
          std::vector<std::tuple<int, int, std::string>> out;
          for (std::size_t start; (start = next.fetch_add(kChunk)) < job.tiles.size();) {
            out.clear();
            const std::size_t stop = std::min(start + kChunk, job.tiles.size());
            for (std::size_t t = start; t < stop; ++t) {
              const auto [begin, end] = job.tiles[t];
              std::string tile = build_tile(features, job, begin, end);
              if (tile.empty()) continue;
              const uint64_t key = job.entries[begin].first;
              out.emplace_back(static_cast<int>(key & 0xffffffffu), static_cast<int>(key >> 32), gzip(tile));
            }
            std::lock_guard guard(write_mutex);
            if (failure) return;
            for (const auto& [x, y, data] : out) {
              writer.put_tile(z, x, y, data);
              ++summary.tiles;
            }
            done += stop - start;
            progress(phase, done, job.tiles.size());
          }
        } catch (...) {
          std::lock_guard guard(write_mutex);
          if (!failure) failure = std::current_exception();
        }
      };
      std::vector<std::thread> pool;
      const unsigned count = std::min<unsigned>(threads, std::max<std::size_t>(1, job.tiles.size() / 64));
      for (unsigned i = 1; i < count; ++i) pool.emplace_back(work);
      work();
      for (auto& t : pool) t.join();
      if (failure) std::rethrow_exception(failure);
    }

    // Bounds: the extract's own box when its header has one, else the features' extent.
    if (header_box.valid()) {
      summary.bounds[0] = header_box.bottom_left().lon();
      summary.bounds[1] = header_box.bottom_left().lat();
      summary.bounds[2] = header_box.top_right().lon();
      summary.bounds[3] = header_box.top_right().lat();
    } else if (!features.empty()) {
      uint32_t minx = UINT32_MAX, miny = UINT32_MAX, maxx = 0, maxy = 0;
      for (const auto& f : features) {
        minx = std::min(minx, f.minx), miny = std::min(miny, f.miny);
        maxx = std::max(maxx, f.maxx), maxy = std::max(maxy, f.maxy);
      }
      summary.bounds[0] = world_to_lon(minx);
      summary.bounds[1] = world_to_lat(maxy);
      summary.bounds[2] = world_to_lon(maxx);
      summary.bounds[3] = world_to_lat(miny);
    } else {
      summary.bounds[0] = -180, summary.bounds[1] = -85.0511, summary.bounds[2] = 180, summary.bounds[3] = 85.0511;
    }
    const double centre_lon = (summary.bounds[0] + summary.bounds[2]) / 2;
    const double centre_lat = (summary.bounds[1] + summary.bounds[3]) / 2;
    // The zoom at which the bounds are about one 512-pixel screen wide.
    const double span = std::max(summary.bounds[2] - summary.bounds[0], 1e-6);
    const int centre_zoom =
        std::clamp(static_cast<int>(std::floor(std::log2(360.0 / span))), options.minzoom, options.maxzoom);

    nlohmann::json layers = nlohmann::json::array();
    for (int l = 0; l < kLayerCount; ++l) {
      const auto layer = static_cast<Layer>(l);
      nlohmann::json fields = nlohmann::json::object();
      for (const auto& [name, type] : layer_fields(layer)) fields[name] = type;
      int minzoom = options.maxzoom;
      for (const auto& f : features)
        if (f.layer == layer) minzoom = std::min<int>(minzoom, f.minzoom);
      // An empty layer still gets listed, so styles can name it.
      layers.push_back({{"id", layer_name(layer)},
                        {"description", layer_description(layer)},
                        {"minzoom", std::max(minzoom, options.minzoom)},
                        {"maxzoom", options.maxzoom},
                        {"fields", fields}});
    }
    writer.set_metadata("name", options.name);
    writer.set_metadata("format", "pbf");
    writer.set_metadata("type", "baselayer");
    writer.set_metadata("version", "1.0.0");
    writer.set_metadata("description", "OpenStreetMap data of " + options.input.filename().string() +
                                           " in coop's Shortbread-style schema");
    writer.set_metadata("attribution", "© OpenStreetMap contributors");
    writer.set_metadata("minzoom", std::to_string(options.minzoom));
    writer.set_metadata("maxzoom", std::to_string(options.maxzoom));
    writer.set_metadata("bounds", format_number(summary.bounds[0]) + "," + format_number(summary.bounds[1]) + "," +
                                      format_number(summary.bounds[2]) + "," + format_number(summary.bounds[3]));
    writer.set_metadata("center", format_number(centre_lon) + "," + format_number(centre_lat) + "," +
                                      std::to_string(centre_zoom));
    writer.set_metadata("json", nlohmann::json{{"vector_layers", layers}}.dump());
    for (const auto& entry : search_entries(features)) {
      writer.add_search_entry(entry);
      ++summary.search_entries;
    }
    writer.set_metadata("generator", "coop-tiles");
    writer.set_metadata("coop_import_id", random_id());
    writer.set_metadata("coop_source", options.input.filename().string());
    if (!source_timestamp.empty()) writer.set_metadata("coop_source_timestamp", source_timestamp);
    writer.commit();
  } catch (const Error& e) {
    // SQLite says "disk I/O error" or "database or disk is full": name the file and the cure.
    if (e.code() == errc::kBusy || e.code() == errc::kBadInput || e.code() == errc::kArchiveNotSynced) throw;
    throw Error(errc::kArchiveWriteFailed,
                "cannot write the archive for " + options.output.string() + " (is the disk full?): " + e.what(), 500);
  }

  summary.archive_bytes = fs::file_size(options.output, ec);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace coop::tiles
