// site.db, the site blobs, versions and their retention.
#include "workers/site/store/site_store.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "common/digest.h"
#include "common/error.h"
#include "common/sqlite.h"
#include "workers/site/compress.h"
#include "workers/site/site_paths.h"

namespace fs = std::filesystem;

namespace coop::site {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1,
     "CREATE TABLE sites (name TEXT PRIMARY KEY, current INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);"
     "CREATE TABLE domains (host TEXT PRIMARY KEY, site TEXT NOT NULL);"
     "CREATE TABLE versions (site TEXT NOT NULL, number INTEGER NOT NULL, created_at INTEGER NOT NULL,"
     " files INTEGER NOT NULL, bytes INTEGER NOT NULL, source TEXT NOT NULL DEFAULT '', PRIMARY KEY (site, number));"
     "CREATE TABLE files (site TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, blob TEXT NOT NULL,"
     " size INTEGER NOT NULL, mtime INTEGER NOT NULL, type TEXT NOT NULL, gzip TEXT NOT NULL DEFAULT '',"
     " br TEXT NOT NULL DEFAULT '', origin TEXT NOT NULL DEFAULT 'upload', PRIMARY KEY (site, version, path));"
     "CREATE INDEX files_blob ON files (blob);"
     // A content's variants, made once whichever version or site holds it.
     "CREATE TABLE variants (blob TEXT PRIMARY KEY, gzip TEXT NOT NULL, br TEXT NOT NULL);"
     "CREATE TABLE pages (site TEXT NOT NULL, slug TEXT NOT NULL, title TEXT NOT NULL, markdown TEXT NOT NULL,"
     " updated_at INTEGER NOT NULL, PRIMARY KEY (site, slug));"
     "CREATE TABLE events (site TEXT NOT NULL, slug TEXT NOT NULL, title TEXT NOT NULL, starts INTEGER NOT NULL,"
     " ends INTEGER NOT NULL, location TEXT NOT NULL, description TEXT NOT NULL, lat REAL, lon REAL,"
     " uid TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (site, slug));"},
    // The coop-tiles marker of each event shown on the map, so it goes when the event does.
    {2, "CREATE TABLE event_markers (site TEXT NOT NULL, slug TEXT NOT NULL, marker INTEGER NOT NULL,"
        " PRIMARY KEY (site, slug));"},
};

// Below this a compressed copy saves too little to be worth a lookup.
constexpr int64_t kMinCompressBytes = 256;

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

SiteStore::SiteStore(const fs::path& database, fs::path blob_root, int keep_versions)
    : db_(sqlite::Database::open(database)), blobs_(std::move(blob_root)), keep_(std::max(2, keep_versions)) {
  db_->migrate(kMigrations);
}

SiteStore::~SiteStore() = default;

std::vector<std::string> SiteStore::missing(const std::vector<std::string>& blobs) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& b : blobs)
    if (seen.insert(b).second && !blobs_.exists(b)) out.push_back(b);
  return out;
}

void SiteStore::put_blob(const std::string& sha256, std::string_view bytes) {
  if (sha256_hex(bytes) != sha256) throw Error(errc::kBlobMismatch, "the bytes do not hash to " + sha256, 400);
  blobs_.put(bytes);
}

// Variants are computed from the blob once and remembered by its hash: republishing an
// unchanged file costs a lookup.
void SiteStore::ensure_variants(FileEntry& file) {
  file.gzip.clear();
  file.br.clear();
  if (file.size < kMinCompressBytes || !compressible(file.type)) return;
  auto& select = db_->prepare("SELECT gzip, br FROM variants WHERE blob = ?1");
  select.bind(1, file.blob);
  if (select.step() && (select.column_text(0).empty() || blobs_.exists(select.column_text(0))) &&
      (select.column_text(1).empty() || blobs_.exists(select.column_text(1)))) {
    file.gzip = select.column_text(0);
    file.br = select.column_text(1);
    select.reset();
    return;
  }
  select.reset();
  const std::string bytes = blobs_.read(file.blob);
  const std::string gz = gzip_compress(bytes);
  const std::string br = brotli_compress(bytes);
  if (gz.size() < bytes.size()) file.gzip = blobs_.put(gz);
  if (br.size() < bytes.size()) file.br = blobs_.put(br);
  auto& insert = db_->prepare("INSERT OR REPLACE INTO variants (blob, gzip, br) VALUES (?1, ?2, ?3)");
  insert.bind(1, file.blob).bind(2, file.gzip).bind(3, file.br);
  insert.run();
}

