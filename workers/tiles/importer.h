// `coop tiles import`: an OSM PBF extract to an MBTiles archive of Mapbox Vector Tiles in the
// schema of schema.h. Reads with libosmium (threaded PBF decoding, a node location index,
// multipolygons assembled by osmium's area assembler) and swaps the archive in atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace coop::tiles {

constexpr int kMaxImportZoom = 16;

struct ImportOptions {
  std::filesystem::path input;   // .osm.pbf
  std::filesystem::path output;  // the archive's final path (…/tiles/NAME.mbtiles)
  std::string name;              // shown in the metadata
  int minzoom = 0;
  int maxzoom = 14;
  unsigned threads = 0;  // tile building threads; 0: one per core
  // Called now and then with the phase ("reading", "tiles z12"...), the work done and the total
  // (0 when unknown): from the importing thread while reading, then from the tile-building
  // threads one at a time (under the archive's write lock), so it should be quick.
  std::function<void(std::string_view phase, uint64_t done, uint64_t total)> progress;
};

struct ImportSummary {
  uint64_t nodes = 0, ways = 0, relations = 0;
  uint64_t features = 0;
  uint64_t tiles = 0;
  uint64_t archive_bytes = 0;
  double seconds = 0;
  double bounds[4] = {0, 0, 0, 0};  // west, south, east, north
  // The sea: what the coastline assembly found and mended (coastline.h); zero without coast.
  uint64_t coastline_segments = 0, coastline_rings = 0, coastline_pieces = 0, coastline_ends_extended = 0;
  uint64_t sea_polygons = 0;
  std::string coastline;  // one line saying so, for the import's output; empty without coast
  uint64_t search_entries = 0;  // names in the archive's place search index
};

// Throws coop::Error: "bad_input" (400) for bad options or an unreadable, truncated or corrupt
// extract, "busy" (409) when another import of the same archive runs, "archive_write_failed"
// (500) when the archive cannot be written (a full disk). On any of these the archive at
// options.output is left as it was. "archive_not_synced" (500): the new archive is in place
// and served, but its directory could not be fsync'd.
ImportSummary import_osm(const ImportOptions& options);

}  // namespace coop::tiles
