// TileService without a network: tile addresses, status codes, ETag/304, gzip negotiation,
// archive swaps, and the markers API's validation and ownership rules.
#include <catch2/catch.hpp>

#include "tests/unit/common/temp_dir.h"

#include <nlohmann/json.hpp>
#include <protozero/pbf_reader.hpp>

#include <cmath>
#include <map>

#include <filesystem>
#include <atomic>
#include <thread>

#include "common/error.h"
#include "workers/tiles/glyphs.h"
#include "workers/tiles/mbtiles.h"
#include "workers/tiles/mvt.h"
#include "workers/tiles/store/marker_store.h"
#include "workers/tiles/tile_service.h"

namespace fs = std::filesystem;
using namespace coop::tiles;
using coop::http::Request;
using coop::http::Response;

namespace {

std::string one_point_tile(int64_t x) {
  LayerBuilder layer("pois");
  layer.add_point({x, 100}, {{"name", std::string("here")}}, 1);
  return encode_tile({layer});
}

void write_archive(const fs::path& file, int64_t marker_x) {
  MbtilesWriter writer(file);
  writer.put_tile(0, 0, 0, gzip(one_point_tile(marker_x)));
  writer.put_tile(2, 1, 2, gzip(one_point_tile(marker_x)));
  writer.set_metadata("name", "t");
  writer.set_metadata("format", "pbf");
  writer.set_metadata("minzoom", "0");
  writer.set_metadata("maxzoom", "2");
  writer.set_metadata("bounds", "-10,-10,10,10");
  writer.set_metadata("center", "0,0,1");
  writer.set_metadata("json", R"({"vector_layers":[{"id":"pois","fields":{}}]})");
  writer.commit();
}

Request get(const std::string& target, std::map<std::string, std::string> headers = {}) {
  Request q;
  q.method = "GET";
  REQUIRE(coop::http::parse_target(target, q));
  q.target = target;
  q.headers = std::move(headers);
  q.headers.emplace("host", "maps.test:8080");
  return q;
}

std::string header(const Response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return {};
}

}  // namespace

TEST_CASE("tile addresses parse strictly", "[tiles][service]") {
  auto t = parse_tile_path("monaco/14/8529/5974.pbf");
  REQUIRE(t);
  CHECK(t->name == "monaco");
  CHECK(t->z == 14);
  CHECK(t->x == 8529);
  CHECK(t->y == 5974);
  CHECK(parse_tile_path("monaco/14/8529/5974.mvt"));
  CHECK_FALSE(parse_tile_path("monaco/14/8529/5974.png"));
  CHECK_FALSE(parse_tile_path("monaco/14/8529"));
  CHECK_FALSE(parse_tile_path("../14/1/1.pbf"));
  CHECK_FALSE(parse_tile_path("Monaco/1/1/1.pbf"));
  CHECK_THROWS_AS(parse_tile_path("monaco/x/1/1.pbf"), coop::Error);
  CHECK_THROWS_AS(parse_tile_path("monaco/1/-1/1.pbf"), coop::Error);
  CHECK_THROWS_AS(parse_tile_path("monaco/1/1/1e3.pbf"), coop::Error);
  CHECK_THROWS_AS(parse_tile_path("monaco/1/99999999999/1.pbf"), coop::Error);
  CHECK(parse_tile_path("monaco/3/8/0.pbf")->z == -1);  // well-formed, out of range
  CHECK(parse_tile_path("monaco/31/0/0.pbf")->z == -1);
}

