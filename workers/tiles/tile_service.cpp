// The public side of coop-tiles. Tiles follow the XYZ scheme of TileJSON 3.0.0; the style is
// a MapLibre style spec v8 document; markers are GeoJSON (RFC 7946).
#include "workers/tiles/tile_service.h"

#include <sys/stat.h>

#include <charconv>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common/error.h"
#include "common/text.h"
#include "workers/tiles/glyphs.h"
#include "workers/tiles/mbtiles.h"
#include "workers/tiles/sprite.h"
#include "workers/tiles/store/marker_store.h"

namespace fs = std::filesystem;

namespace coop::tiles {

namespace {

using nlohmann::json;

constexpr const char* kTileType = "application/vnd.mapbox-vector-tile";

bool parse_number(std::string_view text, std::size_t max_digits, int64_t& out) {
  if (text.empty() || text.size() > max_digits) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return std::from_chars(text.data(), text.data() + text.size(), out).ec == std::errc();
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const auto end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

void add_cors(http::Response& r) {
  r.headers.emplace_back("Access-Control-Allow-Origin", "*");
  r.headers.emplace_back("Access-Control-Expose-Headers", "ETag, Content-Encoding");
}

http::Response plain(int status, const std::string& text) {
  auto r = http::Response::bytes(status, text + "\n", "text/plain; charset=utf-8");
  add_cors(r);
  return r;
}

// RFC 9110 13.1.2: If-None-Match holds "*" or a list of entity tags, compared weakly.
bool none_match(const http::Request& request, const std::string& etag) {
  const std::string header = request.header("if-none-match");
  if (header.empty()) return false;
  for (auto part : split(header, ',')) {
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.substr(0, 2) == "W/") part.remove_prefix(2);
    if (part == "*" || part == etag) return true;
  }
  return false;
}

bool accepts_gzip(const http::Request& request) {
  const std::string header = request.header("accept-encoding");
  for (auto part : split(header, ',')) {
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.substr(0, 4) != "gzip") continue;
    const auto q = part.find("q=");
    if (q != std::string_view::npos && part.substr(q + 2, 1) == "0" && part.find_first_of("123456789", q + 2) == std::string_view::npos)
      return false;
    return true;
  }
  return false;
}

// One representation, one strong tag (RFC 9110 8.8.3): the gzip variant's ETag ends in
// "-gz". A 304 carries the headers the 200 would (15.4.5): ETag, Cache-Control, Vary, CORS.
http::Response variant_response(const http::Request& request, const std::string& tag, bool gz, const char* type,
                                const std::string& cache_control, const std::function<std::string()>& body) {
  const std::string etag = "\"" + tag + (gz ? "-gz" : "") + "\"";
  http::Response r;
  if (none_match(request, etag)) {
    r = http::Response::bytes(304, "", type);
  } else {
    r = http::Response::bytes(200, body(), type);
    if (gz) r.headers.emplace_back("Content-Encoding", "gzip");
  }
  add_cors(r);
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back("Cache-Control", cache_control);
  r.headers.emplace_back("Vary", "Accept-Encoding");
  return r;
}

std::string file_signature(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return {};
  return std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

std::vector<double> numbers(const std::string& csv) {
  std::vector<double> out;
  for (auto part : split(csv, ',')) {
    try {
      out.push_back(std::stod(std::string(part)));
    } catch (...) {
      return {};
    }
  }
  return out;
}

// The style: colours and widths after openstreetmap-carto (the map of openstreetmap.org), so
// that members see what they know: roads cased, tunnels dimmed, bridges cased in black, rail as
// grey and white dashes, one-way arrows, POI icons from the shard's sprite. Labels use the
// shard's own font (the glyph ranges coop-tiles renders) and are left out when it has none.
json build_style(const std::string& name, const std::string& base, const std::vector<double>& center,
                 const std::optional<std::string>& font) {
  const std::string tilejson_url = base + "/tiles/" + name + ".json";
  auto in_kinds = [](const std::vector<const char*>& list) {
    json values = json::array();
    for (const char* k : list) values.push_back(k);
    return json::array({"in", json::array({"get", "kind"}), json::array({"literal", values})});
  };
  auto fill = [](const std::string& id, const std::string& layer, const json& filter, const std::string& colour,
                 int minzoom) {
    json l{{"id", id},           {"type", "fill"}, {"source", "osm"}, {"source-layer", layer},
           {"minzoom", minzoom}, {"paint", {{"fill-color", colour}}}};
    if (!filter.is_null()) l["filter"] = filter;
    return l;
  };
  // Widths in pixels at zoom 10 and 18, exponential between (as carto's grow).
  auto width = [](double at10, double at18, double extra = 0) {
    return json::array({"interpolate", json::array({"exponential", 1.6}), json::array({"zoom"}), 10, at10 + extra * 0.3,
                        18, at18 + extra});
  };
  auto line = [&](const std::string& id, const std::string& layer, const json& filter, const std::string& colour,
                  const json& line_width, int minzoom) {
    json l{{"id", id},
           {"type", "line"},
           {"source", "osm"},
           {"source-layer", layer},
           {"minzoom", minzoom},
           {"layout", {{"line-cap", "round"}, {"line-join", "round"}}},
           {"paint", {{"line-color", colour}, {"line-width", line_width}}}};
    if (!filter.is_null()) l["filter"] = filter;
    return l;
  };
  json layers = json::array();
  layers.push_back({{"id", "background"}, {"type", "background"}, {"paint", {{"background-color", "#f2efe9"}}}});
  layers.push_back(fill("ocean", "ocean", nullptr, "#aad3df", 0));
  layers.push_back(fill("land-residential", "land", in_kinds({"residential"}), "#e0dfdf", 10));
  layers.push_back(fill("land-commercial", "land", in_kinds({"commercial", "retail", "industrial", "railway"}), "#f2dad9", 10));
  layers.push_back(fill("land-green", "land",
                        in_kinds({"park", "garden", "grass", "meadow", "village_green", "recreation_ground", "playground",
                                  "golf_course", "grassland", "dog_park", "allotments", "cemetery"}),
                        "#c8facc", 7));
  layers.push_back(fill("land-wood", "land", in_kinds({"forest", "wood", "nature_reserve", "scrub", "heath", "orchard"}),
                        "#add19e", 7));
  layers.push_back(fill("land-sand", "land", in_kinds({"sand", "beach", "bare_rock", "scree", "quarry"}), "#f5e9c6", 10));
  layers.push_back(fill("land-pitch", "land", in_kinds({"pitch", "sports_centre", "stadium"}), "#aae0cb", 12));
  layers.push_back(fill("land-aeroway", "land", in_kinds({"aerodrome", "apron", "heliport", "helipad"}), "#dadae0", 10));
  layers.push_back(fill("water", "water_polygons", nullptr, "#aad3df", 0));
  layers.push_back(line("water-lines", "water_lines", nullptr, "#aad3df", width(1, 6), 0));
  // Piers are land over water: the background's colour.
  layers.push_back(fill("pier-areas", "pier_polygons", nullptr, "#f2efe9", 12));
  layers.push_back(line("pier-lines", "pier_lines", nullptr, "#f2efe9", width(1, 7), 12));
  layers.back()["layout"]["line-cap"] = "butt";
  layers.push_back({{"id", "buildings"},
                    {"type", "fill"},
                    {"source", "osm"},
                    {"source-layer", "buildings"},
                    {"minzoom", 13},
                    {"paint", {{"fill-color", "#d9d0c9"}, {"fill-outline-color", "#c4b6ab"}}}});
  auto boundaries = line("boundaries", "boundaries", json::array({"<=", json::array({"get", "admin_level"}), 8}),
                         "#ac46ac", json::array({"match", json::array({"get", "admin_level"}), 2, 2.5, 4, 2, 1.2}), 0);
  boundaries["paint"]["line-opacity"] = 0.55;
  boundaries["paint"]["line-dasharray"] = json::array({4, 2});
  layers.push_back(boundaries);
  layers.push_back(line("ferries", "ferries", nullptr, "#6666ff", width(1, 2), 10));
  layers.back()["paint"]["line-dasharray"] = json::array({4, 3});

  // Streets in three levels: tunnels (dimmed, casings dashed), the ground, bridges (black
  // casings), each with casings first, then fills, then paths and rail.
  const json is_tunnel = json::array({"==", json::array({"get", "tunnel"}), true});
  const json is_bridge = json::array({"all", json::array({"==", json::array({"get", "bridge"}), true}),
                                      json::array({"!", json::array({"has", "tunnel"})})});
  const json on_ground = json::array({"all", json::array({"!", json::array({"has", "tunnel"})}),
                                      json::array({"!", json::array({"has", "bridge"})})});
  struct RoadClass {
    const char* id;
    std::vector<const char*> kinds;
    const char* fill;
    const char* casing;
    double at10, at18;
    int minzoom;
  };
  const std::vector<RoadClass> classes{
      {"minor", {"residential", "living_street", "unclassified", "road", "service", "busway", "pedestrian"}, "#ffffff",
       "#999999", 0.8, 12, 11},
      {"tertiary", {"tertiary"}, "#ffffff", "#8f8f7f", 1.2, 16, 9},
      {"secondary", {"secondary"}, "#f7fabf", "#707d05", 1.5, 18, 8},
      {"primary", {"primary", "trunk"}, "#fcd6a4", "#a06b00", 1.8, 20, 6},
      {"motorway", {"motorway"}, "#e892a2", "#dc2a67", 2.0, 22, 5}};
  auto kinds_of = [&](const RoadClass& c) { return in_kinds(c.kinds); };
  const json rail_kinds = in_kinds({"rail", "light_rail", "subway", "tram", "narrow_gauge", "funicular", "monorail"});
  layers.push_back(line("runways", "streets", in_kinds({"runway"}), "#bbbbcc", width(2, 40), 11));
  layers.push_back(line("taxiways", "streets", in_kinds({"taxiway"}), "#bbbbcc", width(1, 10), 13));
  for (const auto& [level, level_filter] : {std::pair<std::string, json>{"tunnel", is_tunnel},
                                            std::pair<std::string, json>{"ground", on_ground},
                                            std::pair<std::string, json>{"bridge", is_bridge}}) {
    const bool tunnel = level == "tunnel", bridge = level == "bridge";
    for (const auto& c : classes) {
      auto casing = line(level + "-" + c.id + "-casing", "streets", json::array({"all", level_filter, kinds_of(c)}),
                         bridge ? "#000000" : c.casing, width(c.at10, c.at18, bridge ? 3 : 2), std::max(c.minzoom, 12));
      if (tunnel) {
        casing["paint"]["line-dasharray"] = json::array({1, 1});
        casing["paint"]["line-opacity"] = 0.5;
        casing["layout"]["line-cap"] = "butt";
      }
      layers.push_back(casing);
    }
    for (const auto& c : classes) {
      auto fill_line = line(level + "-" + c.id, "streets", json::array({"all", level_filter, kinds_of(c)}), c.fill,
                            width(c.at10, c.at18), c.minzoom);
      if (tunnel) fill_line["paint"]["line-opacity"] = 0.45;
      layers.push_back(fill_line);
    }
    auto paths = line(level + "-paths", "streets",
                      json::array({"all", level_filter,
                                   in_kinds({"footway", "path", "cycleway", "bridleway", "steps", "track"})}),
                      "#fa8072", width(0.5, 2.5), 13);
    paths["paint"]["line-dasharray"] = json::array({2, 1});
    if (tunnel) paths["paint"]["line-opacity"] = 0.4;
    layers.push_back(paths);
    // Rail: a grey line with white dashes on it from zoom 13; tunnels only faint grey dashes.
    auto rail = line(level + "-rail", "streets", json::array({"all", level_filter, rail_kinds}), "#707070",
                     width(0.8, 4), 8);
    rail["layout"]["line-cap"] = "butt";
    if (tunnel) rail["paint"]["line-opacity"] = 0.4, rail["paint"]["line-dasharray"] = json::array({3, 2});
    layers.push_back(rail);
    if (!tunnel) {
      auto dashes = line(level + "-rail-dashes", "streets", json::array({"all", level_filter, rail_kinds}), "#ffffff",
                         width(0.3, 2), 13);
      dashes["layout"]["line-cap"] = "butt";
      dashes["paint"]["line-dasharray"] = json::array({3, 3});
      layers.push_back(dashes);
    }
  }
  // One-way arrows along the street, turned round for oneway=-1.
  layers.push_back({{"id", "oneway-arrows"},
                    {"type", "symbol"},
                    {"source", "osm"},
                    {"source-layer", "streets"},
                    {"minzoom", 16},
                    {"filter", json::array({"==", json::array({"get", "oneway"}), true})},
                    {"layout",
                     {{"symbol-placement", "line"},
                      {"symbol-spacing", 120},
                      {"icon-image", oneway_sprite_id()},
                      {"icon-size", 0.55},
                      {"icon-rotate",
                       json::array({"case", json::array({"==", json::array({"get", "oneway_reverse"}), true}), 180, 0})},
                      {"icon-rotation-alignment", "map"}}}});

  // Icons: POIs by kind, else by category; stops and stations by kind.
  json poi_icon = json::array({"match", json::array({"get", "kind"})});
  for (const auto& k : kind_icons()) poi_icon.push_back(k.kind), poi_icon.push_back(sprite_id(k));
  json by_category = json::array({"match", json::array({"get", "category"})});
  for (const auto& k : category_icons()) by_category.push_back(k.kind), by_category.push_back(sprite_id(k));
  by_category.push_back(sprite_id(category_icons().front()));
  poi_icon.push_back(by_category);
  const json fonts = font ? json::array({*font}) : json();
  auto icon_layer = [&](const std::string& id, const std::string& layer, const json& filter, int minzoom) {
    json l{{"id", id},
           {"type", "symbol"},
           {"source", "osm"},
           {"source-layer", layer},
           {"minzoom", minzoom},
           {"layout", {{"icon-image", poi_icon}, {"icon-size", 0.9}}},
           {"paint", json::object()}};
    if (!filter.is_null()) l["filter"] = filter;
    if (font) {
      l["layout"]["text-field"] = json::array({"coalesce", json::array({"get", "name"}), ""});
      l["layout"]["text-font"] = fonts;
      l["layout"]["text-size"] = 10;
      l["layout"]["text-anchor"] = "top";
      l["layout"]["text-offset"] = json::array({0, 0.9});
      l["layout"]["text-optional"] = true;
      l["layout"]["text-max-width"] = 8;
      l["paint"] = {{"text-color", "#734a08"}, {"text-halo-color", "#ffffff"}, {"text-halo-width", 1.2}};
    }
    return l;
  };
  layers.push_back(icon_layer("transport-major", "public_transport",
                              in_kinds({"station", "halt", "ferry_terminal", "bus_station", "aerodrome", "heliport"}), 13));
  layers.push_back(icon_layer("transport-minor", "public_transport", in_kinds({"tram_stop", "bus_stop", "helipad"}), 16));
  layers.push_back(icon_layer("pois", "pois", nullptr, 16));

  layers.push_back({{"id", "markers"},
                    {"type", "circle"},
                    {"source", "markers"},
                    {"paint",
                     {{"circle-radius", 8},
                      {"circle-color", json::array({"match", json::array({"get", "kind"}), "event", "#e8590c", "#1c7ed6"})},
                      {"circle-stroke-color", "#ffffff"},
                      {"circle-stroke-width", 2}}}});
  if (font) {
    auto label = [&](const std::string& id, const std::string& source, const std::string& layer, int minzoom,
                     json size, const std::string& colour, double halo) {
      json l{{"id", id},
             {"type", "symbol"},
             {"source", source},
             {"minzoom", minzoom},
             {"filter", json::array({"has", "name"})},
             {"layout", {{"text-field", json::array({"get", "name"})}, {"text-font", fonts}, {"text-size", size}}},
             {"paint", {{"text-color", colour}, {"text-halo-color", "#ffffff"}, {"text-halo-width", halo}}}};
      if (!layer.empty()) l["source-layer"] = layer;
      return l;
    };
    // Below the icons and markers: street names, house numbers.
    auto streets = label("street-names", "osm", "streets", 13,
                         json::array({"interpolate", json::array({"linear"}), json::array({"zoom"}), 13, 10, 18, 14}),
                         "#505050", 1.5);
    streets["layout"]["symbol-placement"] = "line";
    streets["layout"]["text-max-angle"] = 30;
    auto numbers = label("housenumbers", "osm", "addresses", 17, 10, "#666666", 1.2);
    numbers["filter"] = json::array({"has", "housenumber"});
    numbers["layout"]["text-field"] = json::array({"get", "housenumber"});
    numbers["layout"]["text-padding"] = 1;
    const auto icons_at = std::find_if(layers.begin(), layers.end(), [](const json& l) { return l["id"] == "transport-major"; });
    layers.insert(layers.insert(icons_at, streets) + 1, numbers);
    auto ferries = label("ferry-names", "osm", "ferries", 13, 10, "#6666ff", 1.2);
    ferries["layout"]["symbol-placement"] = "line";
    layers.push_back(ferries);
    layers.push_back(label("place-names", "osm", "place_labels", 0,
                           json::array({"match", json::array({"get", "kind"}), "city", 18, "town", 16, "village", 14, 12}),
                           "#222222", 2));
    auto titles = label("marker-titles", "markers", "", 0, 12, "#1a1a1a", 2);
    titles["filter"] = json::array({"has", "title"});
    titles["layout"]["text-field"] = json::array({"get", "title"});
    titles["layout"]["text-anchor"] = "top";
    titles["layout"]["text-offset"] = json::array({0, 1.0});
    titles["layout"]["text-optional"] = true;
    layers.push_back(titles);
  }
  json style{{"version", 8},
             {"name", name},
             {"sources",
              {{"osm", {{"type", "vector"}, {"url", tilejson_url}}},
               {"markers", {{"type", "geojson"}, {"data", base + "/tiles/markers.geojson"}}}}},
             {"sprite", base + "/tiles/assets/sprite"},
             {"layers", layers}};
  if (font) style["glyphs"] = base + "/tiles/fonts/{fontstack}/{range}.pbf";
  if (center.size() >= 3) {
    style["center"] = json::array({center[0], center[1]});
    style["zoom"] = center[2];
  }
  return style;
}

// The map page: MapLibre GL from this server, the archive's style, markers polled twice a
// second with If-None-Match so an unchanged set costs a 304.
std::string map_html(const std::string& name, const std::string& style_url, const std::string& markers_url,
                     const std::string& search_url) {
  const json config{{"style", style_url}, {"markers", markers_url}, {"search", search_url}, {"name", name}};
  std::string config_text = config.dump();
  // Keep "</script>" and friends out of the inline script.
  std::string safe;
  for (char c : config_text) safe += c == '<' ? std::string("\\u003c") : std::string(1, c);
  std::string html = R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Map</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/tiles/assets/maplibre-gl.css">
<style>
html, body, #map { margin: 0; padding: 0; height: 100%; }
.coop-popup h3 { margin: 0 0 4px; font: 600 14px/1.3 system-ui, sans-serif; }
.coop-popup p { margin: 2px 0; font: 13px/1.3 system-ui, sans-serif; }
#coop-search { position: absolute; top: 10px; left: 10px; z-index: 2; width: min(320px, calc(100% - 70px));
  font: 14px/1.3 system-ui, sans-serif; }
#coop-search input { box-sizing: border-box; width: 100%; padding: 8px 10px; border: 1px solid #bbb;
  border-radius: 6px; font: inherit; box-shadow: 0 1px 4px rgba(0,0,0,.2); }
#coop-search ul { list-style: none; margin: 4px 0 0; padding: 0; background: #fff; border-radius: 6px;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); max-height: 50vh; overflow: auto; }
#coop-search ul:empty { display: none; }
#coop-search li button { display: block; width: 100%; text-align: left; padding: 6px 10px; border: 0;
  background: none; font: inherit; cursor: pointer; }
