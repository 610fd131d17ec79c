// coop-tiles' public HTTP side: tiles from the MBTiles archives, TileJSON, a MapLibre style,
// the embeddable map page with its locally served MapLibre GL, and the markers' GeoJSON.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/http/message.h"

namespace coop::tiles {

class GlyphServer;
class MbtilesArchive;
class MarkerStore;

struct TileRequest {
  std::string name;
  int z = 0, x = 0, y = 0;
};

// Parses "NAME/Z/X/Y.pbf" (the part after /tiles/). nullopt for anything else; throws
// coop::Error(errc::kBadRequest, 400) when it has that shape but the numbers are nonsense.
std::optional<TileRequest> parse_tile_path(std::string_view rest);

// The longest place search the map answers (GET /tiles/NAME/search?q=).
constexpr std::size_t kMaxSearchBytes = 200;

// Archive names: what `coop tiles import --name` accepts.
bool valid_archive_name(std::string_view name);

struct TileServiceOptions {
  std::filesystem::path tiles_dir;   // COOP_HOME/tiles
  std::filesystem::path assets_dir;  // maplibre-gl.js and maplibre-gl.css
  std::filesystem::path icons_dir;   // Maki's SVG icons, for the sprite
  // TrueType fonts for labels (served as SDF glyph ranges); none found: a style without text.
  std::filesystem::path fonts_dir = "/usr/share/fonts/truetype/dejavu";
  int max_age_seconds = 3600;        // Cache-Control for tiles
  std::string public_url;            // "https://maps.example.org"; empty: from the Host header
  std::string scheme = "http";       // the listener's, for URLs built from Host
  std::string frame_ancestors = "*"; // who may embed the map page (CSP frame-ancestors)
  std::chrono::milliseconds recheck{200};  // how often an archive's file is looked at again
  int64_t max_markers_per_member = 1000;   // through the members' API
};

// Who a request is from, for the markers API: set by the worker after checking credentials.
using Authenticator = std::function<std::optional<std::string>(const http::Request&)>;

class TileService {
 public:
  TileService(TileServiceOptions options, MarkerStore* markers);
  ~TileService();

  // Everything under /tiles/ that needs no credentials: cheap, safe to run on the event loop.
  http::Response handle(const http::Request& request);
  // /tiles/api/...: the markers API for members; authenticate runs the (blocking) login check.
  http::Response handle_api(const http::Request& request, const Authenticator& authenticate);

  // The archive called name as it is now on disk (re-opened when an import replaced it), or
  // nullptr when there is none.
  std::shared_ptr<MbtilesArchive> archive(const std::string& name);
  std::size_t archives_open() const;

 private:
  http::Response tile(const http::Request& request, const TileRequest& tile);
  http::Response tilejson(const http::Request& request, const std::string& name);
  http::Response style(const http::Request& request, const std::string& name);
  http::Response map_page(const http::Request& request, const std::string& name);
  http::Response asset(const http::Request& request, const std::string& file);
  http::Response sprite(const http::Request& request, const std::string& file);
  http::Response search(const http::Request& request, const std::string& name);
  http::Response glyphs(const http::Request& request, const std::string& fontstack, const std::string& range);
  http::Response markers_geojson(const http::Request& request, bool with_owner);
  std::string base_url(const http::Request& request) const;

  TileServiceOptions options_;
  MarkerStore* markers_;
  std::unique_ptr<GlyphServer> glyphs_;
  struct Entry {
    std::shared_ptr<MbtilesArchive> archive;
    std::string signature;  // inode, size, mtime of the file it was opened from
    std::chrono::steady_clock::time_point checked;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry> archives_;
  std::mutex asset_mutex_;  // its own: the first gzip of maplibre-gl.js must not stall tiles
  std::map<std::string, std::string> asset_cache_;
};

}  // namespace coop::tiles
