// libFuzzer target: the tile server's request path. The input is an HTTP request target and
// a few header values (lines: target, If-None-Match, Accept-Encoding, Host, then a body for
// the members' API), answered by a TileService over a small real archive. Whatever comes in, the answer is a well-formed
// status, and a 200 tile decodes.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <iterator>
#include <optional>
#include <memory>
#include <sstream>
#include <string>

#include "common/error.h"
#include "common/http/message.h"
#include "workers/tiles/mbtiles.h"
#include "workers/tiles/mvt.h"
#include "workers/tiles/store/marker_store.h"
#include "workers/tiles/tile_service.h"

namespace fs = std::filesystem;
using namespace coop::tiles;

namespace {

struct Fixture {
  fs::path dir;
  std::unique_ptr<MarkerStore> markers;
  std::unique_ptr<TileService> service;
  Fixture() {
    dir = fs::temp_directory_path() / ("coop-fuzz-tiles-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    MbtilesWriter writer(dir / "t.mbtiles");
    LayerBuilder layer("pois");
    layer.add_point({100, 100}, {{"name", std::string("x")}}, 1);
    const std::string tile = encode_tile({layer});
    writer.put_tile(0, 0, 0, gzip(tile));
    writer.put_tile(1, 1, 0, gzip(tile));
    writer.set_metadata("minzoom", "0");
    writer.set_metadata("maxzoom", "1");
    writer.set_metadata("json", "{\"vector_layers\":[]}");
    writer.commit();
    markers = std::make_unique<MarkerStore>(dir / "tiles.db");
    TileServiceOptions options;
    options.tiles_dir = dir;
    options.assets_dir = dir;
    service = std::make_unique<TileService>(options, markers.get());
  }
  ~Fixture() {
    service.reset();
    markers.reset();
    fs::remove_all(dir);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string target, etag, encoding, host;
  std::getline(in, target);
  std::getline(in, etag);
  std::getline(in, encoding);
  std::getline(in, host);
  std::string body((std::istreambuf_iterator<char>(in)), {});
  coop::http::Request request;
  static const char* kMethods[] = {"GET", "HEAD", "POST", "DELETE", "OPTIONS", "GET"};
  request.method = kMethods[target.size() % 6];
  if (!coop::http::parse_target(target, request)) return 0;
  request.target = target;
  if (!etag.empty()) request.headers["if-none-match"] = etag;
  if (!encoding.empty()) request.headers["accept-encoding"] = encoding;
  if (!host.empty()) request.headers["host"] = host;
  coop::http::Response response;
  if (request.path.rfind("/tiles/api/", 0) == 0) {
    request.body = body;
    const coop::tiles::Authenticator member = [](const coop::http::Request&) {
      return std::optional<std::string>("alice");
    };
    try {
      response = fixture.service->handle_api(request, member);
    } catch (const coop::Error& e) {
      if (e.status() >= 500) __builtin_trap();  // bad input is the client's fault, never a 5xx
      return 0;
    }
    if (response.status >= 500) __builtin_trap();
    return 0;
  }
  try {
    response = fixture.service->handle(request);
  } catch (const coop::Error& e) {
    if (e.status() != 400) __builtin_trap();  // only a malformed address may throw
    return 0;
  }
  if (response.status < 200 || response.status > 599) __builtin_trap();
  if (response.status == 200 && response.content_type == "application/vnd.mapbox-vector-tile") {
    bool gzipped = false;
    for (const auto& [name, value] : response.headers) gzipped = gzipped || (name == "Content-Encoding" && value == "gzip");
    decode_tile(gzipped ? gunzip(response.body) : response.body);
  }
  return 0;
}
