// coop-tiles wiring.
#include "workers/tiles/tiles_worker.h"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <mutex>

#include "common/auth/basic_auth.h"
#include "common/auth/member_client.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/http/listen.h"
#include "common/http/router.h"
#include "common/http/server.h"
#include "common/worker_runtime.h"
#include "workers/tiles/mbtiles.h"
#include "workers/tiles/store/marker_store.h"
#include "workers/tiles/tile_service.h"

namespace fs = std::filesystem;

namespace coop::tiles {

namespace {

using nlohmann::json;

fs::path default_assets_dir() {
  // Installed: <prefix>/bin/coop-tiles beside <prefix>/share/coop/tiles; in the build tree,
  // the npm package in the source tree (scripts/install-deps installs it).
  std::error_code ec;
  const auto bin = fs::read_symlink("/proc/self/exe", ec).parent_path();
  const auto installed = bin.parent_path() / "share" / "coop" / "tiles";
  if (fs::exists(installed / "maplibre-gl.js", ec)) return installed;
  return COOP_TILES_WEB_DIR;
}

}  // namespace

TilesWorker::TilesWorker(WorkerRuntime& runtime)
    : markers_(std::make_unique<MarkerStore>(runtime.home().database("tiles"))),
      credentials_(std::make_unique<auth::BasicAuthCache>(runtime.home(), "tiles")),
      router_(std::make_unique<http::Router>()) {
  const auto& config = runtime.config();
  const auto& home = runtime.home();
  TileServiceOptions options;
  options.tiles_dir = home.root() / "tiles";
  options.assets_dir = config.get_string("workers.tiles.assets_dir", default_assets_dir().string());
  options.max_age_seconds = static_cast<int>(config.get_count("workers.tiles.max_age_seconds", 3600, 0, 1 << 30));
  options.public_url = config.get_string("workers.tiles.public_url", "");
  options.frame_ancestors = config.get_string("workers.tiles.frame_ancestors", "*");
  options.max_markers_per_member = static_cast<int64_t>(config.get_count("workers.tiles.max_markers_per_member", 1000));
  options.fonts_dir = config.get_string("workers.tiles.fonts_dir", options.fonts_dir.string());
  // The icons: beside MapLibre GL when installed, else Maki's npm package in the source tree.
  options.icons_dir = fs::path(options.assets_dir) / "icons";
  if (std::error_code missing; !fs::exists(options.icons_dir, missing)) options.icons_dir = COOP_TILES_ICONS_DIR;
  std::error_code ec;
  fs::create_directories(options.tiles_dir, ec);

  std::vector<ListenerConfig> listeners;
  for (const auto& listener : config.listeners("tiles"))
    if (listener.name == "http") listeners.push_back(listener);
  if (!listeners.empty() && listeners.front().scheme == "https") options.scheme = "https";
  service_ = std::make_unique<TileService>(options, markers_.get());

  auto run = runtime.blocking_runner();
  const Home* home_ptr = &home;
  router_->set_fallback([this, run](const http::Request& q, http::Reply reply) {
    auto answer = [this](const http::Request& request) {
      try {
        if (request.path.rfind("/tiles/api/", 0) == 0) {
          return service_->handle_api(request, [this](const http::Request& r) { return credentials_->check(r); });
        }
        return service_->handle(request);
      } catch (const Error& e) {
        // Server-side failures are logged in full; the public gets no file names or paths.
        const bool ours = e.status() >= 500;
        if (ours) spdlog::warn("tiles {} {}: {}", request.method, request.path, e.what());
        const std::string message = ours ? "internal error" : e.what();
        auto r = request.path.rfind("/tiles/api/", 0) == 0
                     ? http::Response::error(e.code(), message, e.status())
                     : http::Response::bytes(e.status(), message + "\n", "text/plain; charset=utf-8");
        r.headers.emplace_back("Access-Control-Allow-Origin", "*");
        return r;
      } catch (const std::exception& e) {
        spdlog::error("tiles {} {}: {}", request.method, request.path, e.what());
        return http::Response::bytes(500, "internal error\n", "text/plain");
      }
    };
    // Tiles are point reads of an immutable file: answered on the event loop. The markers API
    // checks passwords (argon2id) and commits, and a glyph range may need rendering, so
    // those run on the blocking pool.
    if (q.path.rfind("/tiles/api/", 0) == 0 || q.path.rfind("/tiles/fonts/", 0) == 0) {
      run([answer, q, reply] { reply(answer(q)); });
    } else {
      reply(answer(q));
    }
  });

  // Control API: `coop tiles marker ...` and scripts.
  auto& control = runtime.router();
  control.add_blocking("GET", "/v1/markers", run, [this](const http::Request& q) {
    json features = json::array();
    for (const auto& m : markers_->list(q.query_value("kind"))) features.push_back(marker_feature(m, true));
    return http::Response::json({{"type", "FeatureCollection"}, {"features", features}});
  }, "List markers (GeoJSON); ?kind=resource|event");
  control.add_blocking("POST", "/v1/markers", run, [this, home_ptr](const http::Request& q) {
    Marker m = marker_from_feature(q.json(), true);
    if (!m.by.empty()) {
      // Only members of the registry own markers.
      control::Client member(home_ptr->socket("member"));
      const auto response = member.get("/v1/members/" + m.by);
      if (response.status == 404) throw Error(errc::kUnknownMember, "no member '" + m.by + "'", 404);
      response.throw_if_error();
    }
    return http::Response::json(marker_feature(markers_->add(m), true), 201);
  }, "Add a marker: a GeoJSON Feature with a Point and properties title, kind, when, by, description");
  control.add_blocking("DELETE", "/v1/markers/{id}", run, [this](const http::Request& q) {
    int64_t id = 0;
    try {
      id = std::stoll(q.param("id"));
    } catch (...) {
      throw Error(errc::kBadRequest, "marker ids are numbers", 400);
    }
    auto removed = markers_->remove(id);
    if (!removed) throw Error(errc::kNoMarker, "no marker " + q.param("id"), 404);
    return http::Response::json(marker_feature(*removed, true));
  }, "Remove a marker");
  control.add_blocking("GET", "/v1/archives", run, [this, home_ptr](const http::Request&) {
    json out = json::array();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(home_ptr->root() / "tiles", ec)) {
      const auto name = entry.path().stem().string();
      if (entry.path().extension() != ".mbtiles" || !valid_archive_name(name)) continue;
      auto archive = service_->archive(name);
      if (!archive) continue;
      out.push_back({{"name", name}, {"version", archive->version()}, {"minzoom", archive->minzoom()},
                     {"maxzoom", archive->maxzoom()}, {"metadata", archive->metadata()}});
    }
    return http::Response::json(out);
  }, "The tile archives being served");

  http::ServerLimits limits;
  limits.max_body_bytes = 64 << 10;
  limits.max_connections = config.get_count("workers.tiles.max_connections", 4096, 1);
  limits.max_per_address = config.get_count("workers.tiles.max_connections_per_address", 256);
  limits.max_per_network = config.get_count("workers.tiles.max_connections_per_network", 1024);
  limits.trusted_proxies = config.get_strings("http.trusted_proxies", {});
  limits.idle_timeout = config.get_millis("workers.tiles.idle_timeout_ms", std::chrono::milliseconds(60000));
  server_ = http::serve_worker_listener(runtime, "tiles", "http", *router_, limits);
  runtime.on_status([this](json& status) { status["archives_open"] = service_->archives_open(); });

  follower_ = std::make_unique<auth::MemberEventFollower>(home, [this](const auth::MemberEvent& event) {
    if (auth::ends_sessions(event)) credentials_->forget(event.handle);
  });
  runtime.on_shutdown([this] {
    if (server_) server_->stop();
  });
}

TilesWorker::~TilesWorker() {
  follower_.reset();
  if (server_) server_->stop();
}

}  // namespace coop::tiles
