// The importer end to end: a synthetic extract written with libosmium's PBF writer (and the
// Monaco extract from ../shared when it is there) imported to MBTiles, then every tile checked
// by a validator of the MVT 2.1 rules (command encoding, winding, ring validity), seams between
// neighbouring tiles compared, and known objects found where the OSM data puts them.
#include <catch2/catch.hpp>

#include "tests/unit/common/temp_dir.h"

#include <osmium/builder/attr.hpp>
#include <osmium/io/pbf_output.hpp>
#include <osmium/io/writer.hpp>
#include <osmium/memory/buffer.hpp>
#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/error.h"
#include "workers/tiles/geometry.h"
#include "workers/tiles/importer.h"
#include "workers/tiles/mbtiles.h"
#include "workers/tiles/mvt.h"

namespace fs = std::filesystem;
using namespace coop::tiles;

namespace {

constexpr int64_t kBuffer = 64;
constexpr int64_t kExtent = 4096;

// A small town: a 12 x 12 grid of named streets about 240 m apart (crossing many z14 tile
// edges), buildings, a park with a pond cut out of it (a multipolygon relation), a cafe and
// a village node.
void write_town(const fs::path& file, double lon0 = 7.40, double lat0 = 43.70) {
  using namespace osmium::builder::attr;  // NOLINT
  osmium::memory::Buffer buffer{1 << 20, osmium::memory::Buffer::auto_grow::yes};
  int64_t node = 1;
  std::vector<std::vector<int64_t>> grid(12, std::vector<int64_t>(12));
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 12; ++j) {
      grid[i][j] = node;
      osmium::builder::add_node(buffer, _id(node++), _location(lon0 + 0.003 * j, lat0 + 0.0022 * i));
    }
  int64_t way = 100;
  for (int i = 0; i < 12; ++i) {
    std::vector<osmium::object_id_type> row(grid[i].begin(), grid[i].end()), column;
    for (int k = 0; k < 12; ++k) column.push_back(grid[k][i]);
    osmium::builder::add_way(buffer, _id(way++), _nodes(row), _tag("highway", i % 3 ? "residential" : "primary"),
                             _tag("name", "Row " + std::to_string(i)));
    osmium::builder::add_way(buffer, _id(way++), _nodes(column), _tag("highway", "tertiary"),
                             _tag("name", "Column " + std::to_string(i)));
  }
  // Buildings: small squares inside the blocks.
  for (int i = 0; i < 11; ++i)
    for (int j = 0; j < 11; ++j) {
      const double x = lon0 + 0.003 * j + 0.001, y = lat0 + 0.0022 * i + 0.0007;
      const int64_t first = node;
      osmium::builder::add_node(buffer, _id(node++), _location(x, y));
      osmium::builder::add_node(buffer, _id(node++), _location(x + 0.0008, y));
      osmium::builder::add_node(buffer, _id(node++), _location(x + 0.0008, y + 0.0006));
      osmium::builder::add_node(buffer, _id(node++), _location(x, y + 0.0006));
      osmium::builder::add_way(buffer, _id(way++), _nodes({first, first + 1, first + 2, first + 3, first}),
                               _tag("building", "yes"));
    }
  // A park (outer) with a pond (inner), as a multipolygon relation.
  const int64_t outer = node;
  for (auto [dx, dy] : {std::pair{0.0, 0.0}, {0.012, 0.0}, {0.012, 0.008}, {0.0, 0.008}})
    osmium::builder::add_node(buffer, _id(node++), _location(lon0 + 0.0005 + dx, lat0 + 0.0003 + dy));
  const int64_t inner = node;
  for (auto [dx, dy] : {std::pair{0.004, 0.003}, {0.006, 0.003}, {0.006, 0.005}, {0.004, 0.005}})
    osmium::builder::add_node(buffer, _id(node++), _location(lon0 + 0.0005 + dx, lat0 + 0.0003 + dy));
  osmium::builder::add_way(buffer, _id(900), _nodes({outer, outer + 1, outer + 2, outer + 3, outer}));
  osmium::builder::add_way(buffer, _id(901), _nodes({inner, inner + 1, inner + 2, inner + 3, inner}));
  osmium::builder::add_relation(buffer, _id(50), _member(osmium::item_type::way, 900, "outer"),
                                _member(osmium::item_type::way, 901, "inner"), _tag("type", "multipolygon"),
                                _tag("leisure", "park"), _tag("name", "Town Park"));
  osmium::builder::add_node(buffer, _id(777), _location(lon0 + 0.0151, lat0 + 0.0111), _tag("amenity", "cafe"),
                            _tag("name", "Cafe Coop"));
  osmium::builder::add_node(buffer, _id(778), _location(lon0 + 0.015, lat0 + 0.012), _tag("place", "village"),
                            _tag("name", "Coopville"), _tag("population", "1200"));