TEST_CASE("tiles: 200 with gzip, 204 for empty, 404 outside, ETag and 304", "[tiles][service]") {
  coop::test::TempDir dir;
  write_archive(dir.path() / "t.mbtiles", 10);
  MarkerStore markers(dir.path() / "tiles.db");
  TileServiceOptions options;
  options.tiles_dir = dir.path();
  options.recheck = std::chrono::milliseconds(0);
  TileService service(options, &markers);

  auto r = service.handle(get("/tiles/t/2/1/2.pbf", {{"accept-encoding", "gzip, deflate"}}));
  CHECK(r.status == 200);
  CHECK(header(r, "Content-Encoding") == "gzip");
  CHECK(header(r, "Access-Control-Allow-Origin") == "*");
  CHECK(header(r, "Cache-Control").find("max-age=") != std::string::npos);
  CHECK(decode_tile(gunzip(r.body))[0].name == "pois");
  const std::string etag = header(r, "ETag");
  CHECK(!etag.empty());

  r = service.handle(get("/tiles/t/2/1/2.pbf"));
  CHECK(r.status == 200);
  CHECK(header(r, "Content-Encoding").empty());
  CHECK(decode_tile(r.body)[0].features[0].parts[0][0].x == 10);

  CHECK(service.handle(get("/tiles/t/2/0/0.pbf")).status == 204);
  CHECK(service.handle(get("/tiles/t/3/0/0.pbf")).status == 404);
  CHECK(service.handle(get("/tiles/t/2/4/0.pbf")).status == 404);
  CHECK(service.handle(get("/tiles/other/0/0/0.pbf")).status == 404);
  CHECK(service.handle(get("/tiles/t/0/0/0.png")).status == 404);
  CHECK(etag.find("-gz\"") != std::string::npos);  // one tag per encoding (RFC 9110 8.8.3)
  CHECK(service.handle(get("/tiles/t/2/1/2.pbf", {{"if-none-match", etag}, {"accept-encoding", "gzip"}})).status == 304);
  CHECK(service.handle(get("/tiles/t/2/1/2.pbf", {{"if-none-match", etag}})).status == 200);  // identity: another tag
  CHECK(service.handle(get("/tiles/t/2/1/2.pbf", {{"if-none-match", "\"other\""}})).status == 200);
  r = service.handle(get("/tiles/t/2/1/2.pbf", {{"if-none-match", etag}, {"accept-encoding", "gzip"}}));
  CHECK(header(r, "Cache-Control") != "");
  CHECK(header(r, "Vary") == "Accept-Encoding");
  CHECK(header(r, "Access-Control-Allow-Origin") == "*");

  // A new archive renamed over the old one: picked up, and the ETag changes.
  write_archive(dir.path() / "t.mbtiles", 20);
  r = service.handle(get("/tiles/t/2/1/2.pbf", {{"if-none-match", etag}}));
  CHECK(r.status == 200);
  CHECK(header(r, "ETag") != etag);
  CHECK(decode_tile(r.body)[0].features[0].parts[0][0].x == 20);

  // TileJSON with absolute tile URLs from the Host header.
  r = service.handle(get("/tiles/t.json"));
  CHECK(r.status == 200);
  const auto tj = nlohmann::json::parse(r.body);
  CHECK(tj["tilejson"] == "3.0.0");
  CHECK(tj["tiles"][0].get<std::string>().rfind("http://maps.test:8080/tiles/t/{z}/{x}/{y}.pbf?v=", 0) == 0);
  CHECK(tj["version"] == "1.0.0");
  CHECK(tj["bounds"].size() == 4);
  CHECK(tj["vector_layers"][0]["id"] == "pois");
  // A hostile Host header does not make it into URLs.
  r = service.handle(get("/tiles/t.json", {{"host", "evil\"/><script>"}}));
  CHECK(nlohmann::json::parse(r.body)["tiles"][0].get<std::string>().rfind("http://localhost/", 0) == 0);
  const auto style = nlohmann::json::parse(service.handle(get("/tiles/t/style.json")).body);
  CHECK(style["version"] == 8);
  CHECK(style["sources"]["osm"]["url"] == "http://maps.test:8080/tiles/t.json");
  r = service.handle(get("/tiles/t/map"));
  CHECK(r.status == 200);
  CHECK(header(r, "Content-Security-Policy") == "frame-ancestors *");
  CHECK(r.body.find("/tiles/assets/maplibre-gl.js") != std::string::npos);
  Request post = get("/tiles/t/2/1/2.pbf");
  post.method = "POST";
  CHECK(service.handle(post).status == 405);
}

TEST_CASE("an archive keeps reading its own file after an import renames a new one over it", "[tiles][service]") {
  coop::test::TempDir dir;
  write_archive(dir.path() / "t.mbtiles", 10);
  auto old_archive = MbtilesArchive::open(dir.path() / "t.mbtiles", 2);
  write_archive(dir.path() / "t.mbtiles", 20);
  // More readers than connections: they wait for one, never open the new file.
  std::vector<std::thread> readers;
  std::atomic<int> old_seen{0}, wrong{0};
  for (int t = 0; t < 8; ++t)
    readers.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto data = old_archive->tile(2, 1, 2);
        if (data && decode_tile(gunzip(*data))[0].features[0].parts[0][0].x == 10) ++old_seen;
        else ++wrong;
      }
    });
  for (auto& r : readers) r.join();
  CHECK(old_seen == 200);
  CHECK(wrong == 0);
  auto new_archive = MbtilesArchive::open(dir.path() / "t.mbtiles");
  CHECK(new_archive->version() != old_archive->version());
  CHECK(decode_tile(gunzip(*new_archive->tile(2, 1, 2)))[0].features[0].parts[0][0].x == 20);
}