VersionInfo SiteStore::add_version(const std::string& site, std::vector<FileEntry> files, const std::string& source) {
  if (!valid_site_name(site)) throw Error(errc::kBadSite, "site names are 1-63 of a-z, 0-9, - and _: '" + site + "'", 400);
  std::set<std::string> paths;
  for (const auto& f : files) {
    if (!valid_file_path(f.path)) throw Error(errc::kBadPath, "not a path a site may hold: '" + f.path + "'", 400);
    if (!paths.insert(f.path).second) throw Error(errc::kBadPath, "two files at " + f.path, 400);
    if (!blobs_.exists(f.blob)) throw Error(errc::kMissingBlob, "the content of " + f.path + " was not uploaded", 409);
  }
  std::lock_guard lock(mutex_);
  int64_t bytes = 0;
  for (auto& f : files) {
    f.size = static_cast<int64_t>(blobs_.size_of(f.blob));
    if (f.type.empty()) f.type = content_type_for(f.path);
    ensure_variants(f);
    bytes += f.size;
  }
  std::vector<std::string> dropped_blobs;
  int64_t number = 0;
  {
    sqlite::Transaction tx(*db_);
    auto& ensure = db_->prepare("INSERT OR IGNORE INTO sites (name, current, created_at) VALUES (?1, 0, ?2)");
    ensure.bind(1, site).bind(2, now_s());
    ensure.run();
    auto& last = db_->prepare("SELECT COALESCE(MAX(number), 0) FROM versions WHERE site = ?1");
    last.bind(1, site);
    last.step();
    number = last.column_int64(0) + 1;
    last.reset();
    auto& version = db_->prepare(
        "INSERT INTO versions (site, number, created_at, files, bytes, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    version.bind(1, site).bind(2, number).bind(3, now_s()).bind(4, static_cast<int64_t>(files.size())).bind(5, bytes).bind(6, source);
    version.run();
    auto& insert = db_->prepare(
        "INSERT INTO files (site, version, path, blob, size, mtime, type, gzip, br, origin)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    for (const auto& f : files) {
      insert.bind(1, site).bind(2, number).bind(3, f.path).bind(4, f.blob).bind(5, f.size).bind(6, f.mtime).bind(7, f.type);
      insert.bind(8, f.gzip).bind(9, f.br).bind(10, f.origin);
      insert.run();
    }
    auto& current = db_->prepare("UPDATE sites SET current = ?2 WHERE name = ?1");
    current.bind(1, site).bind(2, number);
    current.run();
    // Retention: the newest keep_ versions, and whatever is current.
    auto& old = db_->prepare(
        "SELECT number FROM versions WHERE site = ?1 AND number <= ?2 AND number != ?3 ORDER BY number");
    old.bind(1, site).bind(2, number - keep_).bind(3, number);
    std::vector<int64_t> doomed;
    while (old.step()) doomed.push_back(old.column_int64(0));
    old.reset();
    for (int64_t v : doomed) {
      auto& blobs = db_->prepare("SELECT blob, gzip, br FROM files WHERE site = ?1 AND version = ?2");
      blobs.bind(1, site).bind(2, v);
      while (blobs.step())
        for (int c = 0; c < 3; ++c)
          if (!blobs.column_text(c).empty()) dropped_blobs.push_back(blobs.column_text(c));
      blobs.reset();
      auto& remove_files = db_->prepare("DELETE FROM files WHERE site = ?1 AND version = ?2");
      remove_files.bind(1, site).bind(2, v);
      remove_files.run();
      auto& remove_version = db_->prepare("DELETE FROM versions WHERE site = ?1 AND number = ?2");
      remove_version.bind(1, site).bind(2, v);
      remove_version.run();
    }
    tx.commit();
  }
  collect_garbage(dropped_blobs);
  return version_info(site, number);
}

// A blob goes when no file of any version (as content or variant) still names it.
void SiteStore::collect_garbage(const std::vector<std::string>& candidates) {
  std::set<std::string> unique(candidates.begin(), candidates.end());
  for (const auto& blob : unique) {
    auto& used = db_->prepare("SELECT 1 FROM files WHERE blob = ?1 OR gzip = ?1 OR br = ?1 LIMIT 1");
    used.bind(1, blob);
    const bool in_use = used.step();
    used.reset();
    if (in_use) continue;
    auto& forget = db_->prepare("DELETE FROM variants WHERE blob = ?1");
    forget.bind(1, blob);
    forget.run();
    blobs_.remove(blob);
  }
}

std::vector<FileEntry> SiteStore::files(const std::string& site, int64_t version) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare(
      "SELECT path, blob, size, mtime, type, gzip, br, origin FROM files WHERE site = ?1 AND version = ?2 ORDER BY path");
  select.bind(1, site).bind(2, version);
  std::vector<FileEntry> out;
  while (select.step())
    out.push_back({select.column_text(0), select.column_text(1), select.column_int64(2), select.column_int64(3),
                   select.column_text(4), select.column_text(5), select.column_text(6), select.column_text(7)});
  return out;
}