  osmium::io::Header header;
  osmium::io::Writer writer{osmium::io::File{file.string(), "pbf"}, header, osmium::io::overwrite::allow};
  writer(std::move(buffer));
  writer.close();
}

struct TileKey {
  int z, x, y;
  bool operator<(const TileKey& o) const { return std::tie(z, x, y) < std::tie(o.z, o.x, o.y); }
};

std::map<TileKey, std::string> read_tiles(const fs::path& archive) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(archive.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles", -1, &stmt, nullptr) ==
          SQLITE_OK);
  std::map<TileKey, std::string> tiles;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const int z = sqlite3_column_int(stmt, 0);
    const int x = sqlite3_column_int(stmt, 1);
    const int y = (1 << z) - 1 - sqlite3_column_int(stmt, 2);
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, 3));
    tiles[{z, x, y}] = gunzip(std::string_view(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt, 3))));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return tiles;
}

int32_t unzigzag(uint32_t v) { return static_cast<int32_t>((v >> 1) ^ (~(v & 1) + 1)); }

// MVT 2.1 section 4.3: returns the first rule a feature breaks, or "" when it keeps them all.
std::string check_feature(const DecodedFeature& f) {
  const auto& c = f.commands;
  std::size_t i = 0;
  int64_t x = 0, y = 0;
  std::vector<std::vector<Point>> rings;
  while (i < c.size()) {
    const uint32_t id = c[i] & 7, count = c[i] >> 3;
    ++i;
    if (id != kCommandMoveTo) return "a geometry part must start with MoveTo";
    if (count == 0) return "MoveTo with count 0";
    if (f.type != GeomType::kPoint && count != 1) return "MoveTo count must be 1 for lines and polygons";
    if (i + 2 * count > c.size()) return "MoveTo runs past the geometry";
    for (uint32_t k = 0; k < count; ++k) {
      x += unzigzag(c[i++]);
      y += unzigzag(c[i++]);
    }
    if (f.type == GeomType::kPoint) {
      if (i != c.size()) return "points have one MoveTo";
      break;
    }
    std::vector<Point> part{{x, y}};
    if (i >= c.size() || (c[i] & 7) != kCommandLineTo) return "MoveTo must be followed by LineTo";
    const uint32_t lines = c[i] >> 3;
    ++i;
    if (lines == 0) return "LineTo with count 0";
    if (f.type == GeomType::kPolygon && lines < 2) return "a ring needs at least two LineTo";
    if (i + 2 * lines > c.size()) return "LineTo runs past the geometry";
    for (uint32_t k = 0; k < lines; ++k) {
      const int32_t dx = unzigzag(c[i++]), dy = unzigzag(c[i++]);
      if (dx == 0 && dy == 0) return "zero-length LineTo segment";
      x += dx;
      y += dy;
      part.push_back({x, y});
    }
    if (f.type == GeomType::kPolygon) {
      if (i >= c.size() || c[i] != command_integer(kCommandClosePath, 1)) return "a ring must end with ClosePath(1)";
      ++i;
      if (part.front() == part.back()) return "a ring repeats its first point before ClosePath";
      std::set<std::pair<int64_t, int64_t>> distinct;
      for (const auto& p : part) distinct.insert({p.x, p.y});
      if (distinct.size() < 3) return "a ring with fewer than three distinct points";
      part.push_back(part.front());
      if (signed_area2(part) == 0) return "a ring with zero area";
      rings.push_back(part);
    }
    for (const auto& p : part)
      if (p.x < -kBuffer || p.y < -kBuffer || p.x > kExtent + kBuffer || p.y > kExtent + kBuffer)
        return "a point outside the buffered tile";
  }
  // 4.3.4.4: the first ring is an exterior ring (positive area with y down).
  if (f.type == GeomType::kPolygon && (rings.empty() || signed_area2(rings.front()) <= 0))
    return "a polygon must start with an exterior (clockwise) ring";
  return "";
}