TEST_CASE("names the server's own paths use are refused", "[tiles][service]") {
  CHECK_FALSE(valid_archive_name("api"));
  CHECK_FALSE(valid_archive_name("assets"));
  CHECK_FALSE(valid_archive_name("fonts"));
  CHECK(valid_archive_name("monaco"));
  CHECK(valid_archive_name("city-2026_v2"));
  CHECK_FALSE(valid_archive_name("-x"));
}

TEST_CASE("markers: GeoJSON validation, revisions, owners", "[tiles][markers]") {
  coop::test::TempDir dir;
  MarkerStore markers(dir.path() / "tiles.db");
  TileServiceOptions options;
  options.tiles_dir = dir.path();
  TileService service(options, &markers);

  const auto feature = [](double lon, double lat, nlohmann::json properties) {
    return nlohmann::json{{"type", "Feature"},
                          {"geometry", {{"type", "Point"}, {"coordinates", {lon, lat}}}},
                          {"properties", properties}};
  };
  CHECK_THROWS_AS(marker_from_feature(feature(7.4, 43.7, {{"kind", "event"}}), false), coop::Error);
  CHECK_THROWS_AS(marker_from_feature(feature(7.4, 95, {{"title", "x"}}), false), coop::Error);
  CHECK_THROWS_AS(marker_from_feature(feature(7.4, 43.7, {{"title", "x"}, {"kind", "party"}}), false), coop::Error);
  CHECK_THROWS_AS(marker_from_feature(feature(7.4, 43.7, {{"title", "x"}, {"when", "tomorrow"}}), false), coop::Error);
  CHECK_THROWS_AS(marker_from_feature(feature(7.4, 43.7, {{"title", "line\nbreak"}}), false), coop::Error);
  CHECK_THROWS_AS(marker_from_feature(nlohmann::json{{"type", "Feature"}}, false), coop::Error);
  // Members of the wrong JSON type are bad input, not a server error.
  CHECK_THROWS_AS(marker_from_feature(nlohmann::json{{"type", 7}}, false), coop::Error);
  CHECK_THROWS_AS(marker_from_feature(nlohmann::json{{"type", "Feature"}, {"geometry", {{"type", 1}}}}, false), coop::Error);
  CHECK_THROWS_AS(marker_from_feature(feature(7.4, 43.7, {{"title", 5}}), false), coop::Error);
  auto m = marker_from_feature(feature(7.42, 43.73, {{"title", "Repair café"}, {"kind", "event"},
                                                     {"when", "2026-12-05T18:00:00+01:00"}, {"by", "mallory"}}),
                               false);
  CHECK(m.by.empty());  // the API sets the owner from the login, never from the body

  const auto before = markers.revision();
  Request q = get("/tiles/markers.geojson");
  const auto first = service.handle(q);
  const std::string etag = header(first, "ETag");
  CHECK(service.handle(get("/tiles/markers.geojson", {{"if-none-match", etag}})).status == 304);
  m.by = "alice";
  m = markers.add(m);
  CHECK(markers.revision() != before);
  auto r = service.handle(get("/tiles/markers.geojson", {{"if-none-match", etag}}));
  CHECK(r.status == 200);
  const auto collection = nlohmann::json::parse(r.body);
  CHECK(collection["type"] == "FeatureCollection");
  CHECK(collection["features"][0]["properties"]["title"] == "Repair café");
  CHECK_FALSE(collection["features"][0]["properties"].contains("by"));  // public: no owner

  // The API: anonymous gets 401; another member cannot remove alice's marker.
  Authenticator nobody = [](const Request&) { return std::optional<std::string>(); };
  Authenticator bob = [](const Request&) { return std::optional<std::string>("bob"); };
  Authenticator alice = [](const Request&) { return std::optional<std::string>("alice"); };
  CHECK(service.handle_api(get("/tiles/api/markers"), nobody).status == 401);
  auto mine = nlohmann::json::parse(service.handle_api(get("/tiles/api/markers"), bob).body);
  CHECK(mine["features"][0]["properties"]["by"] == "alice");
  Request del = get("/tiles/api/markers/" + std::to_string(m.id));
  del.method = "DELETE";
  CHECK(service.handle_api(del, bob).status == 403);
  CHECK(service.handle_api(del, alice).status == 200);
  CHECK(markers.list().empty());
  Request add = get("/tiles/api/markers");
  add.method = "POST";
  add.body = feature(7.41, 43.72, {{"title", "Tool library"}}).dump();
  r = service.handle_api(add, bob);
  CHECK(r.status == 201);
  CHECK(nlohmann::json::parse(r.body)["properties"]["by"] == "bob");
  CHECK(nlohmann::json::parse(r.body)["properties"]["kind"] == "resource");
}