#coop-search li button:hover, #coop-search li button:focus { background: #eef3fb; }
#coop-search small { color: #666; margin-left: 6px; }
</style>
<script src="/tiles/assets/maplibre-gl.js"></script>
</head>
<body>
<div id="map"></div>
<form id="coop-search" role="search" autocomplete="off">
<input id="coop-search-input" type="search" placeholder="Search streets and places" aria-label="Search the map">
<ul id="coop-search-results"></ul>
</form>
<script>
(function () {
  const config = )" + safe + R"(;
  const params = new URLSearchParams(location.search);
  const options = { container: "map", style: config.style, attributionControl: { compact: true } };
  if (params.has("lat") && params.has("lon")) {
    options.center = [Number(params.get("lon")), Number(params.get("lat"))];
    options.zoom = Number(params.get("zoom") || 15);
  }
  const map = new maplibregl.Map(options);
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  window.coopMap = map;
  window.coopMarkerCount = 0;
  let etag = null;
  async function refresh() {
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const response = await fetch(config.markers, { headers, cache: "no-store" });
      if (response.status !== 200) return;
      etag = response.headers.get("ETag");
      const data = await response.json();
      const source = map.getSource("markers");
      if (source) source.setData(data);
      window.coopMarkerCount = data.features.length;
    } catch (e) {
      // The next poll tries again; a restarting server is not an error worth showing.
    }
  }
  map.on("load", () => { refresh(); setInterval(refresh, 500); });

  // Search: the archive's own index of names, as the member types.
  const input = document.getElementById("coop-search-input");
  const list = document.getElementById("coop-search-results");
  const zoomFor = { place_labels: 14, streets: 17 };
  let asked = 0, results = [];
  function go(feature) {
    const zoom = zoomFor[feature.properties.layer] || 18;
    map.flyTo({ center: feature.geometry.coordinates, zoom: feature.properties.kind === "city" ? 13 : zoom });
    window.coopSearchTarget = feature;
    list.replaceChildren();
  }
  async function search() {
    const q = input.value.trim();
    const mine = ++asked;
    if (!q) { list.replaceChildren(); return; }
    try {
      const response = await fetch(config.search + "?q=" + encodeURIComponent(q));
      if (response.status !== 200 || mine !== asked) return;
      results = (await response.json()).features;
      list.replaceChildren(...results.map((feature) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = feature.properties.name;
        const kind = document.createElement("small");
        kind.textContent = feature.properties.kind.replace(/_/g, " ");
        button.appendChild(kind);
        button.addEventListener("click", () => go(feature));
        item.appendChild(button);
        return item;
      }));
      window.coopSearchResults = results;
    } catch (e) {
      // A failed search shows nothing; the next keystroke asks again.
    }
  }
  let timer = null;
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 120); });
  document.getElementById("coop-search").addEventListener("submit", (event) => {
    event.preventDefault();
    if (results.length) go(results[0]);
  });
  map.on("mouseenter", "markers", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "markers", () => { map.getCanvas().style.cursor = ""; });
  // ?pick=1: a click anywhere but on a marker shows its latitude and longitude, to copy into
  // a form (the portal's event form links here).
  if (params.get("pick") === "1") {
    map.getCanvas().style.cursor = "crosshair";
    map.on("click", (event) => {
      if (map.queryRenderedFeatures(event.point, { layers: ["markers"] }).length) return;
      const lat = event.lngLat.lat.toFixed(5), lon = event.lngLat.lng.toFixed(5);
      window.coopPicked = { lat: Number(lat), lon: Number(lon) };
      const box = document.createElement("div");
      box.className = "coop-popup";
      const text = document.createElement("p");
      text.textContent = "Latitude " + lat + ", longitude " + lon;
      text.id = "coop-picked";
      box.appendChild(text);
      new maplibregl.Popup().setLngLat(event.lngLat).setDOMContent(box).addTo(map);
    });
  }
  map.on("click", "markers", (event) => {
    const feature = event.features[0];
    const p = feature.properties;
    const box = document.createElement("div");
    box.className = "coop-popup";
    const title = document.createElement("h3");
    title.textContent = p.title;
    box.appendChild(title);
    for (const line of [p.when, p.description]) {
      if (!line) continue;
      const text = document.createElement("p");
      text.textContent = line;
      box.appendChild(text);
    }
    new maplibregl.Popup().setLngLat(feature.geometry.coordinates).setDOMContent(box).addTo(map);
  });
})();
</script>
</body>
</html>
)";
  return html;
}

