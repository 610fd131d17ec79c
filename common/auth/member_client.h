// How every worker authenticates and hears of membership changes: through coop-member's
// control socket (only coop-member reads and writes the registry).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace coop {
class Home;
}

namespace coop::auth {

struct VerifiedMember {
  std::string handle;
  std::string name;
  std::string role;
  std::vector<std::string> groups;  // including the groups those groups belong to
  std::vector<std::string> emails;
  std::string credential;  // "password" or "app:<label>"
};

// A refused login that may be retried later: carries when (the registry's retry_after_ms).
class ThrottledError : public Error {
 public:
  ThrottledError(const std::string& message, int64_t retry_after_ms)
      : Error(errc::kThrottled, message, 429), retry_after_ms_(retry_after_ms) {}
  int64_t retry_after_ms() const { return retry_after_ms_; }

 private:
  int64_t retry_after_ms_;
};

// Verifies a login; throws coop::Error with the registry's code when refused:
// bad_credentials (401), member_suspended (403), out_of_scope (403), throttled (429, the
// message says when to retry), not_running (503) when coop-member is down.
VerifiedMember verify_credentials(const Home& home, const std::string& user, const std::string& password,
                                  const std::string& protocol, const std::string& source);

// The same for an app password given alone as a Bearer token (RFC 6750).
VerifiedMember verify_token(const Home& home, const std::string& token, const std::string& protocol, const std::string& source);

struct MemberEvent {
  int64_t seq = 0;
  std::string kind;    // member.suspended, member.removed, member.password_changed, group.changed...
  std::string handle;  // empty for group events
  std::string detail;  // JSON
};

// Events that end a member's sessions wherever they are.
bool ends_sessions(const MemberEvent& event);

// Long-polls GET /v1/events on a thread of its own and calls on_event for each change, in
// order, from that thread. Survives coop-member restarts (retries with backoff). It starts
// from where the feed stands when coop-member first answers (so old events are not replayed),
// asked on its own thread every 50 ms until then, so a worker's start never waits for
// coop-member; on_connected runs once, on that thread, when the position is known (the
// moment to read the registry's state the events will then keep current).
class MemberEventFollower {
 public:
  MemberEventFollower(const Home& home, std::function<void(const MemberEvent&)> on_event,
                      std::function<void()> on_connected = {});
  // From a known position instead (`coop member events --follow --since N`).
  MemberEventFollower(const Home& home, int64_t since, std::function<void(const MemberEvent&)> on_event,
                      std::function<void()> on_connected = {});
  ~MemberEventFollower();  // stops and joins within about a poll timeout's fraction
  MemberEventFollower(const MemberEventFollower&) = delete;
  MemberEventFollower& operator=(const MemberEventFollower&) = delete;

  int64_t position() const;  // seq of the last event delivered

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::auth