TEST_CASE("signed distance of a square", "[tiles][glyphs]") {
  // A 4x4 filled square in a 12x12 grid.
  std::vector<uint8_t> coverage(144, 0);
  for (int y = 4; y < 8; ++y)
    for (int x = 4; x < 8; ++x) coverage[y * 12 + x] = 255;
  const auto d = signed_distance(coverage, 12, 12);
  CHECK(d[4 * 12 + 4] == Approx(-0.5));   // an inside corner pixel: half a pixel from the edge
  CHECK(d[5 * 12 + 5] == Approx(-1.5));   // one further in
  CHECK(d[4 * 12 + 3] == Approx(0.5));    // just outside the left edge
  CHECK(d[4 * 12 + 0] == Approx(3.5));
  CHECK(d[0] == Approx(std::sqrt(32.0) - 0.5));  // diagonal to the corner pixel (4,4)
}

TEST_CASE("glyph ranges for MapLibre labels", "[tiles][glyphs]") {
  GlyphServer glyphs("/usr/share/fonts/truetype/dejavu");
  const auto font = glyphs.default_font();
  if (!font) {
    WARN("skipped: no fonts in /usr/share/fonts/truetype/dejavu (fonts-dejavu-core)");
    return;
  }
  CHECK(*font == "DejaVu Sans Book");
  CHECK_FALSE(glyphs.range("No Such Font", 0));
  CHECK_FALSE(glyphs.range(*font, 100));  // not a range start
  const auto range_pbf = glyphs.range("No Such Font, " + *font, 0);
  REQUIRE(range_pbf);
  const auto gz = glyphs.range(*font, 0, true);
  REQUIRE(gz);
  CHECK(gunzip(gz->bytes) == range_pbf->bytes);
  CHECK(gz->tag == range_pbf->tag);
  const std::string* pbf = &range_pbf->bytes;
  // glyphs { stacks = 1 { name = 1, range = 2, glyphs = 3 { id, bitmap, width, height, left, top, advance } } }
  protozero::pbf_reader message(*pbf);
  REQUIRE(message.next(1));
  protozero::pbf_reader stack = message.get_message();
  std::string name, range;
  struct G {
    std::string bitmap;
    uint32_t width = 0, height = 0, advance = 0;
    int32_t left = 0, top = 0;
  };
  std::map<uint32_t, G> found;
  while (stack.next()) {
    switch (stack.tag()) {
      case 1: name = stack.get_string(); break;
      case 2: range = stack.get_string(); break;
      case 3: {
        protozero::pbf_reader glyph = stack.get_message();
        uint32_t id = 0;
        G g;
        while (glyph.next()) {
          switch (glyph.tag()) {
            case 1: id = glyph.get_uint32(); break;
            case 2: g.bitmap = glyph.get_bytes(); break;
            case 3: g.width = glyph.get_uint32(); break;
            case 4: g.height = glyph.get_uint32(); break;
            case 5: g.left = glyph.get_sint32(); break;
            case 6: g.top = glyph.get_sint32(); break;
            case 7: g.advance = glyph.get_uint32(); break;
            default: glyph.skip();
          }
        }
        found[id] = g;
        break;
      }
      default: stack.skip();
    }
  }
  CHECK(name == *font);
  CHECK(range == "0-255");
  REQUIRE(found.count('A'));
  REQUIRE(found.count(' '));
  REQUIRE(found.count(0xe9));  // é, for names like Musée
  const auto& a = found['A'];
  CHECK(a.width > 10);
  CHECK(a.height > 10);
  CHECK(a.bitmap.size() == (a.width + 6) * (a.height + 6));
  CHECK(a.advance > 10);
  CHECK(found[' '].width == 0);
  CHECK(found[' '].bitmap.empty());
  CHECK(found[' '].advance > 3);
  // The SDF: an 'l' stem's middle is well inside (above the 192 edge value), the bitmap's
  // corners are far outside.
  const auto& l = found['l'];
  const std::size_t w = l.width + 6;
  const auto at = [&](std::size_t x, std::size_t y) { return static_cast<uint8_t>(l.bitmap[y * w + x]); };
  CHECK(at(w / 2, (l.height + 6) / 2) > 192);
  CHECK(at(0, 0) < 100);
  // Baseline-relative tops, as MapLibre expects: 'x' sits lower than 'A'.
  CHECK(found['x'].top < a.top);
}