VersionInfo SiteStore::version_info(const std::string& site, int64_t number) {
  auto& select = db_->prepare(
      "SELECT v.created_at, v.files, v.bytes, v.source, s.current FROM versions v JOIN sites s ON s.name = v.site"
      " WHERE v.site = ?1 AND v.number = ?2");
  select.bind(1, site).bind(2, number);
  if (!select.step()) {
    select.reset();
    throw Error(errc::kNoVersion, "site " + site + " has no version " + std::to_string(number), 404);
  }
  VersionInfo v{site, number, select.column_int64(0), select.column_int64(1), select.column_int64(2), select.column_text(3),
                select.column_int64(4) == number};
  select.reset();
  return v;
}

std::vector<VersionInfo> SiteStore::versions(const std::string& site) {
  std::lock_guard lock(mutex_);
  require_site(site);
  auto& select = db_->prepare(
      "SELECT v.number, v.created_at, v.files, v.bytes, v.source, s.current FROM versions v JOIN sites s ON s.name = v.site"
      " WHERE v.site = ?1 ORDER BY v.number");
  select.bind(1, site);
  std::vector<VersionInfo> out;
  while (select.step())
    out.push_back({site, select.column_int64(0), select.column_int64(1), select.column_int64(2), select.column_int64(3),
                   select.column_text(4), select.column_int64(5) == select.column_int64(0)});
  return out;
}

VersionInfo SiteStore::rollback(const std::string& site, std::optional<int64_t> to) {
  std::lock_guard lock(mutex_);
  const auto info = require_site(site);
  int64_t target = 0;
  if (to) {
    target = *to;
  } else {
    auto& previous = db_->prepare("SELECT MAX(number) FROM versions WHERE site = ?1 AND number < ?2");
    previous.bind(1, site).bind(2, info.current);
    previous.step();
    target = previous.column_is_null(0) ? 0 : previous.column_int64(0);
    previous.reset();
    if (target == 0) throw Error(errc::kNoVersion, "site " + site + " has no version before " + std::to_string(info.current), 404);
  }
  version_info(site, target);  // it must exist (kept by the retention)
  auto& current = db_->prepare("UPDATE sites SET current = ?2 WHERE name = ?1");
  current.bind(1, site).bind(2, target);
  current.run();
  return version_info(site, target);
}

void SiteStore::remove_site(const std::string& site) {
  std::lock_guard lock(mutex_);
  require_site(site);
  std::vector<std::string> dropped;
  {
    sqlite::Transaction tx(*db_);
    auto& blobs = db_->prepare("SELECT blob, gzip, br FROM files WHERE site = ?1");
    blobs.bind(1, site);
    while (blobs.step())
      for (int c = 0; c < 3; ++c)
        if (!blobs.column_text(c).empty()) dropped.push_back(blobs.column_text(c));
    blobs.reset();
    for (const char* sql : {"DELETE FROM files WHERE site = ?1", "DELETE FROM versions WHERE site = ?1",
                            "DELETE FROM domains WHERE site = ?1", "DELETE FROM pages WHERE site = ?1",
                            "DELETE FROM events WHERE site = ?1", "DELETE FROM sites WHERE name = ?1"}) {
      auto& remove = db_->prepare(sql);
      remove.bind(1, site);
      remove.run();
    }
    tx.commit();
  }
  collect_garbage(dropped);
}

SiteInfo SiteStore::require_site(const std::string& name) {
  auto& select = db_->prepare("SELECT current, created_at FROM sites WHERE name = ?1");
  select.bind(1, name);
  if (!select.step()) {
    select.reset();
    throw Error(errc::kNoSite, "no site '" + name + "'", 404);
  }
  SiteInfo info{name, select.column_int64(0), select.column_int64(1), {}};
  select.reset();
  auto& domains = db_->prepare("SELECT host FROM domains WHERE site = ?1 ORDER BY host");
  domains.bind(1, name);
  while (domains.step()) info.domains.push_back(domains.column_text(0));
  return info;
}

std::optional<SiteInfo> SiteStore::site(const std::string& name) {
  std::lock_guard lock(mutex_);
  try {
    return require_site(name);
  } catch (const Error& e) {
    if (e.status() == 404) return std::nullopt;
    throw;
  }
}

std::vector<SiteInfo> SiteStore::sites() {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  auto& select = db_->prepare("SELECT name FROM sites ORDER BY name");
  while (select.step()) names.push_back(select.column_text(0));
  std::vector<SiteInfo> out;
  for (const auto& n : names) out.push_back(require_site(n));
  return out;
}