bool valid_host(const std::string& host) {
  static const std::regex kHost(R"([A-Za-z0-9.\-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?)");
  return std::regex_match(host, kHost);
}

}  // namespace

bool valid_archive_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  // Taken by the server's own paths under /tiles/.
  if (name == "api" || name == "assets" || name == "fonts") return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '-' || c == '_'));
    if (!ok) return false;
  }
  return true;
}

std::optional<TileRequest> parse_tile_path(std::string_view rest) {
  const auto parts = split(rest, '/');
  if (parts.size() != 4 || !valid_archive_name(parts[0])) return std::nullopt;
  std::string_view last = parts[3];
  const auto dot = last.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const auto extension = last.substr(dot + 1);
  if (extension != "pbf" && extension != "mvt") return std::nullopt;
  last = last.substr(0, dot);
  int64_t z = 0, x = 0, y = 0;
  if (!parse_number(parts[1], 2, z) || !parse_number(parts[2], 10, x) || !parse_number(last, 10, y))
    throw Error(errc::kBadRequest, "tile addresses are /tiles/NAME/Z/X/Y.pbf with whole numbers", 400);
  TileRequest t;
  t.name = std::string(parts[0]);
  // Out of any archive's range, but well-formed: the caller answers 404.
  if (z > 30 || x >= (int64_t{1} << std::min<int64_t>(z, 30)) || y >= (int64_t{1} << std::min<int64_t>(z, 30))) {
    t.z = -1;
    return t;
  }
  t.z = static_cast<int>(z);
  t.x = static_cast<int>(x);
  t.y = static_cast<int>(y);
  return t;
}

