// Delivery status notifications (RFC 3464, in a multipart/report of RFC 6522): what the
// sender gets when a message is delayed or cannot be delivered.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail {

struct DsnRecipient {
  std::string address;
  bool failed = true;       // false: delayed, still trying
  std::string reply;        // the last SMTP reply or local reason
  std::string remote;       // the host that gave it, "" for none
};

struct DsnReport {
  std::string reporting_host;   // the shard's name (Reporting-MTA)
  std::string from;             // postmaster@<domain>
  std::string to;               // the original envelope sender
  int64_t arrival = 0;          // when the message was queued, seconds
  int64_t now = 0;
  int64_t retry_until = 0;      // for delays: when coop gives up, seconds
  std::vector<DsnRecipient> recipients;
};

// RFC 3463 status of a reply: its enhanced code when it has one ("5.1.1"), else one from
// the basic code ("5.0.0", "4.0.0").
std::string enhanced_status(std::string_view reply);

// The whole message: a plain-language part saying why, the machine-readable
// message/delivery-status, and the original's header section (text/rfc822-headers).
std::string build_dsn(const DsnReport& report, std::string_view original);

}  // namespace coop::mail