void SiteStore::add_domain(const std::string& site, const std::string& host) {
  if (!valid_host(host)) throw Error(errc::kBadDomain, "not a host name: '" + host + "'", 400);
  std::lock_guard lock(mutex_);
  require_site(site);
  auto& select = db_->prepare("SELECT site FROM domains WHERE host = ?1");
  select.bind(1, host);
  if (select.step() && select.column_text(0) != site) {
    const std::string other = select.column_text(0);
    select.reset();
    throw Error(errc::kDomainTaken, host + " already serves site " + other, 409);
  }
  select.reset();
  auto& insert = db_->prepare("INSERT OR IGNORE INTO domains (host, site) VALUES (?1, ?2)");
  insert.bind(1, host).bind(2, site);
  insert.run();
}

void SiteStore::remove_domain(const std::string& site, const std::string& host) {
  std::lock_guard lock(mutex_);
  require_site(site);
  auto& remove = db_->prepare("DELETE FROM domains WHERE host = ?1 AND site = ?2");
  remove.bind(1, host).bind(2, site);
  remove.run();
  if (db_->changes() == 0) throw Error(errc::kNoDomain, "site " + site + " has no domain " + host, 404);
}

void SiteStore::put_page(const std::string& site, const Page& page) {
  std::lock_guard lock(mutex_);
  auto& upsert = db_->prepare(
      "INSERT INTO pages (site, slug, title, markdown, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)"
      " ON CONFLICT (site, slug) DO UPDATE SET title = excluded.title, markdown = excluded.markdown,"
      " updated_at = excluded.updated_at");
  upsert.bind(1, site).bind(2, page.slug).bind(3, page.title).bind(4, page.markdown).bind(5, now_s());
  upsert.run();
}

bool SiteStore::remove_page(const std::string& site, const std::string& slug) {
  std::lock_guard lock(mutex_);
  auto& remove = db_->prepare("DELETE FROM pages WHERE site = ?1 AND slug = ?2");
  remove.bind(1, site).bind(2, slug);
  remove.run();
  return db_->changes() > 0;
}

std::vector<Page> SiteStore::pages(const std::string& site) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT slug, title, markdown, updated_at FROM pages WHERE site = ?1 ORDER BY slug");
  select.bind(1, site);
  std::vector<Page> out;
  while (select.step()) out.push_back({select.column_text(0), select.column_text(1), select.column_text(2), select.column_int64(3)});
  return out;
}

void SiteStore::put_event(const std::string& site, const Event& e) {
  std::lock_guard lock(mutex_);
  auto& upsert = db_->prepare(
      "INSERT OR REPLACE INTO events (site, slug, title, starts, ends, location, description, lat, lon, uid, created_at)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  upsert.bind(1, site).bind(2, e.slug).bind(3, e.title).bind(4, e.starts).bind(5, e.ends).bind(6, e.location);
  upsert.bind(7, e.description);
  if (e.lat && e.lon) {
    upsert.bind(8, *e.lat).bind(9, *e.lon);
  } else {
    upsert.bind_null(8).bind_null(9);
  }
  upsert.bind(10, e.uid).bind(11, e.created_at ? e.created_at : now_s());
  upsert.run();
}

bool SiteStore::remove_event(const std::string& site, const std::string& slug) {
  std::lock_guard lock(mutex_);
  auto& remove = db_->prepare("DELETE FROM events WHERE site = ?1 AND slug = ?2");
  remove.bind(1, site).bind(2, slug);
  remove.run();
  return db_->changes() > 0;
}

std::map<std::string, int64_t> SiteStore::event_markers(const std::string& site) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT slug, marker FROM event_markers WHERE site = ?1");
  select.bind(1, site);
  std::map<std::string, int64_t> out;
  while (select.step()) out.emplace(select.column_text(0), select.column_int64(1));
  select.reset();
  return out;
}

void SiteStore::set_event_marker(const std::string& site, const std::string& slug, std::optional<int64_t> marker) {
  std::lock_guard lock(mutex_);
  if (marker)
    db_->prepare("INSERT OR REPLACE INTO event_markers (site, slug, marker) VALUES (?1, ?2, ?3)")
        .bind(1, site).bind(2, slug).bind(3, *marker).run();
  else
    db_->prepare("DELETE FROM event_markers WHERE site = ?1 AND slug = ?2").bind(1, site).bind(2, slug).run();
}

std::vector<Event> SiteStore::events(const std::string& site) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare(
      "SELECT slug, title, starts, ends, location, description, lat, lon, uid, created_at FROM events WHERE site = ?1"
      " ORDER BY starts, slug");
  select.bind(1, site);
  std::vector<Event> out;
  while (select.step()) {
    Event e{select.column_text(0), select.column_text(1), select.column_int64(2), select.column_int64(3),
            select.column_text(4), select.column_text(5), std::nullopt, std::nullopt, select.column_text(8),
            select.column_int64(9)};
    if (!select.column_is_null(6)) {
      e.lat = select.column_double(6);
      e.lon = select.column_double(7);
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace coop::site