TileService::TileService(TileServiceOptions options, MarkerStore* markers)
    : options_(std::move(options)), markers_(markers), glyphs_(std::make_unique<GlyphServer>(options_.fonts_dir)) {}

TileService::~TileService() = default;

std::shared_ptr<MbtilesArchive> TileService::archive(const std::string& name) {
  if (!valid_archive_name(name)) return nullptr;
  const auto now = std::chrono::steady_clock::now();
  const auto file = options_.tiles_dir / (name + ".mbtiles");
  std::lock_guard lock(mutex_);
  auto found = archives_.find(name);
  if (found != archives_.end() && now - found->second.checked < options_.recheck) return found->second.archive;
  const std::string signature = file_signature(file);
  if (signature.empty()) {
    // Only archives that exist get an entry: requests for made-up names cannot grow the map.
    if (found != archives_.end()) archives_.erase(found);
    return nullptr;
  }
  auto& entry = found != archives_.end() ? found->second : archives_[name];
  entry.checked = now;
  if (signature == entry.signature) return entry.archive;
  try {
    // Requests in flight keep the archive they started with; the old file stays readable
    // through its open descriptor until the last of them is done.
    entry.archive = MbtilesArchive::open(file);
    entry.signature = signature;
  } catch (const std::exception&) {
    // A damaged file never replaces a good archive; the next check tries again.
  }
  return entry.archive;
}

