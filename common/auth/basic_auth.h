// HTTP Basic credentials (RFC 7617) checked against the member registry, for workers whose
// members log in with every request (the map's markers API, documents, blobs): a verified
// pair is remembered for a minute by its digest and forgotten at once when the member is
// suspended or changes a password.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace coop {
class Home;
namespace http {
struct Request;
}
}  // namespace coop

namespace coop::auth {

class BasicAuthCache {
 public:
  // protocol: the app-password scope ("tiles", "docs"...).
  BasicAuthCache(const Home& home, std::string protocol);

  // The member's handle; nullopt for missing or wrong credentials. Throws coop::Error for a
  // suspended member (403), throttling (429) or a registry that is down (503).
  std::optional<std::string> check(const http::Request& request);
  // Called when the registry says the member's sessions end.
  void forget(const std::string& handle);

 private:
  using Clock = std::chrono::steady_clock;
  struct Cached {
    std::string handle;
    Clock::time_point until;
  };
  const Home& home_;
  std::string protocol_;
  std::mutex mutex_;
  std::map<std::string, Cached> cache_;
};

}  // namespace coop::auth