// Validates every tile; returns the decoded tiles.
std::map<TileKey, std::vector<DecodedLayer>> validate_all(const std::map<TileKey, std::string>& tiles) {
  std::map<TileKey, std::vector<DecodedLayer>> decoded;
  for (const auto& [key, data] : tiles) {
    INFO("tile " << key.z << "/" << key.x << "/" << key.y);
    auto layers = decode_tile(data);
    REQUIRE(!layers.empty());
    std::set<std::string> names;
    for (const auto& layer : layers) {
      CHECK(layer.version == 2);
      CHECK(layer.extent == 4096);
      CHECK(names.insert(layer.name).second);
      CHECK(!layer.features.empty());
      for (const auto& f : layer.features) {
        INFO("layer " << layer.name << " feature " << f.id.value_or(0));
        CHECK(f.type != GeomType::kUnknown);
        CHECK(check_feature(f) == "");
      }
    }
    decoded[key] = std::move(layers);
  }
  return decoded;
}

// Neighbours draw the overlap band from the same simplified geometry: the original vertices a
// line or ring has strictly inside the band are the same on both sides.
int check_seams(const std::map<TileKey, std::vector<DecodedLayer>>& decoded) {
  int compared = 0;
  using Vertices = std::set<std::pair<int64_t, int64_t>>;
  auto band = [](const std::vector<DecodedLayer>& layers, int64_t shift, int64_t lo, int64_t hi) {
    std::map<std::pair<std::string, uint64_t>, Vertices> out;
    for (const auto& layer : layers)
      for (const auto& f : layer.features) {
        if (f.type == GeomType::kPoint || !f.id) continue;
        for (const auto& part : f.parts)
          for (const auto& p : part)
            if (p.x > lo && p.x < hi && p.y > -kBuffer && p.y < kExtent + kBuffer)
              out[{layer.name, *f.id}].insert({p.x + shift, p.y});
      }
    return out;
  };
  for (const auto& [key, layers] : decoded) {
    auto right = decoded.find({key.z, key.x + 1, key.y});
    if (right == decoded.end()) continue;
    const auto a = band(layers, 0, kExtent - kBuffer, kExtent + kBuffer);
    const auto b = band(right->second, kExtent, -kBuffer, kBuffer);
    for (const auto& [id, vertices] : a) {
      auto other = b.find(id);
      INFO("seam " << key.z << "/" << key.x << "/" << key.y << " layer " << id.first << " feature " << id.second);
      REQUIRE(other != b.end());
      CHECK(other->second == vertices);
      ++compared;
    }
  }
  return compared;
}

// The z14 tile holding lon/lat and the point's position in it.
std::tuple<int, int, double, double> tile_position(double lon, double lat, int z) {
  const auto [wx, wy] = lonlat_to_world(lon, lat);
  const double n = std::ldexp(1.0, z);
  const int tx = static_cast<int>(wx * n), ty = static_cast<int>(wy * n);
  return {tx, ty, (wx * n - tx) * kExtent, (wy * n - ty) * kExtent};
}

double metres_per_unit(double lat, int z) { return 40075016.686 * std::cos(lat * M_PI / 180) / std::ldexp(kExtent, z); }

const DecodedFeature* find_feature(const std::vector<DecodedLayer>& layers, const std::string& layer, uint64_t id) {
  for (const auto& l : layers)
    if (l.name == layer)
      for (const auto& f : l.features)
        if (f.id == id) return &f;
  return nullptr;
}

