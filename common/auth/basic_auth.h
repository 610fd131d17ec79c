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
#include <string_view>
#include <utility>

#include "common/auth/member_client.h"

namespace coop {
class Home;
namespace http {
struct Request;
}
}  // namespace coop

namespace coop::auth {

// RFC 7617 2: an Authorization value "Basic <base64 of user:password>" as (user, password);
// nullopt for another scheme, bad base64 (RFC 4648 4, padding optional), no colon, or a NUL
// or other control character in either part. The one decoder DAV, tiles and docs share.
std::optional<std::pair<std::string, std::string>> parse_basic(std::string_view authorization);

// RFC 6750 2.1: an Authorization value "Bearer <b64token>" as the token; nullopt otherwise.
std::optional<std::string> parse_bearer(std::string_view authorization);

// Checks Basic credentials, or a Bearer token (an app password given alone).
class BasicAuthCache {
 public:
  // protocol: the app-password scope ("tiles", "docs"...).
  BasicAuthCache(const Home& home, std::string protocol);

  // The member's handle; nullopt for missing or wrong credentials. Throws coop::Error for a
  // suspended member (403), throttling (429) or a registry that is down (503).
  std::optional<std::string> check(const http::Request& request);
  // The same, with what the registry says of the member (groups for DAV's shared collections);
  // protocol, when given, is the scope asked for instead of the cache's own (DAV asks for
  // calendars, contacts or files by path).
  std::optional<VerifiedMember> check_member(const http::Request& request, const std::string& protocol = {});
  // Called when the registry says the member's sessions end, or that what it says of the
  // member (groups, addresses) changed.
  void forget(const std::string& handle);
  // Everyone: a group itself changed (nested groups reach many members).
  void forget_all();

 private:
  using Clock = std::chrono::steady_clock;
  struct Cached {
    VerifiedMember member;
    Clock::time_point until;
  };
  const Home& home_;
  std::string protocol_;
  std::mutex mutex_;
  std::map<std::string, Cached> cache_;
};

}  // namespace coop::auth
