// MBTiles 1.3 reading and writing, gzip through zlib.
#include "workers/tiles/mbtiles.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "common/fs.h"
#include "common/sqlite.h"
#include "common/latin_fold.h"
#include "common/text.h"

namespace fs = std::filesystem;

namespace coop::tiles {

std::string gzip(std::string_view data, int level) {
  z_stream stream{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's (zlib manual, deflateInit2).
  if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error(errc::kGzipFailed, "cannot start deflate", 500);
  std::string out;
  out.resize(deflateBound(&stream, static_cast<uLong>(data.size())) + 32);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) throw Error(errc::kGzipFailed, "deflate did not finish", 500);
  return out;
}

std::string gunzip(std::string_view data, std::size_t max_bytes) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) throw Error(errc::kBadGzip, "cannot start inflate", 500);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    rc = inflate(&stream, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&stream);
      throw Error(errc::kBadGzip, "damaged gzip data", 400);
    }
    out.append(buffer, sizeof buffer - stream.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&stream);
      throw Error(errc::kBadGzip, "gzip data expands past the limit", 400);
    }
    if (rc == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      throw Error(errc::kBadGzip, "truncated gzip data", 400);
    }
  }
  inflateEnd(&stream);
  return out;
}

// --- Writer ---

struct MbtilesWriter::Statements {
  std::unique_ptr<sqlite::Statement> tile, metadata, search;
};

namespace {

// A name's words as the search compares them: folded without case or Latin accents; words are
// what FTS5's unicode61 tokenizer sees as words here, ASCII letters and digits and anything
// beyond ASCII.
std::vector<std::string> search_words(std::string_view text) {
  const std::string folded = fold_latin_lower(text);
  auto word_char = [](unsigned char c) { return c >= 0x80 || std::isalnum(c); };
  std::vector<std::string> words;
  for (std::size_t i = 0; i < folded.size();) {
    if (!word_char(static_cast<unsigned char>(folded[i]))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < folded.size() && word_char(static_cast<unsigned char>(folded[j]))) ++j;
    words.push_back(folded.substr(i, j - i));
    i = j;
  }
  return words;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    throw Error(errc::kArchiveWriteFailed, text, 500);
  }
}

}  // namespace