ImportOptions options_for(const fs::path& input, const fs::path& output) {
  ImportOptions o;
  o.input = input;
  o.output = output;
  o.name = "test";
  o.threads = 2;
  return o;
}

}  // namespace

TEST_CASE("a synthetic town imports into valid tiles with agreeing seams", "[tiles][import]") {
  coop::test::TempDir dir;
  write_town(dir.path() / "town.osm.pbf");
  auto options = options_for(dir.path() / "town.osm.pbf", dir.path() / "tiles" / "town.mbtiles");
  const auto summary = import_osm(options);
  CHECK(summary.nodes > 600);
  CHECK(summary.tiles > 15);
  CHECK(!fs::exists(dir.path() / "tiles" / (".town.mbtiles.tmp-" + std::to_string(::getpid()))));

  const auto decoded = validate_all(read_tiles(options.output));
  CHECK(check_seams(decoded) >= 10);

  // The cafe lies where OSM puts it, within a metre, at z14.
  const auto [tx, ty, px, py] = tile_position(7.4151, 43.7111, 14);
  auto tile = decoded.find({14, tx, ty});
  REQUIRE(tile != decoded.end());
  const auto* cafe = find_feature(tile->second, "pois", 777 * 4);
  REQUIRE(cafe);
  CHECK(std::hypot(cafe->parts[0][0].x - px, cafe->parts[0][0].y - py) * metres_per_unit(43.71, 14) < 1.0);
  // The park is one polygon with its pond as a hole (an exterior and an interior ring).
  const auto [ptx, pty, ppx, ppy] = tile_position(7.4050, 43.7045, 14);
  auto park_tile = decoded.find({14, ptx, pty});
  REQUIRE(park_tile != decoded.end());
  const auto* park = find_feature(park_tile->second, "land", 50 * 4 + 3);
  REQUIRE(park);
  REQUIRE(park->parts.size() == 2);
  CHECK(signed_area2(park->parts[0]) > 0);
  CHECK(signed_area2(park->parts[1]) < 0);

  // Metadata (MBTiles 1.3).
  auto archive = MbtilesArchive::open(options.output);
  const auto& m = archive->metadata();
  CHECK(m.at("format") == "pbf");
  CHECK(m.at("attribution") == "© OpenStreetMap contributors");
  CHECK(m.at("minzoom") == "0");
  CHECK(m.at("maxzoom") == "14");
  CHECK(m.count("bounds") == 1);
  CHECK(m.count("center") == 1);
  CHECK(m.at("json").find("\"vector_layers\"") != std::string::npos);
}

TEST_CASE("a failed import keeps the old archive", "[tiles][import]") {
  coop::test::TempDir dir;
  const auto input = dir.path() / "town.osm.pbf";
  write_town(input);
  auto options = options_for(input, dir.path() / "tiles" / "town.mbtiles");
  import_osm(options);
  std::ifstream before_in(options.output, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(before_in)), {});

  auto expect_failure = [&](const fs::path& bad) {
    auto o = options;
    o.input = bad;
    try {
      import_osm(o);
      FAIL("the import of " << bad << " should have failed");
    } catch (const coop::Error& e) {
      CHECK(e.code() == "bad_input");
    }
    std::ifstream after_in(options.output, std::ios::binary);
    const std::string after((std::istreambuf_iterator<char>(after_in)), {});
    CHECK(after == before);
    for (const auto& entry : fs::directory_iterator(options.output.parent_path()))
      CHECK(entry.path().filename().string().find(".tmp-") == std::string::npos);
  };
  // Truncated in the middle of a block.
  std::ifstream in(input, std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir.path() / "truncated.osm.pbf", std::ios::binary) << whole.substr(0, whole.size() * 2 / 3);
  expect_failure(dir.path() / "truncated.osm.pbf");
  // Not PBF at all.
  std::ofstream(dir.path() / "garbage.osm.pbf", std::ios::binary) << std::string(5000, 'x');
  expect_failure(dir.path() / "garbage.osm.pbf");
  // A flipped byte inside the compressed data.
  std::string flipped = whole;
  flipped[flipped.size() / 2] ^= 0x5a;
  std::ofstream(dir.path() / "flipped.osm.pbf", std::ios::binary) << flipped;
  expect_failure(dir.path() / "flipped.osm.pbf");
  expect_failure(dir.path() / "missing.osm.pbf");
  // A killed import's temporary file is cleared by the next import of the same archive.
  std::ofstream(options.output.parent_path() / ".town.mbtiles.tmp-999999") << "left by a killed import";
  import_osm(options);
  CHECK_FALSE(fs::exists(options.output.parent_path() / ".town.mbtiles.tmp-999999"));
  // Bad zooms are refused before anything is read.
  options.maxzoom = 17;
  CHECK_THROWS_AS(import_osm(options), coop::Error);
}

