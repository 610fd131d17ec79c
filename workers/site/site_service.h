// coop-site's public side: every site's current version by its Host header, and any site
// under /sites/NAME/ or at NAME.localhost for previews. Conditional requests (ETag, Last-Modified), single byte
// ranges, the gzip or brotli variant made at publish time, index.html and clean URLs, the
// site's own 404 page, security headers. A switch replaces the whole snapshot at once: a
// request keeps the version it started on.
#pragma once

#include <functional>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/http/message.h"
#include "workers/site/store/site_store.h"

namespace coop::site {

struct SiteServiceOptions {
  int max_age_seconds = 300;        // Cache-Control for everything but HTML (always revalidated)
  int64_t cache_bytes = 256 << 20;  // file contents kept in memory
  bool https = false;               // Strict-Transport-Security
  // Previews by host: NAME.localhost (RFC 6761: browsers send it to this machine) and
  // NAME.<preview_domain> when set; for sites whose links are absolute, which /sites/NAME/
  // cannot preview.
  std::string preview_domain;
  // The shard's front page, served at / of a host no site is bound to (HTML); none: 404.
  std::function<std::string(const std::vector<std::string>& sites)> front_page;
};

class SiteService {
 public:
  SiteService(SiteStore& store, SiteServiceOptions options);
  // Reads the current versions and domains again (after a publish, rollback, domain change).
  void reload();
  http::Response handle(const http::Request& request);

  struct Site {
    std::string name;
    int64_t version = 0;
    int64_t published_at = 0;
    std::unordered_map<std::string, FileEntry> files;
  };
  struct Snapshot {
    std::map<std::string, std::shared_ptr<const Site>> sites;
    std::map<std::string, std::string> hosts;  // host -> site
  };

 private:
  std::shared_ptr<const Snapshot> snapshot() const;
  http::Response serve(const Site& site, const std::string& path, const http::Request& request, const std::string& base);
  http::Response file_response(const Site& site, const FileEntry& file, const http::Request& request, int status);
  std::shared_ptr<const std::string> content(const std::string& blob);

  SiteStore& store_;
  SiteServiceOptions options_;
  mutable std::mutex snapshot_mutex_;
  std::shared_ptr<const Snapshot> snapshot_;
  // Contents by blob, least recently used first out.
  std::mutex cache_mutex_;
  std::list<std::string> lru_;
  std::unordered_map<std::string, std::pair<std::shared_ptr<const std::string>, std::list<std::string>::iterator>> cache_;
  int64_t cached_bytes_ = 0;
};

}  // namespace coop::site
