// Greylisting (RFC 6647): the first delivery attempt from an unknown triplet (the client's
// network, the envelope sender, the recipient) is deferred with a temporary failure; a real
// mail server retries, and a retry after the delay passes. A triplet that passed passes at
// once for weeks after, so regular correspondents wait only the first time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

namespace coop::mail::spam {

struct GreylistSettings {
  std::chrono::seconds delay{300};          // RFC 6647 4.2: a few minutes
  std::chrono::seconds forget{36 * 3600};   // an attempt not retried within this is dropped
  int64_t pass_days = 35;                   // RFC 6647 4.4: a passed triplet is remembered
};

class Greylist {
 public:
  Greylist(const std::filesystem::path& file, GreylistSettings settings);
  ~Greylist();
  Greylist(const Greylist&) = delete;
  Greylist& operator=(const Greylist&) = delete;

  // 0 when the triplet may deliver now; otherwise the seconds still to wait. The first
  // attempt starts the clock. `network` is the client's /24 or /64 (net::network_of), the
  // addresses as sent (compared without case).
  int64_t check(std::string_view network, std::string_view sender, std::string_view recipient, int64_t now);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::mail::spam