TEST_CASE("Monaco: every tile valid and seams agree", "[tiles][import][monaco]") {
  const fs::path monaco = fs::path(COOP_SHARED_DIR) / "data" / "osm" / "monaco.osm.pbf";
  if (!fs::exists(monaco)) {
    WARN("skipped: " << monaco << " is not here (it comes with CI's ../shared)");
    return;
  }
  coop::test::TempDir dir;
  auto options = options_for(monaco, dir.path() / "tiles" / "monaco.mbtiles");
  const auto summary = import_osm(options);
  CHECK(summary.features > 3000);
  const auto tiles = read_tiles(options.output);
  const auto decoded = validate_all(tiles);
  CHECK(check_seams(decoded) > 100);
  // Monaco has nothing drawn below z4 (its place=city label starts there).
  for (int z = 4; z <= 14; ++z) {
    bool any = false;
    for (const auto& [key, layers] : decoded) any = any || key.z == z;
    INFO("zoom " << z);
    CHECK(any);
  }
}

namespace {

// A coastal village: a coast running west to east across the extract (land north, sea south),
// an island offshore, a street tunnel, a one-way street drawn against its direction, a railway
// bridge, a ferry, a pier, a bus stop, a house number and a municipal boundary.
void write_coast(const fs::path& file, bool with_box) {
  using namespace osmium::builder::attr;  // NOLINT
  osmium::memory::Buffer buffer{1 << 20, osmium::memory::Buffer::auto_grow::yes};
  auto node = [&](int64_t id, double lon, double lat) { osmium::builder::add_node(buffer, _id(id), _location(lon, lat)); };
  // The coast at lat 43.70 (two ways joined at node 3), running east: land on its left (north).
  node(1, 7.39, 43.70), node(2, 7.41, 43.701), node(3, 7.43, 43.70), node(4, 7.45, 43.699), node(5, 7.47, 43.70);
  // The island: counter-clockwise on the map, land inside.
  node(10, 7.425, 43.690), node(11, 7.435, 43.690), node(12, 7.435, 43.694), node(13, 7.425, 43.694);
  // Streets, rail, ferry, pier, boundary.
  node(20, 7.41, 43.71), node(21, 7.42, 43.71), node(22, 7.43, 43.71), node(23, 7.44, 43.715);
  node(30, 7.41, 43.72), node(31, 7.44, 43.72), node(32, 7.43, 43.701), node(33, 7.43, 43.695);
  node(40, 7.40, 43.705), node(41, 7.46, 43.725);
  osmium::builder::add_node(buffer, _id(50), _location(7.415, 43.712), _tag("highway", "bus_stop"),
                            _tag("name", "Port Stop"));
  osmium::builder::add_node(buffer, _id(51), _location(7.416, 43.713), _tag("addr:housenumber", "17"),
                            _tag("addr:street", "Rue du Port"));
  osmium::builder::add_node(buffer, _id(52), _location(7.417, 43.714), _tag("amenity", "cafe"),
                            _tag("name", "Café du Môle"));
  osmium::builder::add_way(buffer, _id(100), _nodes({1, 2, 3}), _tag("natural", "coastline"));
  osmium::builder::add_way(buffer, _id(101), _nodes({3, 4, 5}), _tag("natural", "coastline"));
  osmium::builder::add_way(buffer, _id(102), _nodes({10, 11, 12, 13, 10}), _tag("natural", "coastline"));
  osmium::builder::add_way(buffer, _id(110), _nodes({20, 21}), _tag("highway", "primary"), _tag("tunnel", "yes"),
                           _tag("name", "Tunnel du Port"));
  osmium::builder::add_way(buffer, _id(111), _nodes({21, 22, 23}), _tag("highway", "residential"),
                           _tag("oneway", "-1"), _tag("name", "Rue du Port"));
  osmium::builder::add_way(buffer, _id(112), _nodes({30, 31}), _tag("railway", "rail"), _tag("bridge", "viaduct"));
  osmium::builder::add_way(buffer, _id(113), _nodes({32, 33}), _tag("route", "ferry"), _tag("name", "Island Ferry"));
  osmium::builder::add_way(buffer, _id(114), _nodes({3, 32}), _tag("man_made", "pier"));
  osmium::builder::add_way(buffer, _id(115), _nodes({40, 41}));
  osmium::builder::add_relation(buffer, _id(60), _member(osmium::item_type::way, 115, "outer"),
                                _tag("type", "boundary"), _tag("boundary", "administrative"), _tag("admin_level", "8"),
                                _tag("name", "Coastville"));
  osmium::io::Header header;
  if (with_box) header.add_box(osmium::Box{7.40, 43.68, 7.46, 43.73});
  osmium::io::Writer writer{osmium::io::File{file.string(), "pbf"}, header, osmium::io::overwrite::allow};
  writer(std::move(buffer));
  writer.close();
}

const Value* property(const DecodedFeature& f, const std::string& key) {
  for (const auto& [k, v] : f.properties)
    if (k == key) return &v;
  return nullptr;
}

// The first feature of the layer in the tile at (lon, lat), zoom z, or nullptr.
std::pair<const DecodedFeature*, std::tuple<int, int, double, double>> first_in(
    const std::map<TileKey, std::vector<DecodedLayer>>& decoded, const std::string& layer, double lon, double lat, int z) {
  const auto position = tile_position(lon, lat, z);
  const auto [tx, ty, px, py] = position;
  auto tile = decoded.find({z, tx, ty});
  if (tile == decoded.end()) return {nullptr, position};
  for (const auto& l : tile->second)
    if (l.name == layer && !l.features.empty()) return {&l.features.front(), position};
  return {nullptr, position};
}

bool inside_polygon(const DecodedFeature& f, double px, double py) {
  bool in = false;
  for (const auto& ring : f.parts)
    for (std::size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++)
      if ((ring[i].y > py) != (ring[j].y > py) &&
          px < double(ring[j].x - ring[i].x) * (py - ring[i].y) / double(ring[j].y - ring[i].y) + ring[i].x)
        in = !in;
  return in;
}

}  // namespace

