// MBTiles 1.3 archives (github.com/mapbox/mbtiles-spec, 1.3/spec.md): a SQLite file with
// `metadata` (name/value) and `tiles` (zoom_level, tile_column, tile_row in TMS order, i.e.
// y flipped, tile_data gzip'd MVT). Written once to a temporary file, then renamed into place.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace coop::tiles {

// RFC 1952 gzip of data (zlib level 6), and its inverse; gunzip throws coop::Error(errc::kBadGzip)
// on damaged input or when the result would pass max_bytes.
std::string gzip(std::string_view data, int level = 6);
std::string gunzip(std::string_view data, std::size_t max_bytes = 64 << 20);

// One name of the place search index that an import builds beside the tiles (table coop_search:
// an extension of coop's, which other MBTiles readers ignore).
struct SearchEntry {
  std::string name;
  std::string kind;   // "city", "residential", "cafe"...
  std::string layer;  // the tile layer it came from: "place_labels", "streets", "pois"...
  double lon = 0, lat = 0;
  int rank = 0;       // lower first among equally good matches: places, then streets, then POIs
};

// Builds an archive at a temporary path. Nothing is visible under the final name until
// commit() succeeds; destroying an uncommitted writer removes the temporary file.
class MbtilesWriter {
 public:
  // final_path: where commit() puts it (atomically replacing an older archive).
  explicit MbtilesWriter(std::filesystem::path final_path);
  ~MbtilesWriter();
  MbtilesWriter(const MbtilesWriter&) = delete;
  MbtilesWriter& operator=(const MbtilesWriter&) = delete;

  // z/x/y in XYZ order (y down, as in the URL); data already gzip'd.
  void put_tile(int z, int x, int y, std::string_view gzipped);
  void set_metadata(const std::string& name, const std::string& value);
  void add_search_entry(const SearchEntry& entry);
  // Commits, fsyncs the file, renames it over the final path and fsyncs the directory.
  void commit();
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  std::filesystem::path final_, temp_;
  sqlite3* db_ = nullptr;
  struct Statements;
  std::unique_ptr<Statements> statements_;
  bool committed_ = false;
};

// A read-only view of one archive file, opened immutable (the file is never written in place:
// an import renames a new file over it). All its connections are opened together, before
// anything else can replace the file, and checked to read the same import; so a request that
// started on this archive finishes on it after a swap. Safe to use from several threads.
class MbtilesArchive {
 public:
  // Throws coop::Error(errc::kNoArchive, 404) when the file is missing, ("bad_archive") when it
  // is not an MBTiles archive. connections: how many requests read it at once.
  static std::shared_ptr<MbtilesArchive> open(const std::filesystem::path& file, int connections = 8);
  ~MbtilesArchive();

  // The gzip'd tile, or nullopt when the archive has none there.
  std::optional<std::string> tile(int z, int x, int y) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Names that start with query, or have a word that does, compared without case or accents:
  // exact names first, then whole-name prefixes, then by rank. Empty for an archive without
  // an index (built elsewhere, or by an older coop).
  std::vector<SearchEntry> search(std::string_view query, int limit) const;
  int minzoom() const { return minzoom_; }
  int maxzoom() const { return maxzoom_; }
  // Identifies this file's content: changes with every import (its coop_import_id).
  const std::string& version() const { return version_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  MbtilesArchive() = default;
  struct Connection;
  std::unique_ptr<Connection> acquire() const;
  void release(std::unique_ptr<Connection> connection) const;
  // A connection from the pool for one request, given back when it goes out of scope.
  class Lease {
   public:
    Lease(const MbtilesArchive* archive, std::unique_ptr<Connection> connection);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection* operator->() const { return connection_.get(); }

   private:
    const MbtilesArchive* archive_;
    std::unique_ptr<Connection> connection_;
  };
  Lease lease() const;

  std::filesystem::path file_;
  std::map<std::string, std::string> metadata_;
  int minzoom_ = 0, maxzoom_ = 14;
  std::string version_;
  mutable std::mutex pool_mutex_;
  mutable std::condition_variable pool_ready_;
  mutable std::vector<std::unique_ptr<Connection>> pool_;
};

}  // namespace coop::tiles
