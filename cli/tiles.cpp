// coop tiles ...: OSM imports (run here, in the CLI's process, so cron needs no running shard)
// and the cooperative's map markers (through coop-tiles' control socket).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <regex>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/error.h"
#include "common/paths.h"
#include "workers/tiles/importer.h"
#include "workers/tiles/mbtiles.h"

namespace fs = std::filesystem;

namespace coop::cli {

namespace {

using nlohmann::json;

constexpr const char* kTilesDescription =
    "OpenStreetMap vector tiles and the cooperative's map markers\n\n"
    "coop tiles import turns an OpenStreetMap extract (.osm.pbf, as Geofabrik publishes them) into an\n"
    "MBTiles 1.3 archive, COOP_HOME/tiles/NAME.mbtiles, of Mapbox Vector Tiles 2.1 (extent 4096, gzip'd).\n"
    "The new archive replaces the old one atomically; a failed import leaves the old one in place.\n"
    "coop-tiles serves it at /tiles/NAME/{z}/{x}/{y}.pbf, TileJSON at /tiles/NAME.json, a MapLibre\n"
    "style at /tiles/NAME/style.json and an embeddable map page at /tiles/NAME/map.\n"
    "The layers follow the Shortbread schema's names, in drawing order:\n"
    "  ocean             the sea, from the coastline (natural=coastline) joined into polygons and\n"
    "                    clipped to the extract; pieces its edge cuts are closed along it (the\n"
    "                    import says how many); islands are holes\n"
    "  water_polygons    kind (water, river, reservoir, basin, dock), name\n"
    "  water_lines       kind (river, canal, stream, ditch, drain), name\n"
    "  land              kind (park, forest, wood, residential, grass, aerodrome, heliport...), name\n"
    "  pier_polygons     kind (pier, breakwater, groyne)\n"
    "  buildings\n"
    "  pier_lines        kind\n"
    "  boundaries        admin_level (2 to 10), maritime, disputed\n"
    "  ferries           kind (ferry), name\n"
    "  streets           kind (motorway to footway, rail, tram, subway..., runway, taxiway), name,\n"
    "                    ref, link, rail, tunnel, bridge, oneway, oneway_reverse\n"
    "  public_transport  kind (station, halt, tram_stop, bus_stop, bus_station, ferry_terminal,\n"
    "                    aerodrome, heliport, helipad), name\n"
    "  addresses         housenumber, name (addr:housename)\n"
    "  place_labels      kind (city, town, village, suburb...), name, population\n"
    "  pois              category (amenity, shop, tourism...), kind, name, housenumber\n"
    "Each import also builds a place search index of the names of places, streets, stops, POIs and\n"
    "named areas, served as GeoJSON at /tiles/NAME/search?q=TEXT[&limit=N] (at most 50; accents and\n"
    "case do not matter; every word matches the start of a word) and used by the map page's search\n"
    "box. POI icons come from Maki (CC0), drawn into the sprite at /tiles/assets/sprite.json|png.\n"
    "Feature ids name the OSM object: node id*4, way id*4+1, an area from a closed way id*4+2, from a\n"
    "multipolygon relation id*4+3.\n"
    "\nMarkers are resources and events members put on the map; the page shows them within a second.";

std::string default_name(const fs::path& input) {
  std::string name = input.filename().string();
  for (const char* suffix : {".osm.pbf", ".pbf"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      name.resize(name.size() - s.size());
      break;
    }
  }
  std::string clean;
  for (char c : name) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    clean += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '-';
  }
  return clean;
}

void check_name(const std::string& name) {
  static const std::regex kName("[a-z0-9][a-z0-9_-]{0,62}");
  if (name == "api" || name == "assets" || name == "fonts")
    throw Error(errc::kBadName, "'" + name + "' is taken by coop-tiles' own paths; choose another name", 400);
  if (!std::regex_match(name, kName))
    throw Error(errc::kBadName, "archive names are 1-63 of a-z, 0-9, '-' and '_', starting with a letter or digit: '" +
                                name + "'", 400);
}

// Progress on a terminal only, at most ten updates a second.
class ImportProgress {
 public:
  ImportProgress() : enabled_(stderr_is_terminal()) {}
  ~ImportProgress() { finish(); }
  void update(std::string_view phase, uint64_t done, uint64_t total) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (phase == phase_ && now - last_ < std::chrono::milliseconds(100) && done != total) return;
    last_ = now;
    phase_ = std::string(phase);
    if (total > 0)
      std::fprintf(stderr, "\r\033[K%s: %3.0f%%", phase_.c_str(), 100.0 * static_cast<double>(done) / static_cast<double>(total));
    else
      std::fprintf(stderr, "\r\033[K%s...", phase_.c_str());
    shown_ = true;
  }
  void finish() {
    if (shown_) std::fputs("\r\033[K", stderr);
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::string phase_;
  std::chrono::steady_clock::time_point last_{};
};

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void add_marker_commands(CLI::App& group, Globals& globals) {
  auto* marker = group.add_subcommand("marker", "Resources and events marked on the cooperative's map");
  marker->require_subcommand(1);

  struct AddOptions {
    double lat = 0, lon = 0;
    std::string title, kind = "resource", when, by, description;
    bool json = false;
  };
  auto add = std::make_shared<AddOptions>();
  auto* cmd = marker->add_subcommand("add", "Put a marker on the map (shown at once, no re-import)");
  cmd->add_option("--lat", add->lat, "Latitude, WGS 84 degrees")->required()->check(CLI::Range(-85.0511, 85.0511));
  cmd->add_option("--lon", add->lon, "Longitude, WGS 84 degrees")->required()->check(CLI::Range(-180.0, 180.0));
  cmd->add_option("--title", add->title, "What people see on the map")->required()->type_name("TEXT");
  cmd->add_option("--kind", add->kind, "resource (default) or event")->check(CLI::IsMember({"resource", "event"}));
  cmd->add_option("--when", add->when, "An event's time, ISO 8601 (2026-12-05T18:00:00+01:00)")->type_name("TIME");
  cmd->add_option("--by", add->by, "The member it belongs to")->type_name("HANDLE");
  cmd->add_option("--description", add->description, "A longer text shown when it is clicked")->type_name("TEXT");
  cmd->add_flag("--json", add->json, "Print it as GeoJSON");
  cmd->callback([&globals, add] {
    if (!add->by.empty()) require_member(globals, add->by);
    WorkerCall call(globals, "tiles", add->json);
    json properties{{"title", add->title}, {"kind", add->kind}};
    if (!add->when.empty()) properties["when"] = add->when;
    if (!add->by.empty()) properties["by"] = add->by;
    if (!add->description.empty()) properties["description"] = add->description;
    const auto feature = call.call("POST", "/v1/markers",
                                   json{{"type", "Feature"},
                                        {"geometry", {{"type", "Point"}, {"coordinates", {add->lon, add->lat}}}},
                                        {"properties", properties}});
    if (add->json) return print_json(feature);
    std::cout << "Added marker " << feature.value("id", 0) << ": " << add->title << "\n";
  });

  struct ListOptions {
    std::string kind;
    bool json = false;
  };
  auto list = std::make_shared<ListOptions>();
  cmd = marker->add_subcommand("list", "List the markers");
  cmd->add_option("--kind", list->kind, "Only resources or only events")->check(CLI::IsMember({"resource", "event"}));
  cmd->add_flag("--json", list->json, "Print them as a GeoJSON FeatureCollection");
  cmd->callback([&globals, list] {
    WorkerCall call(globals, "tiles", list->json);
    const auto collection = call.call("GET", "/v1/markers" + (list->kind.empty() ? "" : "?kind=" + list->kind));
    if (list->json) return print_json(collection);
    Table table({"ID", "KIND", "LAT", "LON", "WHEN", "BY", "TITLE"});
    char lat[32], lon[32];
    for (const auto& f : collection["features"]) {
      const auto& p = f["properties"];
      std::snprintf(lat, sizeof lat, "%.6f", f["geometry"]["coordinates"][1].get<double>());
      std::snprintf(lon, sizeof lon, "%.6f", f["geometry"]["coordinates"][0].get<double>());
      table.add_row({std::to_string(f.value("id", 0)), p.value("kind", ""), lat, lon, p.value("when", "-"),
                     p.value("by", "-"), p.value("title", "")});
    }
    table.print();
  });

  struct RemoveOptions {
    int64_t id = 0;
    bool json = false;
  };
  auto remove = std::make_shared<RemoveOptions>();
  cmd = marker->add_subcommand("remove", "Take a marker off the map");
  cmd->add_option("id", remove->id, "The marker's id (from marker list)")->required()->type_name("ID");
  cmd->add_flag("--json", remove->json, "Print the removed marker as JSON");
  cmd->callback([&globals, remove] {
    WorkerCall call(globals, "tiles", remove->json);
    const auto feature = call.call("DELETE", "/v1/markers/" + std::to_string(remove->id));
    if (remove->json) return print_json(feature);
    std::cout << "Removed marker " << remove->id << "\n";
  });
}

}  // namespace

