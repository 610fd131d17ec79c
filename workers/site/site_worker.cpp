// coop-site wiring and its control API.
#include "workers/site/site_worker.h"

#include <nlohmann/json.hpp>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "common/client_settings.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/http/date.h"
#include "common/http/listen.h"
#include "common/http/router.h"
#include "common/http/server.h"
#include "common/paths.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/site/render.h"
#include "workers/site/site_paths.h"
#include "workers/site/site_service.h"
#include "workers/site/store/site_store.h"

namespace coop::site {

namespace {

using nlohmann::json;

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json version_json(const VersionInfo& v) {
  return {{"site", v.site}, {"version", v.number}, {"created_at", http::iso8601(v.created_at)}, {"files", v.files},
          {"bytes", v.bytes},  {"source", v.source},  {"current", v.current}};
}

json event_json(const Event& e) {
  json j = {{"slug", e.slug}, {"title", e.title}, {"starts", http::iso8601(e.starts)},
            {"ends", e.ends ? json(http::iso8601(e.ends)) : json(nullptr)}, {"location", e.location},
            {"description", e.description}, {"uid", e.uid}, {"path", "events/" + e.slug + "/"},
            {"ics", "events/" + e.slug + ".ics"}};
  if (e.lat && e.lon) j["marker"] = {{"lat", *e.lat}, {"lon", *e.lon}};
  return j;
}

std::string site_param(const http::Request& q) {
  const std::string name = q.param("site");
  if (!valid_site_name(name)) throw Error(errc::kBadSite, "site names are 1-63 of a-z, 0-9, - and _: '" + name + "'", 400);
  return name;
}

std::string required_text(const json& body, const char* key) {
  if (!body.contains(key) || !body[key].is_string() || body[key].get<std::string>().empty())
    throw Error(errc::kBadRequest, std::string("give ") + key, 400);
  return body[key].get<std::string>();
}

std::string optional_text(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return {};
  if (!body[key].is_string()) throw Error(errc::kBadRequest, std::string(key) + " must be a string", 400);
  return body[key].get<std::string>();
}

}  // namespace

SiteWorker::SiteWorker(WorkerRuntime& runtime) : home_(runtime.home()), router_(std::make_unique<http::Router>()) {
  const auto& config = runtime.config();
  timezone_ = config.get_string("workers.site.timezone", "UTC");
  store_ = std::make_unique<SiteStore>(runtime.home().database("site"), runtime.home().root() / "blobs" / "site",
                                       static_cast<int>(config.get_count("workers.site.keep_versions", 10, 0, 1 << 30)));
  SiteServiceOptions options;
  options.max_age_seconds = static_cast<int>(config.get_count("workers.site.max_age_seconds", 300, 0, 1 << 30));
  options.cache_bytes = static_cast<int64_t>(config.get_count("workers.site.cache_bytes", 256 << 20));
  options.preview_domain = ascii_lower(config.get_string("workers.site.preview_domain", ""));
  std::string listener_url;
  for (const auto& listener : config.listeners("site"))
    if (listener.name == "http") {
      options.https = listener.scheme == "https";
      listener_url = listener.url();
    }
  public_url_ = config.get_string("workers.site.public_url", listener_url);
  std::string tiles_listener;
  for (const auto& listener : config.listeners("tiles"))
    if (listener.name == "http") tiles_listener = listener.url();
  tiles_url_ = config.get_string("workers.tiles.public_url", tiles_listener);
  while (!public_url_.empty() && public_url_.back() == '/') public_url_.pop_back();
  options.front_page = [this](const std::vector<std::string>& sites) { return front_page(sites); };
  links_ = {{"portal", public_base_url(config, "member", "portal")},
            {"tiles", public_base_url(config, "tiles", "http")},
            {"docs", public_base_url(config, "docs", "http")},
            {"room", public_base_url(config, "room", "client")},
            {"dav", public_base_url(config, "dav", "http")}};
  domain_ = config.domain();
  service_ = std::make_unique<SiteService>(*store_, options);

  // Files are point reads of immutable blobs, mostly from memory: answered on the event loop.
  router_->set_fallback([this](const http::Request& q, http::Reply reply) {
    try {
      reply(service_->handle(q));
    } catch (const std::exception& e) {
      spdlog::error("site {} {}: {}", q.method, q.target, e.what());
      reply(http::Response::bytes(500, "internal error\n", "text/plain; charset=utf-8"));
    }
  });
  add_routes(runtime);

  http::ServerLimits limits;
  limits.max_body_bytes = 16 << 10;
  limits.max_connections = config.get_count("workers.site.max_connections", 8192, 1);
  limits.max_per_address = config.get_count("workers.site.max_connections_per_address", 512);
  limits.max_per_network = config.get_count("workers.site.max_connections_per_network", 2048);
  limits.trusted_proxies = config.get_strings("http.trusted_proxies", {});
  limits.idle_timeout = config.get_millis("workers.site.idle_timeout_ms", std::chrono::milliseconds(60000));
  server_ = http::serve_worker_listener(runtime, "site", "http", *router_, limits);
  runtime.on_status([this](json& status) {
    status["sites"] = store_->sites().size();
    status["public_url"] = public_url_;
  });
  runtime.on_shutdown([this] {
    if (server_) server_->stop();
  });
}

// The shard's own page at / of the site listener, until a site is bound to its host name:
// where members find the portal, the map, the documents and the chat server. Built per
// request (a map imported since shows at once); every name in it is escaped.
std::string SiteWorker::front_page(const std::vector<std::string>& sites) const {
  const auto archives = tile_archive_names(home_.root());
  const auto link = [](const std::string& href, const std::string& text, const std::string& note) {
    return "<li><a href=\"" + html_escape(href) + "\">" + html_escape(text) + "</a>" +
           (note.empty() ? "" : " <span>" + html_escape(note) + "</span>") + "</li>\n";
  };
  std::string items;
  if (const auto& portal = links_.at("portal"); !portal.empty())
    items += link(portal + "/portal/", "Member portal", "your password, app passwords, client settings and takeout");
  if (const auto& tiles = links_.at("tiles"); !tiles.empty())
    for (const auto& a : archives) items += link(tiles + "/tiles/" + a + "/map", "Map: " + a, "resources and events on the map");
  if (const auto& docs = links_.at("docs"); !docs.empty())
    items += link(docs + "/docs/", "Documents", "end-to-end encrypted documents");
  if (const auto& room = links_.at("room"); !room.empty())
    items += "<li>Chat: any Matrix client (Element, FluffyChat...) with the homeserver <code>" + html_escape(room) +
             "</code></li>\n";
  if (const auto& dav = links_.at("dav"); !dav.empty())
    items += "<li>Calendars and contacts: <code>" + html_escape(dav) + "/dav/</code> (CalDAV, CardDAV)</li>\n";
  for (const auto& s : sites) items += link(public_url_ + "/sites/" + s + "/", "Site: " + s, "");
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>" + html_escape(domain_) + "</title><style>"
         "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}"
         "li{margin:.5rem 0}span{color:#666}code{background:#f3f3f3;padding:0 .2rem}"
         "</style></head><body>\n<h1>" + html_escape(domain_) + "</h1>\n"
         "<p>This cooperative runs its own communication stack with coop.</p>\n<ul>\n" + items + "</ul>\n</body></html>\n";
}

// The map follows the current version: each event whose page it has, with a place, has a
// marker in coop-tiles; a marker whose event went (removed, or rolled back past) goes too.
SiteWorker::MarkerSync SiteWorker::sync_markers(const std::string& site) {
  MarkerSync result;
  std::set<std::string> shown;
  if (const auto info = store_->site(site); info && info->current)
    for (const auto& f : store_->files(site, info->current))
      if (f.path.rfind("events/", 0) == 0 && f.path.size() > 18 && f.path.compare(f.path.size() - 11, 11, "/index.html") == 0)
        shown.insert(f.path.substr(7, f.path.size() - 18));
  std::map<std::string, Event> placed;
  for (auto& e : store_->events(site))
    if (e.lat && e.lon && shown.count(e.slug)) placed.emplace(e.slug, e);
  try {
    control::Client tiles(home_.socket("tiles"));
    for (const auto& [slug, marker] : store_->event_markers(site)) {
      if (placed.count(slug)) continue;
      const auto response = tiles.request("DELETE", "/v1/markers/" + std::to_string(marker));
      if (!response.ok() && response.status != 404) response.throw_if_error();
      store_->set_event_marker(site, slug, std::nullopt);
    }
    const auto known = store_->event_markers(site);
    for (const auto& [slug, e] : placed) {
      if (known.count(slug)) continue;
      const json feature = {{"type", "Feature"},
                            {"geometry", {{"type", "Point"}, {"coordinates", {*e.lon, *e.lat}}}},
                            {"properties", {{"title", e.title}, {"kind", "event"}, {"when", utc_iso8601(e.starts)},
                                            {"description", e.location + (e.description.empty() ? "" : "\n" + e.description)}}}};
      const auto response = tiles.post("/v1/markers", feature.dump());
      response.throw_if_error();
      const auto made = response.json();
      store_->set_event_marker(site, slug, made.value("id", int64_t{0}));
      result.added.emplace(slug, made.dump());
    }
  } catch (const Error& err) {
    spdlog::info("site {}: the map's markers are not in step ({})", site, err.what());
    result.error = err.what();
  }
  return result;
}

// The shard's map page for event places: coop-tiles' first archive at its public URL (or its
// listener's); "" when coop-tiles has no map to show.
std::string SiteWorker::map_url() {
  try {
    control::Client tiles(home_.socket("tiles"));
    const auto response = tiles.get("/v1/archives");
    if (!response.ok()) return {};
    const auto archives = response.json();
    if (!archives.is_array()) return {};
    std::string name;  // the first by name, the same on every render
    for (const auto& a : archives)
      if (const auto n = a.value("name", ""); !n.empty() && (name.empty() || n < name)) name = n;
    if (name.empty()) return {};
    std::string base = tiles_url_;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base.empty() ? std::string() : base + "/tiles/" + name + "/map";
  } catch (const Error&) {
    return {};
  }
}

SiteWorker::~SiteWorker() {
  if (server_) server_->stop();
}

VersionInfo SiteWorker::publish(const std::string& site, std::vector<FileEntry> uploads, const std::string& source) {
  std::lock_guard lock(publish_mutex_);
  const RenderContext context{site, timezone_, now_s(), public_url_ + "/sites/" + site + "/", map_url()};
  std::set<std::string> uploaded;
  for (auto& f : uploads) {
    f.origin = "upload";
    uploaded.insert(f.path);
  }
  for (const auto& [path, bytes] : generated_files(context, store_->pages(site), store_->events(site))) {
    if (uploaded.count(path)) {
      spdlog::warn("site {}: the published folder has {}, which a page or event would make; the folder's wins", site, path);
      continue;
    }
    FileEntry f;
    f.path = path;
    f.blob = store_->put_generated(bytes);
    f.mtime = context.now;
    f.type = content_type_for(path);
    f.origin = path.rfind("events/", 0) == 0 ? "event" : "page";
    uploads.push_back(std::move(f));
  }
  auto version = store_->add_version(site, std::move(uploads), source);
  service_->reload();
  spdlog::info("site {}: version {} is current ({} files)", site, version.number, version.files);
  return version;
}

VersionInfo SiteWorker::republish(const std::string& site, const std::string& source) {
  std::vector<FileEntry> uploads;
  if (const auto info = store_->site(site); info && info->current > 0)
    for (auto& f : store_->files(site, info->current))
      if (f.origin == "upload") uploads.push_back(std::move(f));
  return publish(site, std::move(uploads), source);
}

void SiteWorker::add_routes(WorkerRuntime& runtime) {
  auto& control = runtime.router();
  auto run = runtime.blocking_runner();
  auto site_json = [this](const SiteInfo& s) {
    return json{{"name", s.name}, {"current", s.current}, {"created_at", http::iso8601(s.created_at)}, {"domains", s.domains},
                {"preview", public_url_ + "/sites/" + s.name + "/"}};
  };

  control.add_blocking("GET", "/v1/sites", run, [site_json, this](const http::Request&) {
    json out = json::array();
    for (const auto& s : store_->sites()) out.push_back(site_json(s));
    return http::Response::json(out);
  }, "The sites, their current versions and domains");

  control.add_blocking("GET", "/v1/sites/{site}", run, [site_json, this](const http::Request& q) {
    const auto name = site_param(q);
    const auto info = store_->site(name);
    if (!info) throw Error(errc::kNoSite, "no site '" + name + "'", 404);
    json out = site_json(*info);
    for (const auto& v : store_->versions(name))
      if (v.current) out["version"] = version_json(v);
    out["pages"] = json::array();
    for (const auto& p : store_->pages(name)) out["pages"].push_back({{"slug", p.slug}, {"title", p.title}, {"path", p.slug + "/"}});
    out["events"] = json::array();
    for (const auto& e : store_->events(name)) out["events"].push_back(event_json(e));
    return http::Response::json(out);
  }, "One site: current version, domains, pages, events, preview URL");

  control.add_blocking("DELETE", "/v1/sites/{site}", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    std::lock_guard lock(publish_mutex_);
    store_->remove_site(name);
    service_->reload();
    return http::Response::json({{"name", name}, {"removed", true}});
  }, "Remove a site, its versions, domains, pages and events");