std::size_t TileService::archives_open() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [name, entry] : archives_) n += entry.archive != nullptr;
  return n;
}

std::string TileService::base_url(const http::Request& request) const {
  if (!options_.public_url.empty()) return options_.public_url;
  std::string host = request.header("host");
  if (!valid_host(host)) host = "localhost";
  return options_.scheme + "://" + host;
}

http::Response TileService::handle(const http::Request& request) {
  if (request.method == "OPTIONS") {
    // CORS preflight (Fetch standard): any origin may read tiles and markers.
    http::Response r = http::Response::bytes(204, "", "text/plain");
    r.headers.emplace_back("Access-Control-Allow-Origin", "*");
    r.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE, OPTIONS");
    r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match");
    r.headers.emplace_back("Access-Control-Max-Age", "86400");
    return r;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    auto r = plain(405, "method not allowed");
    r.headers.emplace_back("Allow", "GET, HEAD, OPTIONS");
    return r;
  }
  const std::string& path = request.path;
  if (path == "/tiles" || path == "/tiles/") {
    json index = json::array();
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(options_.tiles_dir, ec)) {
      const auto file = entry.path().filename().string();
      if (entry.path().extension() == ".mbtiles" && valid_archive_name(entry.path().stem().string()))
        names.push_back(entry.path().stem().string());
    }
    std::sort(names.begin(), names.end());
    const auto base = base_url(request);
    for (const auto& n : names)
      index.push_back({{"name", n}, {"tilejson", base + "/tiles/" + n + ".json"}, {"map", base + "/tiles/" + n + "/map"}});
    auto r = http::Response::json(index);
    add_cors(r);
    return r;
  }
  if (path.rfind("/tiles/", 0) != 0) return plain(404, "not found");
  const std::string_view rest = std::string_view(path).substr(7);

  if (auto t = parse_tile_path(rest)) return tile(request, *t);
  if (rest == "markers.geojson") return markers_geojson(request, false);
  if (rest.rfind("assets/", 0) == 0) return asset(request, std::string(rest.substr(7)));
  const auto parts = split(rest, '/');
  if (parts.size() == 3 && parts[0] == "fonts") return glyphs(request, std::string(parts[1]), std::string(parts[2]));
  if (parts.size() == 1 && parts[0].size() > 5 && parts[0].substr(parts[0].size() - 5) == ".json")
    return tilejson(request, std::string(parts[0].substr(0, parts[0].size() - 5)));
  if (parts.size() == 2 && parts[1] == "style.json") return style(request, std::string(parts[0]));
  if (parts.size() == 2 && (parts[1] == "map" || parts[1] == "map.html")) return map_page(request, std::string(parts[0]));
  if (parts.size() == 2 && parts[1] == "search") return search(request, std::string(parts[0]));
  return plain(404, "not found");
}