void add_tiles_commands(CLI::App& app, Globals& globals) {
  auto* group = app.add_subcommand("tiles", kTilesDescription);
  group->require_subcommand(1);

  struct ImportOptions {
    std::string file, name;
    int minzoom = 0, maxzoom = 14;
    unsigned threads = 0;
    bool quiet = false, json = false;
  };
  auto import = std::make_shared<ImportOptions>();
  auto* cmd = group->add_subcommand(
      "import",
      "Build the map's tiles from an OpenStreetMap extract\n\n"
      "Reads FILE.osm.pbf, builds every tile from --minzoom to --maxzoom and swaps the archive in;\n"
      "coop-tiles serves the new tiles at once, without a restart. Progress shows on a terminal only,\n"
      "so cron stays quiet but for the summary line (none with --quiet).");
  cmd->add_option("file", import->file, "The extract, .osm.pbf")->required()->type_name("FILE.osm.pbf");
  cmd->add_option("--name", import->name, "The archive's name (default: the file's, e.g. monaco)")->type_name("NAME");
  cmd->add_option("--minzoom", import->minzoom, "First zoom level built (default 0)")->check(CLI::Range(0, tiles::kMaxImportZoom));
  cmd->add_option("--maxzoom", import->maxzoom, "Last zoom level built; maps zoom further by scaling it (default 14)")
      ->check(CLI::Range(0, tiles::kMaxImportZoom));
  cmd->add_option("--threads", import->threads, "Threads building tiles (default: one per core)")->type_name("N");
  cmd->add_flag("--quiet,-q", import->quiet, "No summary line");
  cmd->add_flag("--json", import->json, "Print the summary as JSON");
  cmd->callback([&globals, import] {
    const auto home = globals.resolve_home();
    const std::string name = import->name.empty() ? default_name(import->file) : import->name;
    check_name(name);
    tiles::ImportOptions options;
    options.input = import->file;
    options.output = home.root() / "tiles" / (name + ".mbtiles");
    options.name = name;
    options.minzoom = import->minzoom;
    options.maxzoom = import->maxzoom;
    options.threads = import->threads;
    ImportProgress progress;
    options.progress = [&progress](std::string_view phase, uint64_t done, uint64_t total) {
      progress.update(phase, done, total);
    };
    const auto summary = tiles::import_osm(options);
    progress.finish();
    const double rss = peak_rss_mb();
    if (import->json) {
      return print_json(json{{"name", name},
                             {"archive", options.output.string()},
                             {"nodes", summary.nodes},
                             {"ways", summary.ways},
                             {"relations", summary.relations},
                             {"features", summary.features},
                             {"tiles", summary.tiles},
                             {"minzoom", import->minzoom},
                             {"maxzoom", import->maxzoom},
                             {"bytes", summary.archive_bytes},
                             {"seconds", summary.seconds},
                             {"peak_rss_mb", rss},
                             {"bounds", {summary.bounds[0], summary.bounds[1], summary.bounds[2], summary.bounds[3]}},
                             {"coastline",
                              {{"stretches", summary.coastline_segments},
                               {"closed", summary.coastline_rings},
                               {"cut_by_edge", summary.coastline_pieces},
                               {"ends_extended", summary.coastline_ends_extended},
                               {"sea_polygons", summary.sea_polygons},
                               {"summary", summary.coastline}}},
                             {"search_entries", summary.search_entries}});
    }
    if (import->quiet) return;
    std::printf("Imported %s: %llu features in %llu tiles (z%d-%d), %s, in %.1f s, peak memory %.0f MiB\n",
                name.c_str(), static_cast<unsigned long long>(summary.features),
                static_cast<unsigned long long>(summary.tiles), import->minzoom, import->maxzoom,
                format_bytes(summary.archive_bytes).c_str(), summary.seconds, rss);
    // What the sea's assembly mended: worth a line even under cron, since it is about the data.
    if (!summary.coastline.empty()) std::printf("  %s\n", summary.coastline.c_str());
  });

  auto list_json = std::make_shared<bool>(false);
  cmd = group->add_subcommand("list", "List the shard's tile archives");
  cmd->add_flag("--json", *list_json, "Print them as JSON");
  cmd->callback([&globals, list_json] {
    const auto dir = globals.resolve_home().root() / "tiles";
    json archives = json::array();
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".mbtiles" && entry.path().filename().string()[0] != '.') files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      const auto archive = tiles::MbtilesArchive::open(file);
      const auto& m = archive->metadata();
      auto get = [&](const char* key) {
        auto it = m.find(key);
        return it == m.end() ? std::string() : it->second;
      };
      archives.push_back({{"name", file.stem().string()},
                          {"file", file.string()},
                          {"bytes", fs::file_size(file, ec)},
                          {"minzoom", archive->minzoom()},
                          {"maxzoom", archive->maxzoom()},
                          {"bounds", get("bounds")},
                          {"source", get("coop_source")},
                          {"source_timestamp", get("coop_source_timestamp")}});
    }
    if (*list_json) return print_json(archives);
    Table table({"NAME", "ZOOMS", "SIZE", "SOURCE", "BOUNDS"});
    for (const auto& a : archives) {
      char size[32];
      std::snprintf(size, sizeof size, "%s", format_bytes(a["bytes"].get<uint64_t>()).c_str());
      table.add_row({a["name"], "z" + std::to_string(a["minzoom"].get<int>()) + "-" + std::to_string(a["maxzoom"].get<int>()),
                     size, a["source"], a["bounds"]});
    }
    table.print();
  });

  add_marker_commands(*group, globals);
}

}  // namespace coop::cli
