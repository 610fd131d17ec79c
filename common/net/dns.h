// An asynchronous DNS resolver for mail (MX, A/AAAA, TXT, TLSA) on libunbound, driven by the
// worker's io_context: a query never blocks a network thread. Its servers come from
// coop.toml ([dns] servers), so tests point it at a DNS server of their own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace coop::net {

inline constexpr int kDnsA = 1, kDnsMx = 15, kDnsTxt = 16, kDnsAaaa = 28, kDnsTlsa = 52;

struct DnsAnswer {
  // temporary: SERVFAIL, a timeout or no server reached: ask again later, never conclude.
  enum class Status { ok, nxdomain, nodata, temporary };
  Status status = Status::temporary;
  bool secure = false;              // DNSSEC-validated (only with a trust anchor)
  std::vector<std::string> rdata;   // raw RDATA of each record of the asked type
  std::string error;                // why, for temporary
};

struct MxRecord {
  uint16_t preference = 0;
  std::string exchange;  // lowercase, no final dot; "" for the null MX (RFC 7505)
};

// RDATA decoders; a malformed record is skipped.
std::vector<MxRecord> parse_mx(const DnsAnswer& answer);       // by preference
std::vector<std::string> parse_txt(const DnsAnswer& answer);   // each record's strings joined
std::vector<std::string> parse_addresses(const DnsAnswer& answer);  // A and AAAA as text
std::vector<std::string> parse_names(const DnsAnswer& answer);      // PTR, CNAME: lowercase

struct DnsSettings {
  // "127.0.0.1", "127.0.0.1@5353", "::1"; empty: the system's /etc/resolv.conf.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{10000};
  // Caps how long answers are cached; 0 keeps none (tests whose records change). -1: as the
  // records say.
  int max_ttl_seconds = -1;
};

class DnsResolver {
 public:
  // Throws coop::Error(errc::kConfigInvalid) for a server libunbound does not accept.
  DnsResolver(boost::asio::io_context& io, const DnsSettings& settings);
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // done runs once, on the io_context, after the answer, a failure or the timeout.
  void query(const std::string& name, int type, std::function<void(DnsAnswer)> done);
  boost::asio::io_context& io() const;
  // Forgets every cached answer (after records were fixed); questions in flight get a
  // temporary error.
  void flush();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace coop::net
