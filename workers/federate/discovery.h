// Where another homeserver answers (Server-Server API "Resolving server names"): an IP literal
// or an explicit port as given; otherwise the name's /.well-known/matrix/server delegation,
// then SRV records (_matrix-fed._tcp, then the deprecated _matrix._tcp), then port 8448. The
// request's URL keeps the name its TLS certificate and Host header must carry; an SRV target
// or a default port is reached through curl's CONNECT_TO instead.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::federate {

struct Route {
  std::string base_url;    // scheme://host[:port]: the URL's host is the TLS name and Host header
  std::string connect_to;  // "" or curl's CONNECT_TO "host:port:target:target_port"
  bool operator==(const Route&) const = default;
};

struct SrvTarget {
  std::string host;
  int port = 0;
  int priority = 0;
  int weight = 0;
};

// An SRV answer as the resolver returned it (RFC 2782 records in a DNS message): the targets,
// best first (lowest priority, then highest weight); none for "." (no such service here) or a
// malformed message.
std::vector<SrvTarget> parse_srv_answer(const unsigned char* message, int length);

class Discovery {
 public:
  struct Lookups {
    // The m.server of https://<hostname>/.well-known/matrix/server, and how long to believe
    // it (ms); nullopt when there is no valid one.
    std::function<std::optional<std::string>(const std::string& hostname, int64_t& keep_ms)> well_known;
    // The targets of an SRV name, best first.
    std::function<std::vector<SrvTarget>(const std::string& name)> srv;
  };
  // overrides: server name -> base URL ([workers.federate.resolve]: tests, private
  // federations), used as they are.
  explicit Discovery(std::map<std::string, std::string> overrides, Lookups lookups = system_lookups());

  // Where server_name answers, from memory while that is fresh. Blocking (HTTP and DNS).
  Route route(const std::string& server_name);
  // What route() would say without looking anything up: an override or the cached answer.
  std::optional<Route> known(const std::string& server_name) const;

  // libcurl for .well-known (at most 5 redirects, 64 KiB, 5 s; Cache-Control max-age obeyed
  // up to 48 hours, 24 hours without one) and the system resolver for SRV.
  static Lookups system_lookups();

 private:
  Route resolve(const std::string& server_name, int64_t& keep_ms);
  Route delegated_or_srv(const std::string& host, int64_t& keep_ms);

  std::map<std::string, std::string> overrides_;
  Lookups lookups_;
  mutable std::mutex mutex_;  // guards cache_
  struct Cached {
    Route route;
    int64_t until = 0;
  };
  std::map<std::string, Cached> cache_;
};

}  // namespace coop::federate
