// See discovery.h.
#include "workers/federate/discovery.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <resolv.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "common/clock.h"
#include "workers/matrix/ids.h"

namespace coop::federate {

namespace {

constexpr int kDefaultPort = 8448;
constexpr int64_t kHour = 3600LL * 1000;
constexpr int64_t kWellKnownDefaultMs = 24 * kHour;
constexpr int64_t kWellKnownMaxMs = 48 * kHour;
// No .well-known (or an error fetching it): asked again after an hour, as the spec suggests.
constexpr int64_t kNoWellKnownMs = kHour;
constexpr std::size_t kMaxWellKnownBytes = 64 * 1024;
constexpr std::size_t kMaxCached = 10000;
// However little a .well-known asks to be kept (no-store, max-age=0), it is not fetched
// again for every request: five minutes at least.
constexpr int64_t kMinKeepMs = 5 * 60 * 1000;

struct HostPort {
  std::string host;  // an IPv6 literal keeps its brackets
  int port = 0;      // 0: none given
};

HostPort split(const std::string& name) {
  HostPort out{name, 0};
  const auto colon = name[0] == '[' ? name.find("]:") : name.find(':');
  if (colon == std::string::npos) return out;
  const auto port_at = name[0] == '[' ? colon + 2 : colon + 1;
  out.host = name.substr(0, name[0] == '[' ? colon + 1 : colon);
  out.port = std::stoi(name.substr(port_at));  // valid_server_name checked the digits
  return out;
}

bool ip_literal(const std::string& host) {
  if (!host.empty() && host[0] == '[') return true;
  in_addr v4{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1;
}

// https://host, reached at target:port, so that the URL (TLS name, Host header) stays host.
Route through(const std::string& host, const std::string& target, int port) {
  return {"https://" + host, host + ":443:" + target + ":" + std::to_string(port)};
}

// ---- the system's lookups ----

struct Sink {
  std::string body;
  bool overflowed = false;
};

size_t collect(char* data, size_t size, size_t count, void* out) {
  auto* sink = static_cast<Sink*>(out);
  if (sink->body.size() + size * count > kMaxWellKnownBytes) {
    sink->overflowed = true;
    return 0;
  }
  sink->body.append(data, size * count);
  return size * count;
}

int64_t max_age_ms(const std::string& cache_control) {
  std::string lower = cache_control;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.find("no-store") != std::string::npos || lower.find("no-cache") != std::string::npos) return 0;
  const auto at = lower.find("max-age=");
  if (at == std::string::npos) return kWellKnownDefaultMs;
  int64_t seconds = 0;
  for (auto i = at + 8; i < lower.size() && std::isdigit(static_cast<unsigned char>(lower[i])) && seconds < kWellKnownMaxMs; ++i)
    seconds = seconds * 10 + (lower[i] - '0');
  return std::min(seconds * 1000, kWellKnownMaxMs);
}

size_t header_line(char* data, size_t size, size_t count, void* out) {
  std::string line(data, size * count);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name == "cache-control") *static_cast<std::string*>(out) = line.substr(colon + 1);
  }
  return size * count;
}

// "GET /.well-known/matrix/server": {"m.server": "<delegated name>[:<port>]"}.
std::optional<std::string> fetch_well_known(const std::string& hostname, int64_t& keep_ms) {
  keep_ms = kNoWellKnownMs;
  CURL* curl = curl_easy_init();
  if (!curl) return std::nullopt;
  Sink sink;
  std::string cache_control;
  const auto url = "https://" + hostname + "/.well-known/matrix/server";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_line);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &cache_control);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (status != 200 || sink.overflowed) return std::nullopt;
  const auto answer = nlohmann::json::parse(sink.body, nullptr, false);
  if (!answer.is_object() || !answer.contains("m.server") || !answer["m.server"].is_string()) return std::nullopt;
  const auto delegated = answer["m.server"].get<std::string>();
  if (!matrix::valid_server_name(delegated)) return std::nullopt;
  keep_ms = max_age_ms(cache_control);
  return delegated;
}

std::vector<SrvTarget> lookup_srv(const std::string& name) {
  struct __res_state state {};
  if (res_ninit(&state) != 0) return {};
  unsigned char answer[4096];
  const int length = res_nquery(&state, name.c_str(), ns_c_in, ns_t_srv, answer, sizeof answer);
  res_nclose(&state);
  if (length <= 0) return {};
  return parse_srv_answer(answer, std::min<int>(length, sizeof answer));
}

}  // namespace