// GET /tiles/NAME/search?q=...&limit=N: the archive's place index, as GeoJSON (RFC 7946) points
// with the name, the kind and the layer it came from.
http::Response TileService::search(const http::Request& request, const std::string& name) {
  auto archive = this->archive(name);
  if (!archive) return plain(404, "no tile archive named " + name);
  const std::string q = request.query_value("q");
  if (q.size() > kMaxSearchBytes || !is_valid_utf8(q))
    return plain(400, "q is the text to look for: at most " + std::to_string(kMaxSearchBytes) + " bytes of UTF-8");
  int64_t limit = 10;
  if (const std::string l = request.query_value("limit"); !l.empty() && (!parse_number(l, 2, limit) || limit < 1 || limit > 50))
    return plain(400, "limit is a whole number from 1 to 50");
  json features = json::array();
  for (const auto& hit : archive->search(q, static_cast<int>(limit)))
    features.push_back({{"type", "Feature"},
                        {"geometry", {{"type", "Point"}, {"coordinates", json::array({hit.lon, hit.lat})}}},
                        {"properties", {{"name", hit.name}, {"kind", hit.kind}, {"layer", hit.layer}}}});
  auto r = http::Response::bytes(200, json{{"type", "FeatureCollection"}, {"features", features}}.dump(),
                                 "application/geo+json");
  add_cors(r);
  r.headers.emplace_back("Cache-Control", "public, max-age=60");
  return r;
}

