// site.db and the site blobs: sites, their domains, immutable versions (a manifest of paths
// to content-addressed blobs, with gzip and brotli variants made once per content), which
// version is current, and the Markdown pages and events members add without a builder.
// Blob bytes live in COOP_HOME/blobs/site/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/blob_store.h"

namespace coop::sqlite {
class Database;
}

namespace coop::site {

struct FileEntry {
  std::string path;  // valid_file_path
  std::string blob;  // sha256 of the bytes
  int64_t size = 0;
  int64_t mtime = 0;  // seconds, from the published folder (Last-Modified)
  std::string type;   // Content-Type
  std::string gzip, br;  // variant blobs, empty when not worth it
  std::string origin = "upload";  // upload, page or event
};

struct VersionInfo {
  std::string site;
  int64_t number = 0;
  int64_t created_at = 0;
  int64_t files = 0, bytes = 0;
  std::string source;
  bool current = false;
};

struct SiteInfo {
  std::string name;
  int64_t current = 0;  // 0: nothing published
  int64_t created_at = 0;
  std::vector<std::string> domains;
};

struct Page {
  std::string slug, title, markdown;
  int64_t updated_at = 0;
};

struct Event {
  std::string slug, title;
  int64_t starts = 0, ends = 0;  // seconds since the epoch, UTC
  std::string location, description;
  std::optional<double> lat, lon;
  std::string uid;
  int64_t created_at = 0;
};

class SiteStore {
 public:
  SiteStore(const std::filesystem::path& database, std::filesystem::path blob_root, int keep_versions);
  ~SiteStore();

  // Of these blobs, the ones not stored yet (what a publish must upload).
  std::vector<std::string> missing(const std::vector<std::string>& blobs);
  // Stores uploaded bytes; coop::Error(errc::kBlobMismatch, 400) when they do not hash to sha256.
  void put_blob(const std::string& sha256, std::string_view bytes);
  std::string put_generated(std::string_view bytes) { return blobs_.put(bytes); }
  std::filesystem::path blob_path(const std::string& sha256) const { return blobs_.path_of(sha256); }
  std::string read_blob(const std::string& sha256) const { return blobs_.read(sha256); }

  // A new version of site (created when new) from files, made current in one transaction;
  // versions beyond the retention (and never the current one) go, with blobs nothing else
  // uses. Every blob must be stored; coop::Error(errc::kMissingBlob, 409) otherwise.
  VersionInfo add_version(const std::string& site, std::vector<FileEntry> files, const std::string& source);
  std::vector<FileEntry> files(const std::string& site, int64_t version);
  std::vector<VersionInfo> versions(const std::string& site);
  // Makes an earlier version current: `to`, else the one before the current.
  VersionInfo rollback(const std::string& site, std::optional<int64_t> to);
  void remove_site(const std::string& site);

  std::optional<SiteInfo> site(const std::string& name);
  std::vector<SiteInfo> sites();
  // coop::Error(errc::kDomainTaken, 409) when another site has it.
  void add_domain(const std::string& site, const std::string& host);
  void remove_domain(const std::string& site, const std::string& host);

  void put_page(const std::string& site, const Page& page);
  bool remove_page(const std::string& site, const std::string& slug);
  std::vector<Page> pages(const std::string& site);
  void put_event(const std::string& site, const Event& event);
  bool remove_event(const std::string& site, const std::string& slug);
  std::vector<Event> events(const std::string& site);
  // slug -> coop-tiles marker id of the site's events on the map; nullopt forgets one.
  std::map<std::string, int64_t> event_markers(const std::string& site);
  void set_event_marker(const std::string& site, const std::string& slug, std::optional<int64_t> marker);

 private:
  void ensure_variants(FileEntry& file);
  void collect_garbage(const std::vector<std::string>& candidates);
  VersionInfo version_info(const std::string& site, int64_t number);
  SiteInfo require_site(const std::string& name);

  std::unique_ptr<sqlite::Database> db_;
  BlobStore blobs_;
  int keep_;
  std::mutex mutex_;
};

}  // namespace coop::site