std::vector<SrvTarget> parse_srv_answer(const unsigned char* message, int length) {
  ns_msg parsed;
  if (ns_initparse(message, length, &parsed) != 0) return {};
  std::vector<SrvTarget> targets;
  for (int i = 0; i < ns_msg_count(parsed, ns_s_an); ++i) {
    ns_rr record;
    if (ns_parserr(&parsed, ns_s_an, i, &record) != 0) return {};
    if (ns_rr_type(record) != ns_t_srv || ns_rr_rdlen(record) < 7) continue;
    const unsigned char* data = ns_rr_rdata(record);
    SrvTarget target;
    target.priority = ns_get16(data);
    target.weight = ns_get16(data + 2);
    target.port = ns_get16(data + 4);
    char host[NS_MAXDNAME];
    if (dn_expand(ns_msg_base(parsed), ns_msg_end(parsed), data + 6, host, sizeof host) < 0) continue;
    target.host = host;
    // RFC 2782: a target of "." says the service is decidedly not available here.
    if (target.host.empty() || target.host == ".") return {};
    if (target.port == 0) continue;
    targets.push_back(std::move(target));
  }
  std::stable_sort(targets.begin(), targets.end(), [](const SrvTarget& a, const SrvTarget& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.weight > b.weight;
  });
  return targets;
}

Discovery::Lookups Discovery::system_lookups() { return {fetch_well_known, lookup_srv}; }

Discovery::Discovery(std::map<std::string, std::string> overrides, Lookups lookups)
    : overrides_(std::move(overrides)), lookups_(std::move(lookups)) {
  for (auto& [name, url] : overrides_)
    while (!url.empty() && url.back() == '/') url.pop_back();
}

std::optional<Route> Discovery::known(const std::string& server_name) const {
  if (const auto it = overrides_.find(server_name); it != overrides_.end()) return Route{it->second, ""};
  std::lock_guard lock(mutex_);
  const auto it = cache_.find(server_name);
  if (it == cache_.end()) return std::nullopt;
  return it->second.route;
}

Route Discovery::route(const std::string& server_name) {
  if (const auto it = overrides_.find(server_name); it != overrides_.end()) return {it->second, ""};
  {
    std::lock_guard lock(mutex_);
    const auto it = cache_.find(server_name);
    if (it != cache_.end() && it->second.until > unix_millis()) return it->second.route;
  }
  int64_t keep_ms = 0;
  const auto found = resolve(server_name, keep_ms);  // without the lock: lookups take time
  keep_ms = std::max(keep_ms, kMinKeepMs);
  {
    std::lock_guard lock(mutex_);
    if (cache_.size() >= kMaxCached && !cache_.count(server_name)) cache_.erase(cache_.begin());
    cache_[server_name] = {found, unix_millis() + keep_ms};
  }
  return found;
}

Route Discovery::resolve(const std::string& server_name, int64_t& keep_ms) {
  keep_ms = kWellKnownMaxMs;
  if (!matrix::valid_server_name(server_name)) return {"https://" + server_name, ""};  // fails to connect, harmlessly
  const auto [host, port] = split(server_name);
  // Steps 1 and 2: an IP literal, or a name with an explicit port, as it is.
  if (ip_literal(host)) return {"https://" + host + ":" + std::to_string(port ? port : kDefaultPort), ""};
  if (port) return {"https://" + server_name, ""};
  // Step 3: the name delegates with /.well-known/matrix/server.
  if (lookups_.well_known) {
    int64_t well_known_ms = kNoWellKnownMs;
    if (const auto delegated = lookups_.well_known(host, well_known_ms)) {
      keep_ms = well_known_ms;
      const auto [to, to_port] = split(*delegated);
      if (ip_literal(to)) return {"https://" + to + ":" + std::to_string(to_port ? to_port : kDefaultPort), ""};
      if (to_port) return {"https://" + *delegated, ""};
      return delegated_or_srv(to, keep_ms);
    }
    keep_ms = well_known_ms;
  }
  // Steps 4 to 6: SRV records of the name itself, else port 8448.
  return delegated_or_srv(host, keep_ms);
}

Route Discovery::delegated_or_srv(const std::string& host, int64_t& keep_ms) {
  for (const char* prefix : {"_matrix-fed._tcp.", "_matrix._tcp."}) {
    const auto targets = lookups_.srv ? lookups_.srv(prefix + host) : std::vector<SrvTarget>{};
    if (!targets.empty()) {
      keep_ms = std::min(keep_ms, kHour);  // SRV answers change: looked at again within the hour
      auto target = targets.front().host;
      if (!target.empty() && target.back() == '.') target.pop_back();
      return through(host, target, targets.front().port);
    }
  }
  // The name itself on 8448, with the Host header (and TLS name) the bare name.
  return through(host, host, kDefaultPort);
}

}  // namespace coop::federate