  control.add_blocking("GET", "/v1/sites/{site}/versions", run, [this](const http::Request& q) {
    json out = json::array();
    for (const auto& v : store_->versions(site_param(q))) out.push_back(version_json(v));
    return http::Response::json(out);
  }, "The versions kept (workers.site.keep_versions)");

  control.add_blocking("GET", "/v1/sites/{site}/files", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    const auto info = store_->site(name);
    if (!info) throw Error(errc::kNoSite, "no site '" + name + "'", 404);
    int64_t version = info->current;
    if (!q.query_value("version").empty()) {
      try {
        version = std::stoll(q.query_value("version"));
      } catch (...) {
        throw Error(errc::kBadRequest, "version is a number", 400);
      }
    }
    json out = json::array();
    for (const auto& f : store_->files(name, version))
      out.push_back({{"path", f.path}, {"blob", f.blob}, {"size", f.size}, {"mtime", f.mtime}, {"type", f.type},
                     {"gzip", f.gzip}, {"br", f.br}, {"origin", f.origin}});
    return http::Response::json({{"site", name}, {"version", version}, {"files", out}});
  }, "A version's files (?version=N, else the current one)");

  control.add_blocking("POST", "/v1/sites/{site}/rollback", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    const json body = q.body.empty() ? json::object() : q.json();
    std::optional<int64_t> to;
    if (body.contains("to") && !body["to"].is_null()) {
      if (!body["to"].is_number_integer()) throw Error(errc::kBadRequest, "to is a version number", 400);
      to = body["to"].get<int64_t>();
    }
    std::lock_guard lock(publish_mutex_);
    const auto version = store_->rollback(name, to);
    service_->reload();
    spdlog::info("site {}: rolled back to version {}", name, version.number);
    sync_markers(name);  // the map shows the events of the version now current
    return http::Response::json(version_json(version));
  }, "Make an earlier version current: {\"to\": N}, else the one before");

  control.add_blocking("POST", "/v1/site-blobs/missing", run, [this](const http::Request& q) {
    const json body = q.json();
    std::vector<std::string> blobs;
    for (const auto& b : body.value("blobs", json::array())) {
      if (!b.is_string() || !is_lower_hex(b.get<std::string>(), 64)) throw Error(errc::kBadRequest, "blobs are sha256 hex", 400);
      blobs.push_back(b.get<std::string>());
    }
    return http::Response::json({{"missing", store_->missing(blobs)}});
  }, "Which of these blobs a publish still has to upload");

  control.add_blocking("PUT", "/v1/site-blobs/{blob}", run, [this](const http::Request& q) {
    const std::string blob = q.param("blob");
    if (!is_lower_hex(blob, 64)) throw Error(errc::kBadRequest, "blob ids are sha256 hex", 400);
    store_->put_blob(blob, q.body);
    return http::Response::json({{"blob", blob}, {"size", q.body.size()}}, 201);
  }, "Upload one file's bytes (checked against its sha256; fsync'd)");

  control.add_blocking("GET", "/v1/site-blobs/{blob}", run, [this](const http::Request& q) {
    const std::string blob = q.param("blob");
    if (!is_lower_hex(blob, 64)) throw Error(errc::kBadRequest, "blob ids are sha256 hex", 400);
    return http::Response::bytes(200, store_->read_blob(blob), "application/octet-stream");
  }, "One blob's bytes (for coop site image)");

  control.add_blocking("POST", "/v1/sites/{site}/versions", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    const json body = q.json();
    if (!body.contains("files") || !body["files"].is_array()) throw Error(errc::kBadRequest, "give files", 400);
    std::vector<FileEntry> files;
    for (const auto& f : body["files"]) {
      FileEntry e;
      e.path = required_text(f, "path");
      e.blob = required_text(f, "blob");
      if (!valid_file_path(e.path)) throw Error(errc::kBadPath, "not a path a site may hold: '" + e.path + "'", 400);
      if (!is_lower_hex(e.blob, 64)) throw Error(errc::kBadRequest, "blob ids are sha256 hex", 400);
      e.mtime = f.value("mtime", int64_t{0});
      e.type = content_type_for(e.path);
      files.push_back(std::move(e));
    }
    for (const auto& d : body.value("domains", json::array()))
      if (!d.is_string() || !valid_host(d.get<std::string>())) throw Error(errc::kBadDomain, "not a host name: " + d.dump(), 400);
    const auto version = publish(name, std::move(files), optional_text(body, "source"));
    for (const auto& d : body.value("domains", json::array())) store_->add_domain(name, d.get<std::string>());
    service_->reload();
    return http::Response::json(version_json(version), 201);
  }, "Publish a new version: {files: [{path, blob, mtime}], source, domains}");

  control.add_blocking("POST", "/v1/sites/{site}/domains", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    const std::string host = ascii_lower(required_text(q.json(), "host"));
    store_->add_domain(name, host);
    service_->reload();
    return http::Response::json({{"site", name}, {"host", host}}, 201);
  }, "Serve the site at this host name: {\"host\"}");

  control.add_blocking("DELETE", "/v1/sites/{site}/domains/{host}", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    const std::string host = ascii_lower(q.param("host"));
    store_->remove_domain(name, host);
    service_->reload();
    return http::Response::json({{"site", name}, {"host", host}, {"removed", true}});
  }, "Stop serving the site at this host name");

  control.add_blocking("POST", "/v1/sites/{site}/pages", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    const json body = q.json();
    Page page;
    page.title = required_text(body, "title");
    page.markdown = optional_text(body, "markdown");
    page.slug = optional_text(body, "slug");
    if (page.slug.empty()) page.slug = slugify(page.title);
    if (!valid_site_name(page.slug) || page.slug == "events" || page.slug == "sites")
      throw Error(errc::kBadSlug, "page slugs are 1-63 of a-z, 0-9, - and _ (not 'events'): '" + page.slug + "'", 400);
    store_->put_page(name, page);
    const auto version = republish(name, "page " + page.slug);
    return http::Response::json({{"slug", page.slug}, {"title", page.title}, {"path", page.slug + "/"},
                                 {"version", version_json(version)}}, 201);
  }, "Add or replace a Markdown page: {title, markdown, slug}");

  control.add_blocking("POST", "/v1/sites/{site}/events", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    const json body = q.json();
    Event e;
    e.title = required_text(body, "title");
    e.starts = parse_event_time(required_text(body, "when"), timezone_);
    const std::string until = optional_text(body, "until");
    e.ends = until.empty() ? e.starts + 2 * 3600 : parse_event_time(until, timezone_);
    if (e.ends <= e.starts) throw Error(errc::kBadTime, "an event ends after it starts", 400);
    e.location = required_text(body, "where");
    e.description = optional_text(body, "description");
    e.slug = optional_text(body, "slug");
    if (e.slug.empty()) e.slug = utc_iso8601(e.starts).substr(0, 10) + "-" + slugify(e.title);
    if (!valid_site_name(e.slug)) throw Error(errc::kBadSlug, "event slugs are 1-63 of a-z, 0-9, - and _: '" + e.slug + "'", 400);
    if (body.contains("lat") || body.contains("lon")) {
      if (!body.value("lat", json()).is_number() || !body.value("lon", json()).is_number())
        throw Error(errc::kBadMarker, "give both lat and lon as numbers", 400);
      e.lat = body["lat"].get<double>();
      e.lon = body["lon"].get<double>();
      if (*e.lat < -90 || *e.lat > 90 || *e.lon < -180 || *e.lon > 180)
        throw Error(errc::kBadMarker, "latitude is -90..90 and longitude -180..180", 400);
    }
    unsigned char random[8];
    randombytes_buf(random, sizeof random);
    char hex[17];
    sodium_bin2hex(hex, sizeof hex, random, sizeof random);
    e.uid = e.slug + "-" + hex + "@" + name + ".coop-site";
    e.created_at = now_s();
    store_->put_event(name, e);
    const auto version = republish(name, "event " + e.slug);
    json out = event_json(e);
    out["version"] = version_json(version);
    out["url"] = public_url_ + "/sites/" + name + "/events/" + e.slug + "/";
    // The map: a marker in coop-tiles when it runs (an event is still made when it does not).
    out["map_marker"] = nullptr;
    const auto markers = sync_markers(name);
    if (const auto it = markers.added.find(e.slug); it != markers.added.end()) out["map_marker"] = json::parse(it->second);
    else if (e.lat && e.lon && !markers.error.empty()) out["map_marker_error"] = markers.error;
    return http::Response::json(out, 201);
  }, "Add an event: {title, when, until, where, description, lat, lon, slug}; a page, an .ics and a map marker");

  control.add_blocking("DELETE", "/v1/sites/{site}/events/{slug}", run, [this](const http::Request& q) {
    const auto name = site_param(q);
    if (!store_->remove_event(name, q.param("slug"))) throw Error(errc::kNoEvent, "no event " + q.param("slug"), 404);
    const auto version = republish(name, "event removed");
    sync_markers(name);
    return http::Response::json({{"slug", q.param("slug")}, {"removed", true}, {"version", version_json(version)}});
  }, "Remove an event");
}

}  // namespace coop::site