TEST_CASE("a coastal extract gets its sea, islands as holes, at every zoom", "[tiles][import][coast]") {
  coop::test::TempDir dir;
  write_coast(dir.path() / "coast.osm.pbf", true);
  auto options = options_for(dir.path() / "coast.osm.pbf", dir.path() / "tiles" / "coast.mbtiles");
  const auto summary = import_osm(options);
  CHECK(summary.sea_polygons == 1);
  CHECK(summary.coastline_rings == 1);
  CHECK(summary.coastline_pieces == 1);
  CHECK(summary.coastline.find("cut by the extract's edge, closed along it") != std::string::npos);
  const auto decoded = validate_all(read_tiles(options.output));
  // Sea south of the coast, from z4 (where the extract is a dozen units wide; below, a quarter
  // pixel) to z14; none on land; the island is a hole.
  for (int z : {4, 8, 12, 14}) {
    INFO("zoom " << z);
    const auto [sea, at] = first_in(decoded, "ocean", 7.44, 43.685, z);
    REQUIRE(sea);
    CHECK(inside_polygon(*sea, std::get<2>(at), std::get<3>(at)));
  }
  const auto [land_sea, land_at] = first_in(decoded, "ocean", 7.42, 43.72, 14);
  CHECK((!land_sea || !inside_polygon(*land_sea, std::get<2>(land_at), std::get<3>(land_at))));
  const auto [island_sea, island_at] = first_in(decoded, "ocean", 7.43, 43.692, 14);
  REQUIRE(island_sea);
  CHECK_FALSE(inside_polygon(*island_sea, std::get<2>(island_at), std::get<3>(island_at)));
}

