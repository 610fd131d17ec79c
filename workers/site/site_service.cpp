// Serving published sites.
#include "workers/site/site_service.h"

#include <ctime>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/http/date.h"
#include "common/text.h"
#include "workers/site/site_paths.h"

namespace coop::site {

namespace {

std::string entity_tag(const std::string& blob) { return "\"" + blob.substr(0, 32) + "\""; }

// RFC 9110 13.1.2: If-None-Match matches with the weak comparison; "*" matches anything.
bool none_match(const std::string& header, const std::string& tag) {
  std::size_t at = 0;
  while (at < header.size()) {
    auto end = header.find(',', at);
    if (end == std::string::npos) end = header.size();
    std::string item = header.substr(at, end - at);
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    item = first == std::string::npos ? "" : item.substr(first, last - first + 1);
    if (item == "*") return true;
    if (item.rfind("W/", 0) == 0) item = item.substr(2);
    if (item == tag) return true;
    at = end + 1;
  }
  return false;
}

// RFC 9110 12.5.3: the coding the client takes, by q-value; br before gzip on a tie.
bool accepts(const std::string& header, std::string_view coding) {
  const std::string lower = ascii_lower(header);
  std::size_t at = 0;
  bool star = false, named = false;
  double star_q = 0, named_q = 0;
  while (at <= lower.size()) {
    auto end = lower.find(',', at);
    if (end == std::string::npos) end = lower.size();
    std::string item = lower.substr(at, end - at);
    double q = 1;
    if (const auto semi = item.find(';'); semi != std::string::npos) {
      const auto qpos = item.find("q=", semi);
      if (qpos != std::string::npos) q = std::atof(item.c_str() + qpos + 2);
      item = item.substr(0, semi);
    }
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    item = first == std::string::npos ? "" : item.substr(first, last - first + 1);
    if (item == coding) {
      named = true;
      named_q = q;
    } else if (item == "*") {
      star = true;
      star_q = q;
    }
    at = end + 1;
  }
  if (named) return named_q > 0;
  return star && star_q > 0;
}

// RFC 9110 14.2: one range of bytes. nullopt: no usable Range (serve it all); a range with
// first > last: unsatisfiable.
struct ByteRange {
  int64_t first = 0, last = 0;
};
std::optional<ByteRange> parse_range(const std::string& header, int64_t size, bool& unsatisfiable) {
  unsatisfiable = false;
  if (header.rfind("bytes=", 0) != 0) return std::nullopt;
  const std::string spec = header.substr(6);
  if (spec.find(',') != std::string::npos) return std::nullopt;  // several ranges: the whole file
  const auto dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  const std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  auto number = [](const std::string& text, int64_t& out) {
    if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::stoll(text);
    return true;
  };
  ByteRange r;
  if (a.empty()) {
    int64_t suffix = 0;
    if (!number(b, suffix)) return std::nullopt;
    if (suffix == 0 || size == 0) {
      unsatisfiable = true;
      return ByteRange{};
    }
    r.first = std::max<int64_t>(0, size - suffix);
    r.last = size - 1;
    return r;
  }
  if (!number(a, r.first)) return std::nullopt;
  if (b.empty()) {
    r.last = size - 1;
  } else if (!number(b, r.last) || r.last < r.first) {
    return std::nullopt;
  }
  if (r.first >= size) {
    unsatisfiable = true;
    return ByteRange{};
  }
  r.last = std::min(r.last, size - 1);
  return r;
}

bool is_html(const std::string& type) { return type.rfind("text/html", 0) == 0; }

http::Response plain(int status, const std::string& text) {
  auto r = http::Response::bytes(status, text + "\n", "text/plain; charset=utf-8");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

}  // namespace

SiteService::SiteService(SiteStore& store, SiteServiceOptions options) : store_(store), options_(options) { reload(); }

void SiteService::reload() {
  auto next = std::make_shared<Snapshot>();
  for (const auto& info : store_.sites()) {
    if (info.current == 0) continue;
    auto site = std::make_shared<Site>();
    site->name = info.name;
    site->version = info.current;
    for (const auto& v : store_.versions(info.name))
      if (v.number == info.current) site->published_at = v.created_at;
    for (auto& f : store_.files(info.name, info.current)) site->files.emplace(f.path, std::move(f));
    next->sites[info.name] = site;
    for (const auto& host : info.domains) next->hosts[host] = info.name;
  }
  std::lock_guard lock(snapshot_mutex_);
  snapshot_ = std::move(next);
}

std::shared_ptr<const SiteService::Snapshot> SiteService::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

std::shared_ptr<const std::string> SiteService::content(const std::string& blob) {
  {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(blob); it != cache_.end()) {
      lru_.splice(lru_.end(), lru_, it->second.second);
      return it->second.first;
    }
  }
  auto bytes = std::make_shared<const std::string>(store_.read_blob(blob));
  const auto size = static_cast<int64_t>(bytes->size());
  if (size > options_.cache_bytes / 8) return bytes;  // a big file would push out many small ones
  std::lock_guard lock(cache_mutex_);
  if (cache_.count(blob)) return bytes;
  lru_.push_back(blob);
  cache_.emplace(blob, std::make_pair(bytes, std::prev(lru_.end())));
  cached_bytes_ += size;
  while (cached_bytes_ > options_.cache_bytes && !lru_.empty()) {
    auto victim = cache_.find(lru_.front());
    cached_bytes_ -= static_cast<int64_t>(victim->second.first->size());
    cache_.erase(victim);
    lru_.pop_front();
  }
  return bytes;
}

http::Response SiteService::handle(const http::Request& request) {
  if (request.method != "GET" && request.method != "HEAD") {
    auto r = plain(405, "GET and HEAD only");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  const auto snap = snapshot();
  // The raw target, decoded once here (Request::path is decoded already).
  std::string raw = request.target.substr(0, request.target.find('?'));
  std::string host = ascii_lower(request.header("host"));
  if (host.size() > 0 && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (const auto colon = host.find(':'); colon != std::string::npos) {
    host.resize(colon);
  }
  if (auto it = snap->hosts.find(host); it != snap->hosts.end()) {
    if (auto site = snap->sites.find(it->second); site != snap->sites.end()) return serve(*site->second, raw, request, "/");
  }
  // Previews: NAME.localhost, NAME.<preview_domain>, /sites/NAME/...
  for (const std::string& suffix : {std::string(".localhost"), options_.preview_domain.empty() ? std::string() : "." + options_.preview_domain}) {
    if (suffix.empty() || host.size() <= suffix.size() || host.compare(host.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string name = host.substr(0, host.size() - suffix.size());
    if (auto site = snap->sites.find(name); site != snap->sites.end()) return serve(*site->second, raw, request, "/");
  }
  if (raw.rfind("/sites/", 0) == 0) {
    const auto slash = raw.find('/', 7);
    const std::string name = raw.substr(7, slash == std::string::npos ? std::string::npos : slash - 7);
    auto site = snap->sites.find(name);
    if (!valid_site_name(name) || site == snap->sites.end()) return plain(404, "no site '" + name + "' is published here");
    if (slash == std::string::npos) {
      auto r = plain(301, "moved");
      r.headers.emplace_back("Location", raw + "/");
      return r;
    }
    return serve(*site->second, raw.substr(slash), request, "/sites/" + name + "/");
  }
  if (raw == "/" && options_.front_page) {
    std::vector<std::string> names;
    for (const auto& [name, site] : snap->sites) names.push_back(name);
    auto r = http::Response::bytes(200, options_.front_page(names), "text/html; charset=utf-8");
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
    return r;
  }
  return plain(404, "no site is published for " + (host.empty() ? std::string("this address") : host));
}

http::Response SiteService::serve(const Site& site, const std::string& raw, const http::Request& request,
                                  const std::string& base) {
  const auto path = file_path_from_request(raw);
  if (!path) return plain(400, "bad path");
  const FileEntry* file = nullptr;
  auto find = [&](const std::string& p) -> const FileEntry* {
    auto it = site.files.find(p);
    return it == site.files.end() ? nullptr : &it->second;
  };
  if (path->empty() || path->back() == '/') {
    file = find(*path + "index.html");
  } else {
    file = find(*path);
    if (!file) file = find(*path + ".html");  // clean URLs: /about serves about.html
    if (!file && find(*path + "/index.html")) {
      // A folder asked without its slash: relative links in its index need the slash.
      auto r = plain(301, "moved");
      const auto query = request.target.find('?');
      r.headers.emplace_back("Location", base + *path + "/" + (query == std::string::npos ? "" : request.target.substr(query)));
      return r;
    }
  }
  if (!file) {
    if (const auto* missing = find("404.html")) return file_response(site, *missing, request, 404);
    return plain(404, "not found");
  }
  return file_response(site, *file, request, 200);
}

http::Response SiteService::file_response(const Site& site, const FileEntry& file, const http::Request& request, int status) {
  http::Response r;
  r.status = status;
  r.content_type = file.type;
  const std::string range_header = status == 200 ? request.header("range") : std::string();
  // The representation: a compressed variant when the client takes it (never for a range).
  const std::string accept = request.header("accept-encoding");
  std::string blob = file.blob, coding;
  if (range_header.empty()) {
    if (!file.br.empty() && accepts(accept, "br")) {
      blob = file.br;
      coding = "br";
    } else if (!file.gzip.empty() && accepts(accept, "gzip")) {
      blob = file.gzip;
      coding = "gzip";
    }
  }
  const std::string tag = entity_tag(blob);
  const int64_t modified = file.mtime > 0 ? file.mtime : site.published_at;
  auto& h = r.headers;
  h.emplace_back("ETag", tag);
  h.emplace_back("Last-Modified", http::http_date(modified));
  h.emplace_back("Cache-Control", is_html(file.type) ? "no-cache" : "public, max-age=" + std::to_string(options_.max_age_seconds));
  if (!file.gzip.empty() || !file.br.empty()) h.emplace_back("Vary", "Accept-Encoding");
  h.emplace_back("Accept-Ranges", "bytes");
  h.emplace_back("X-Content-Type-Options", "nosniff");
  h.emplace_back("Referrer-Policy", "strict-origin-when-cross-origin");
  h.emplace_back("X-Frame-Options", "SAMEORIGIN");
  h.emplace_back("Content-Security-Policy", "frame-ancestors 'self'");
  if (options_.https) h.emplace_back("Strict-Transport-Security", "max-age=31536000");
  if (!coding.empty()) h.emplace_back("Content-Encoding", coding);

  if (status == 200) {
    // RFC 9110 13.1.2-13.1.3: If-None-Match wins over If-Modified-Since.
    const std::string inm = request.header("if-none-match");
    bool not_modified = false;
    if (!inm.empty()) {
      not_modified = none_match(inm, tag);
    } else if (const auto since = http::parse_http_date(request.header("if-modified-since"))) {
      not_modified = modified <= *since;
    }
    if (not_modified) {
      r.status = 304;
      r.content_type.clear();
      std::erase_if(h, [](const auto& p) { return p.first == "Content-Encoding"; });
      return r;
    }
  }
  auto bytes = content(blob);
  if (!range_header.empty()) {
    // RFC 9110 13.1.5: with If-Range, a range only of the representation the client has.
    const std::string if_range = request.header("if-range");
    bool honour = true;
    if (!if_range.empty()) {
      if (if_range.front() == '"')
        honour = if_range == tag;
      else
        honour = http::parse_http_date(if_range) == std::optional<int64_t>(modified);
    }
    bool unsatisfiable = false;
    const auto range = honour ? parse_range(range_header, static_cast<int64_t>(bytes->size()), unsatisfiable) : std::nullopt;
    if (unsatisfiable) {
      auto refused = plain(416, "range not satisfiable");
      refused.headers.emplace_back("Content-Range", "bytes */" + std::to_string(bytes->size()));
      return refused;
    }
    if (range) {
      r.status = 206;
      h.emplace_back("Content-Range", "bytes " + std::to_string(range->first) + "-" + std::to_string(range->last) + "/" +
                                          std::to_string(bytes->size()));
      r.body = bytes->substr(static_cast<std::size_t>(range->first), static_cast<std::size_t>(range->last - range->first + 1));
      return r;
    }
  }
  r.shared_body = std::move(bytes);
  return r;
}

}  // namespace coop::site
