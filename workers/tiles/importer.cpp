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
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "common/error.h"
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

// Collects the features of the second pass.
class Collector : public osmium::handler::Handler {
 public:
  // A deque grows without copying: no doubling peak for millions of features.
  std::deque<Feature> features;
  uint64_t nodes = 0, ways = 0, relations = 0;

  void node(const osmium::Node& node) {
    ++nodes;
    if (node.tags().empty() || !node.location().valid()) return;
    auto c = classify(Shape::kNode, getter(node.tags()));
    if (!c) return;
    Feature f = start(*c, GeomType::kPoint, static_cast<uint64_t>(node.positive_id()) * 4);
    Part part;
    part.points.push_back(to_world(node.location()));
    grow(f, part.points.front());
    f.parts.push_back(std::move(part));
    features.push_back(std::move(f));
  }

  void way(const osmium::Way& way) {
    ++ways;
    if (way.tags().empty()) return;
    auto c = classify(Shape::kLine, getter(way.tags()));
    if (!c) return;
    Feature f = start(*c, GeomType::kLineString, static_cast<uint64_t>(way.positive_id()) * 4 + 1);
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
    if (auto poi = classify(Shape::kArea, tags, true)) {
      // The label point of an area: the centroid of its first exterior ring.
      auto rings = area.outer_rings();
      if (rings.begin() == rings.end()) return;
      const auto& outer = *rings.begin();
      double a = 0, cx = 0, cy = 0;
      std::vector<WPoint> points;
      for (const auto& ref : outer)
        if (ref.location().valid()) points.push_back(to_world(ref.location()));
      if (points.size() < 4) return;
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
      Feature f = start(*poi, GeomType::kPoint, id);
      Part part;
      part.points.push_back(centre);
      grow(f, centre);
      f.parts.push_back(std::move(part));
      features.push_back(std::move(f));
    }
  }

 private:
  static TagGetter getter(const osmium::TagList& tags) {
    return [&tags](const char* key) { return tags.get_value_by_key(key); };
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
  Collector collector;
  osmium::Box header_box;
  std::string source_timestamp;
  try {
    const osmium::io::File input{options.input.string(), "pbf"};

    // Areas come from closed ways and multipolygon relations with these keys.
    osmium::TagsFilter area_filter{false};
    for (const char* key : {"building", "landuse", "leisure", "natural", "waterway", "amenity", "shop", "tourism",
                            "historic", "office", "craft", "emergency"})
      area_filter.add_rule(true, osmium::TagMatcher{key});
    osmium::area::Assembler::config_type assembler_config;
    osmium::area::MultipolygonManager<osmium::area::Assembler> multipolygons{assembler_config, area_filter};
    progress("relations", 0, 0);
    osmium::relations::read_relations(input, multipolygons);

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
