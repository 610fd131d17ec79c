// Who may connect: limits per address, per network and in all, enforced so that a flood of
// idle clients cannot lock members out. Shared by the TCP listeners (SMTP, IMAP) and the HTTP
// servers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/net/cidr.h"

namespace coop::net {

struct AdmissionLimits {
  std::size_t max_connections = 1024;
  std::size_t max_per_address = 32;   // 0: no limit
  std::size_t max_per_network = 256;  // per IPv4 /24 and IPv6 /64; 0: no limit
  // Connections that may be let go to make room (not logged in yet, or idle between HTTP
  // requests) hold at most this many slots, so the rest stays for members' sessions.
  // 0: three quarters of max_connections.
  std::size_t max_evictable = 0;
  // Networks ("127.0.0.1/32") exempt from the per-address and per-network caps: reverse
  // proxies, through which every member arrives from one address ([http] trusted_proxies).
  std::vector<std::string> uncapped;
};

// The network an address is counted in for max_per_network: "203.0.113.0/24",
// "2001:db8:1:2::/64"; an address that does not parse is its own network.
std::string network_of(std::string_view address);

// The admission counts of one listener. When a new client would go over a limit, the
// connection of that scope (address, network, all) that has been evictable the longest is
// let go instead, as Dovecot's login processes drop their oldest client that has not logged
// in; only when a scope holds nothing evictable is the new client refused. Thread-safe.
class Admission {
 public:
  using Id = std::uint64_t;
  static constexpr std::string_view kTooManyConnections = "too many connections";
  static constexpr std::string_view kTooManyFromAddress = "too many connections from your address";
  static constexpr std::string_view kTooManyFromNetwork = "too many connections from your network";

  struct Decision {
    Id id = 0;                 // 0 when refused
    std::string_view refusal;  // why, when refused
    std::vector<Id> evicted;   // admitted ones to close now to make room (already released)
  };

  explicit Admission(AdmissionLimits limits);

  // A new connection from address; it starts evictable.
  Decision admit(const std::string& address);
  // Evictable or not: false once a member has logged in on it (or, for HTTP, while a request
  // is being answered); true again puts it at the back of the line.
  void set_evictable(Id id, bool evictable);
  // The connection closed (or was evicted); unknown ids are ignored. When at least half of a
  // peak of 64 or more connections has closed, the freed memory goes back to the system
  // (malloc_trim, at most once a second in the process): glibc keeps a burst's memory
  // otherwise, and a flood would leave the worker at its peak size for good.
  void release(Id id);

  std::size_t total() const;
  std::size_t from(const std::string& address) const;
  std::size_t evictable() const;
  // Whether an address is in `uncapped`: a trusted reverse proxy.
  bool uncapped(const std::string& address) const;

 private:
  struct Entry {
    std::string address, network;
    bool evictable = true;
    std::list<Id>::iterator in_line;  // valid while evictable
  };
  void forget(Id id);  // with mutex_ held

  const AdmissionLimits limits_;
  std::vector<Cidr> uncapped_;
  mutable std::mutex mutex_;  // guards everything below
  Id next_id_ = 1;
  std::unordered_map<Id, Entry> entries_;
  std::list<Id> line_;  // evictable connections, the longest evictable first
  std::unordered_map<std::string, std::size_t> per_address_, per_network_;
  std::size_t peak_ = 0;  // most connections since memory was last given back
};

}  // namespace coop::net