http::Response TileService::tile(const http::Request& request, const TileRequest& t) {
  auto archive = this->archive(t.name);
  if (!archive) return plain(404, "no tile archive named " + t.name);
  if (t.z < archive->minzoom() || t.z > archive->maxzoom())
    return plain(404, "zoom outside the archive's range " + std::to_string(archive->minzoom()) + "-" +
                          std::to_string(archive->maxzoom()));
  const std::string cache = "public, max-age=" + std::to_string(options_.max_age_seconds);
  const bool gz = accepts_gzip(request);
  auto data = archive->tile(t.z, t.x, t.y);
  if (!data) {
    // Inside the range but nothing there (open sea, outside the extract): no content.
    auto r = variant_response(request, archive->version(), false, kTileType, cache, [] { return std::string(); });
    if (r.status == 200) r.status = 204;
    return r;
  }
  return variant_response(request, archive->version(), gz, kTileType, cache, [&]() -> std::string {
    if (gz) return std::move(*data);
    try {
      return gunzip(*data);
    } catch (const Error&) {
      // The archive holds a damaged tile: the server's fault, not the client's.
      throw Error(errc::kDamagedTile, "a damaged tile in the archive", 500);
    }
  });
}

http::Response TileService::tilejson(const http::Request& request, const std::string& name) {
  auto archive = this->archive(name);
  if (!archive) return plain(404, "no tile archive named " + name);
  const auto& m = archive->metadata();
  auto get = [&](const char* key) {
    auto it = m.find(key);
    return it == m.end() ? std::string() : it->second;
  };
  const auto base = base_url(request);
  // TileJSON 3.0.0 (github.com/mapbox/tilejson-spec/tree/master/3.0.0).
  json tj{{"tilejson", "3.0.0"},
          {"name", get("name").empty() ? name : get("name")},
          {"description", get("description")},
          // MapLibre shows the attribution as HTML: an archive from elsewhere gets no markup in.
          {"attribution", html_escape(get("attribution"))},
          {"version", std::regex_match(get("version"), std::regex(R"(\d+\.\d+\.\d+)")) ? get("version") : "1.0.0"},
          {"scheme", "xyz"},
          {"format", "pbf"},
          // The import's id in the URL: a re-import gives new URLs, so no cache mixes old tiles
          // with new ones.
          {"tiles", json::array({base + "/tiles/" + name + "/{z}/{x}/{y}.pbf?v=" + archive->version()})},
          {"vector_layers", json::array()},
          {"minzoom", archive->minzoom()},
          {"maxzoom", archive->maxzoom()}};
  if (auto b = numbers(get("bounds")); b.size() == 4) tj["bounds"] = b;
  if (auto c = numbers(get("center")); c.size() == 3) tj["center"] = c;
  try {
    const auto layers = json::parse(get("json"));
    if (layers.is_object() && layers.contains("vector_layers") && layers["vector_layers"].is_array())
      tj["vector_layers"] = layers["vector_layers"];
  } catch (const json::exception&) {
    // No usable layer list: TileJSON's required vector_layers stays empty.
  }
  auto r = http::Response::json(tj);
  add_cors(r);
  r.headers.emplace_back("ETag", "\"" + archive->version() + "\"");
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

http::Response TileService::style(const http::Request& request, const std::string& name) {
  auto archive = this->archive(name);
  if (!archive) return plain(404, "no tile archive named " + name);
  const auto base = base_url(request);
  auto it = archive->metadata().find("center");
  const auto style = build_style(name, base, it == archive->metadata().end() ? std::vector<double>{} : numbers(it->second),
                                 glyphs_->default_font());
  auto r = http::Response::json(style);
  add_cors(r);
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

http::Response TileService::map_page(const http::Request& request, const std::string& name) {
  if (!archive(name)) return plain(404, "no tile archive named " + name);
  auto r = http::Response::bytes(
      200, map_html(name, "/tiles/" + name + "/style.json", "/tiles/markers.geojson", "/tiles/" + name + "/search"),
      "text/html; charset=utf-8");
  // Made to be embedded: frame-ancestors says by whom (workers.tiles.frame_ancestors).
  r.headers.emplace_back("Content-Security-Policy", "frame-ancestors " + options_.frame_ancestors);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "strict-origin-when-cross-origin");
  r.headers.emplace_back("Cache-Control", "no-cache");
  (void)request;
  return r;
}

http::Response TileService::asset(const http::Request& request, const std::string& file) {
  if (file == "sprite.json" || file == "sprite.png" || file == "sprite@2x.json" || file == "sprite@2x.png")
    return sprite(request, file);
  const char* type = nullptr;
  if (file == "maplibre-gl.js") type = "text/javascript; charset=utf-8";
  else if (file == "maplibre-gl.css") type = "text/css; charset=utf-8";
  if (!type) return plain(404, "not found");
  const bool gz = accepts_gzip(request);
  std::string body, tag;
  {
    std::lock_guard lock(asset_mutex_);
    auto it = asset_cache_.find(file);
    if (it == asset_cache_.end()) {
      std::ifstream in(options_.assets_dir / file, std::ios::binary);
      if (!in) return plain(404, "MapLibre GL is not installed on this server");
      std::ostringstream content;
      content << in.rdbuf();
      it = asset_cache_.emplace(file, content.str()).first;
      asset_cache_.emplace(file + ".gz", gzip(it->second, 9));
    }
    body = gz ? asset_cache_[file + ".gz"] : it->second;
    tag = std::to_string(it->second.size()) + "-" + std::to_string(std::hash<std::string>{}(it->second));
  }
  return variant_response(request, tag, gz, type, "public, max-age=86400", [&] { return std::move(body); });
}

// The icon sprite (sprite.json/png, sprite@2x.json/png), drawn on first use from the icons.
http::Response TileService::sprite(const http::Request& request, const std::string& file) {
  const bool png = file.size() > 4 && file.substr(file.size() - 4) == ".png";
  const bool gz = !png && accepts_gzip(request);
  std::string body, tag;
  {
    std::lock_guard lock(asset_mutex_);
    if (!asset_cache_.count(file)) {
      // Both files of a pixel ratio at once, with the index's gzip and each one's tag.
      const bool retina = file.find("@2x") != std::string::npos;
      auto drawn = render_sprite(options_.icons_dir, retina ? 2 : 1);
      if (!drawn) return plain(404, "the map's icons are not installed on this server");
      const std::string stem = retina ? "sprite@2x" : "sprite";
      for (auto [name, content] : {std::pair{stem + ".json", std::move(drawn->json)}, std::pair{stem + ".png", std::move(drawn->png)}}) {
        asset_cache_[name + ".tag"] = std::to_string(content.size()) + "-" + std::to_string(std::hash<std::string>{}(content));
        if (name.size() > 5 && name.substr(name.size() - 5) == ".json") asset_cache_[name + ".gz"] = gzip(content, 9);
        asset_cache_[name] = std::move(content);
      }
    }
    body = asset_cache_[gz ? file + ".gz" : file];
    tag = asset_cache_[file + ".tag"];
  }
  return variant_response(request, tag, gz, png ? "image/png" : "application/json", "public, max-age=86400",
                          [&] { return std::move(body); });
}

// GET /tiles/fonts/{fontstack}/{start}-{end}.pbf, as MapLibre asks for label glyphs.
http::Response TileService::glyphs(const http::Request& request, const std::string& fontstack, const std::string& range) {
  const auto dash = range.find('-');
  int64_t start = 0, end = 0;
  if (dash == std::string::npos || range.size() < 5 || range.substr(range.size() - 4) != ".pbf" ||
      !parse_number(std::string_view(range).substr(0, dash), 5, start) ||
      !parse_number(std::string_view(range).substr(dash + 1, range.size() - 4 - dash - 1), 5, end) || end != start + 255)
    return plain(400, "glyph ranges are /tiles/fonts/FONT/START-END.pbf, 256 code points each");
  const bool gz = accepts_gzip(request);
  auto pbf = glyphs_->range(fontstack, static_cast<uint32_t>(start), gz);
  if (!pbf) return plain(404, "no such font or range");
  return variant_response(request, pbf->tag, gz, "application/x-protobuf", "public, max-age=86400",
                          [&] { return std::move(pbf->bytes); });
}

http::Response TileService::markers_geojson(const http::Request& request, bool with_owner) {
  const std::string etag = "\"m" + markers_->revision() + (with_owner ? "o" : "") + "\"";
  if (none_match(request, etag)) {
    auto r = http::Response::bytes(304, "", "application/geo+json");
    add_cors(r);
    r.headers.emplace_back("ETag", etag);
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  }
  json features = json::array();
  for (const auto& m : markers_->list(request.query_value("kind"))) features.push_back(marker_feature(m, with_owner));
  auto r = http::Response::bytes(200, json{{"type", "FeatureCollection"}, {"features", features}}.dump(),
                                 "application/geo+json");
  add_cors(r);
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

http::Response TileService::handle_api(const http::Request& request, const Authenticator& authenticate) {
  if (request.method == "OPTIONS") return handle(request);
  const auto member = authenticate(request);
  if (!member) {
    auto r = http::Response::error(errc::kUnauthorized, "sign in with your coop handle and password or an app password", 401);
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"coop\", charset=\"UTF-8\"");
    add_cors(r);
    return r;
  }
  const std::string& path = request.path;
  http::Response r;
  if (path == "/tiles/api/markers") {
    if (request.method == "GET" || request.method == "HEAD") {
      r = markers_geojson(request, true);
    } else if (request.method == "POST") {
      Marker m = marker_from_feature(request.json(), false);
      m.by = *member;
      m = markers_->add(m, options_.max_markers_per_member);
      r = http::Response::json(marker_feature(m, true), 201);
      r.headers.emplace_back("Location", "/tiles/api/markers/" + std::to_string(m.id));
    } else {
      r = http::Response::error(errc::kMethodNotAllowed, "GET or POST", 405);
      r.headers.emplace_back("Allow", "GET, HEAD, POST, OPTIONS");
    }
  } else if (path.rfind("/tiles/api/markers/", 0) == 0) {
    int64_t id = 0;
    if (!parse_number(std::string_view(path).substr(19), 18, id)) return plain(404, "not found");
    auto marker = markers_->get(id);
    if (!marker) {
      r = http::Response::error(errc::kNoMarker, "no marker " + std::to_string(id), 404);
    } else if (request.method == "GET" || request.method == "HEAD") {
      r = http::Response::json(marker_feature(*marker, true));
    } else if (request.method == "DELETE") {
      if (marker->by != *member) {
        r = http::Response::error(errc::kForbidden, "only the member who added a marker can remove it here", 403);
      } else {
        markers_->remove(id);
        r = http::Response::json(marker_feature(*marker, true));
      }
    } else {
      r = http::Response::error(errc::kMethodNotAllowed, "GET or DELETE", 405);
      r.headers.emplace_back("Allow", "GET, HEAD, DELETE, OPTIONS");
    }
  } else {
    r = http::Response::error(errc::kNotFound, "no such API", 404);
  }
  add_cors(r);
  return r;
}

}  // namespace coop::tiles