MbtilesWriter::MbtilesWriter(fs::path final_path) : final_(std::move(final_path)) {
  fs::create_directories(final_.parent_path());
  temp_ = final_.parent_path() / ("." + final_.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove(temp_);
  if (sqlite3_open_v2(temp_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(errc::kArchiveWriteFailed, "cannot create " + temp_.string() + ": " + message, 500);
  }
  try {
    // The temporary file is thrown away on any failure, so the build needs no journal; the
    // durable step is the fsync before the rename.
    exec(db_,
         "PRAGMA page_size=4096; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
         "CREATE TABLE metadata (name TEXT NOT NULL, value TEXT);"
         "CREATE UNIQUE INDEX metadata_name ON metadata (name);"
         "CREATE TABLE tiles (zoom_level INTEGER NOT NULL, tile_column INTEGER NOT NULL, tile_row INTEGER NOT NULL,"
         " tile_data BLOB NOT NULL);"
         "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);"
         // Full-text search (SQLite FTS5): words folded without case or accents, prefix indexes
         // so that what a member has typed so far finds the names that start with it.
         "CREATE VIRTUAL TABLE coop_search USING fts5(name, folded UNINDEXED, kind UNINDEXED, layer UNINDEXED,"
         " lon UNINDEXED, lat UNINDEXED, weight UNINDEXED,"
         " tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3');"
         "BEGIN;");
    statements_ = std::make_unique<Statements>();
    statements_->tile = std::make_unique<sqlite::Statement>(db_, "INSERT INTO tiles VALUES (?1, ?2, ?3, ?4)");
    statements_->metadata =
        std::make_unique<sqlite::Statement>(db_, "INSERT OR REPLACE INTO metadata (name, value) VALUES (?1, ?2)");
    statements_->search =
        std::make_unique<sqlite::Statement>(db_, "INSERT INTO coop_search VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  } catch (...) {
    // No destructor runs for a constructor that throws: clean up here.
    statements_.reset();
    sqlite3_close(db_);
    db_ = nullptr;
    std::error_code ignored;
    fs::remove(temp_, ignored);
    throw;
  }
}

MbtilesWriter::~MbtilesWriter() {
  statements_.reset();
  if (db_) sqlite3_close(db_);
  if (!committed_) {
    std::error_code ignored;
    fs::remove(temp_, ignored);
  }
}

void MbtilesWriter::put_tile(int z, int x, int y, std::string_view gzipped) {
  // MBTiles rows are TMS: row 0 is the southernmost (spec 1.3, "Tiles").
  const int row = (1 << z) - 1 - y;
  statements_->tile->bind(1, z).bind(2, x).bind(3, row).bind_blob(4, gzipped);
  statements_->tile->run();
}

void MbtilesWriter::set_metadata(const std::string& name, const std::string& value) {
  statements_->metadata->bind(1, name).bind(2, value);
  statements_->metadata->run();
}

void MbtilesWriter::add_search_entry(const SearchEntry& e) {
  statements_->search->bind(1, e.name).bind(2, joined(search_words(e.name))).bind(3, e.kind).bind(4, e.layer);
  statements_->search->bind(5, e.lon).bind(6, e.lat).bind(7, e.rank);
  statements_->search->run();
}

void MbtilesWriter::commit() {
  exec(db_, "COMMIT;");
  statements_.reset();
  if (sqlite3_close(db_) != SQLITE_OK) throw Error(errc::kArchiveWriteFailed, "cannot close " + temp_.string(), 500);
  db_ = nullptr;
  ::chmod(temp_.c_str(), 0644);  // before the fsync, so the mode is as durable as the data
  const int fd = ::open(temp_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    throw Error(errc::kArchiveWriteFailed, "cannot sync " + temp_.string(), 500);
  }
  ::close(fd);
  std::error_code ec;
  fs::rename(temp_, final_, ec);
  if (ec) throw Error(errc::kArchiveWriteFailed, "cannot rename into " + final_.string() + ": " + ec.message(), 500);
  committed_ = true;
  try {
    fsync_directory(final_.parent_path());
  } catch (const std::exception& e) {
    // The new archive is already in place and being served; only its directory entry may not
    // have reached the disk yet.
    throw Error(errc::kArchiveNotSynced, "the new archive is in place but its directory could not be synced: " +
                                          std::string(e.what()), 500);
  }
}

// --- Reader ---

struct MbtilesArchive::Connection {
  sqlite3* db = nullptr;
  std::unique_ptr<sqlite::Statement> select;
  ~Connection() {
    select.reset();
    if (db) sqlite3_close(db);
  }
};

namespace {

// SQLite's URI filenames (RFC 3986): each path segment percent-encoded, the slashes kept.
std::string uri_path(const std::string& path) {
  std::string out;
  for (std::size_t start = 0; start <= path.size();) {
    auto slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    out += percent_encode(std::string_view(path).substr(start, slash - start));
    if (slash < path.size()) out += '/';
    start = slash + 1;
  }
  return out;
}

std::string import_id(sqlite3* db) {
  sqlite::Statement select(db, "SELECT value FROM metadata WHERE name = 'coop_import_id'");
  return select.step() ? select.column_text(0) : std::string();
}

}  // namespace

std::shared_ptr<MbtilesArchive> MbtilesArchive::open(const fs::path& file, int connections) {
  std::error_code ec;
  if (!fs::exists(file, ec)) throw Error(errc::kNoArchive, "no archive " + file.filename().string(), 404);
  std::shared_ptr<MbtilesArchive> archive(new MbtilesArchive());
  archive->file_ = file;
  // immutable=1: no locks and no journal checks; the file never changes under its inode.
  const std::string uri = "file:" + uri_path(file.string()) + "?immutable=1";
  // An import may rename a new file in while the connections open: they must all read the
  // same import, else open them again.
  for (int attempt = 0;; ++attempt) {
    archive->pool_.clear();
    std::string first_id;
    bool same = true;
    for (int i = 0; i < std::max(1, connections); ++i) {
      auto connection = std::make_unique<Connection>();
      if (sqlite3_open_v2(uri.c_str(), &connection->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                          nullptr) != SQLITE_OK)
        throw Error(errc::kBadArchive, "cannot open " + file.filename().string(), 500);
      try {
        connection->select = std::make_unique<sqlite::Statement>(
            connection->db, "SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3");
        const std::string id = import_id(connection->db);
        if (i == 0) first_id = id;
        same = same && id == first_id;
      } catch (const Error& e) {
        throw Error(errc::kBadArchive, file.filename().string() + " is not an MBTiles archive", 500);
      }
      archive->pool_.push_back(std::move(connection));
    }
    if (same) break;
    if (attempt == 3) throw Error(errc::kBadArchive, file.filename().string() + " keeps changing while it is opened", 500);
  }

  auto connection = archive->acquire();
  try {
    sqlite::Statement meta(connection->db, "SELECT name, value FROM metadata");
    while (meta.step()) archive->metadata_[meta.column_text(0)] = meta.column_text(1);
  } catch (const Error& e) {
    throw Error(errc::kBadArchive, file.filename().string() + " is not an MBTiles archive", 500);
  }
  archive->release(std::move(connection));
  auto as_int = [&](const char* key, int fallback) {
    auto it = archive->metadata_.find(key);
    if (it == archive->metadata_.end()) return fallback;
    try {
      return std::clamp(std::stoi(it->second), 0, 30);
    } catch (...) {
      return fallback;
    }
  };
  archive->minzoom_ = as_int("minzoom", 0);
  archive->maxzoom_ = std::max(archive->minzoom_, as_int("maxzoom", 14));
  if (auto it = archive->metadata_.find("coop_import_id"); it != archive->metadata_.end() && !it->second.empty()) {
    archive->version_ = it->second;
  } else {
    // Archives from elsewhere: the file's identity and time stand in for an import id.
    struct stat st {};
    ::stat(file.c_str(), &st);
    archive->version_ = std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" +
                        std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  return archive;
}

MbtilesArchive::~MbtilesArchive() = default;

std::unique_ptr<MbtilesArchive::Connection> MbtilesArchive::acquire() const {
  std::unique_lock lock(pool_mutex_);
  // Never a new connection here: by now the path may name another file.
  pool_ready_.wait(lock, [this] { return !pool_.empty(); });
  auto connection = std::move(pool_.back());
  pool_.pop_back();
  return connection;
}

MbtilesArchive::Lease::Lease(const MbtilesArchive* archive, std::unique_ptr<Connection> connection)
    : archive_(archive), connection_(std::move(connection)) {}

MbtilesArchive::Lease::~Lease() {
  if (connection_) archive_->release(std::move(connection_));
}

void MbtilesArchive::release(std::unique_ptr<Connection> connection) const {
  {
    std::lock_guard lock(pool_mutex_);
    pool_.push_back(std::move(connection));
  }
  pool_ready_.notify_one();
}

MbtilesArchive::Lease MbtilesArchive::lease() const { return Lease(this, acquire()); }

std::optional<std::string> MbtilesArchive::tile(int z, int x, int y) const {
  const Lease connection = lease();
  const int row = (1 << z) - 1 - y;
  auto& select = *connection->select;
  select.reset();
  select.bind(1, z).bind(2, x).bind(3, row);
  std::optional<std::string> data;
  // For a BLOB, column_text hands back its bytes unchanged (with a NUL past the end).
  if (select.step()) data = select.column_text(0);
  select.reset();
  return data;
}

std::vector<SearchEntry> MbtilesArchive::search(std::string_view query, int limit) const {
  // Each word of the query as an FTS5 prefix query ("word"*), all of them required.
  const auto words = search_words(query);
  std::string match, plain;
  for (const auto& word : words) {
    match += (match.empty() ? "\"" : " \"") + word + "\"*";
    plain += (plain.empty() ? "" : " ") + word;
  }
  std::vector<SearchEntry> hits;
  if (match.empty() || limit <= 0) return hits;
  const Lease connection = lease();
  std::unique_ptr<sqlite::Statement> select;
  try {
    // Exact names first, then names that start with the query, then by weight (places before
    // streets before POIs), then the shorter name.
    select = std::make_unique<sqlite::Statement>(
        connection->db,
        "SELECT name, kind, layer, lon, lat, weight FROM coop_search WHERE coop_search MATCH ?1"
        " ORDER BY folded = ?2 DESC, substr(folded, 1, length(?2)) = ?2 DESC, weight, length(name), name LIMIT ?3");
  } catch (const Error&) {
    return hits;  // no index in this archive
  }
  select->bind(1, match).bind(2, plain).bind(3, limit);
  try {
    while (select->step()) {
      SearchEntry e;
      e.name = select->column_text(0);
      e.kind = select->column_text(1);
      e.layer = select->column_text(2);
      e.lon = select->column_double(3);
      e.lat = select->column_double(4);
      e.rank = static_cast<int>(select->column_int64(5));
      hits.push_back(std::move(e));
    }
  } catch (const Error&) {
    hits.clear();  // a query FTS5 cannot parse finds nothing
  }
  return hits;
}

}  // namespace coop::tiles