TEST_CASE("a coast cut short inside an extract without a box is drawn out to the edge", "[tiles][import][coast]") {
  coop::test::TempDir dir;
  write_coast(dir.path() / "coast.osm.pbf", false);
  auto options = options_for(dir.path() / "coast.osm.pbf", dir.path() / "tiles" / "coast.mbtiles");
  const auto summary = import_osm(options);
  // Without a header box the features' extent is the box; the coast reaches its west and east.
  CHECK(summary.sea_polygons == 1);
  CHECK(summary.coastline_segments == 3);
}

TEST_CASE("streets, stops, ferries, piers, boundaries and house numbers in Shortbread's layers", "[tiles][import]") {
  coop::test::TempDir dir;
  write_coast(dir.path() / "coast.osm.pbf", true);
  auto options = options_for(dir.path() / "coast.osm.pbf", dir.path() / "tiles" / "coast.mbtiles");
  import_osm(options);
  const auto decoded = validate_all(read_tiles(options.output));
  auto feature = [&](const std::string& layer, uint64_t id, double lon, double lat) {
    const auto [tx, ty, px, py] = tile_position(lon, lat, 14);
    auto tile = decoded.find({14, tx, ty});
    REQUIRE(tile != decoded.end());
    const auto* f = find_feature(tile->second, layer, id);
    INFO(layer << " " << id);
    REQUIRE(f);
    return f;
  };
  auto is_true = [](const Value* v) { return v && std::holds_alternative<bool>(*v) && std::get<bool>(*v); };
  auto text = [](const Value* v) { return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : ""; };
  CHECK(is_true(property(*feature("streets", 110 * 4 + 1, 7.415, 43.71), "tunnel")));
  const auto* oneway = feature("streets", 111 * 4 + 1, 7.425, 43.71);
  CHECK(is_true(property(*oneway, "oneway")));
  CHECK(is_true(property(*oneway, "oneway_reverse")));
  const auto* rail = feature("streets", 112 * 4 + 1, 7.42, 43.72);
  CHECK(is_true(property(*rail, "rail")));
  CHECK(is_true(property(*rail, "bridge")));
  CHECK(text(property(*feature("ferries", 113 * 4 + 1, 7.43, 43.698), "name")) == "Island Ferry");
  CHECK(text(property(*feature("pier_lines", 114 * 4 + 1, 7.43, 43.7005), "kind")) == "pier");
  CHECK(text(property(*feature("public_transport", 50 * 4, 7.415, 43.712), "kind")) == "bus_stop");
  CHECK(text(property(*feature("addresses", 51 * 4, 7.416, 43.713), "housenumber")) == "17");
  const auto* boundary = feature("boundaries", 115 * 4 + 1, 7.43, 43.715);
  const auto* level = property(*boundary, "admin_level");
  REQUIRE(level);
  CHECK(std::get<int64_t>(*level) == 8);

  // The place search index: accents and case do not matter, a word's start is enough.
  auto archive = MbtilesArchive::open(options.output);
  auto hits = archive->search("cafe du mole", 5);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].name == "Café du Môle");
  CHECK(hits[0].layer == "pois");
  CHECK(std::abs(hits[0].lon - 7.417) < 1e-5);
  CHECK(std::abs(hits[0].lat - 43.714) < 1e-5);
  hits = archive->search("PORT", 5);
  // Names that start with the query first, then by weight: streets before stops.
  REQUIRE(hits.size() == 3);
  CHECK(hits[0].name == "Port Stop");
  CHECK(hits[1].layer == "streets");
  CHECK(hits[2].layer == "streets");
  CHECK(archive->search("rue du p", 5).size() == 1);
  CHECK(archive->search("\"*) OR (", 5).empty());
  CHECK(archive->search("   ", 5).empty());
  CHECK(archive->search("nowhere", 5).empty());
}
