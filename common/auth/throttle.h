// Throttles failed logins per member and per source address, so online guessing stays slow.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coop::auth {

struct ThrottleLimits {
  int member_failures = 10;   // failures per window before a member is locked; <= 0 disables
  int address_failures = 30;  // the same per source address (shared NATs get more room)
  std::chrono::seconds window{900};
  std::chrono::seconds max_lockout{900};  // no single lockout lasts longer than this
  std::size_t max_keys = 100000;          // tracked members, and separately tracked addresses
};

// Policy, for each key (a member, an address) on its own:
// - failures are counted in a sliding window; once a key has `limit` failures in it, it is locked
//   until the oldest of them leaves the window, so no window holds more than `limit` of them
//   (unless max_lockout is set shorter than the window);
// - the n-th lockout of a key lasts at least (window / limit) * 2^(n-1), so a guesser who comes
//   back as soon as each lockout ends waits longer each time;
// - every lockout is capped at max_lockout; a key forgets its lockouts once no failure is left in
//   its window and no lockout runs, and a member's also on a successful login.
// Callers ask retry_after() before checking a password and record the outcome after.
// Members should be passed normalised (lowercase) and IPv6 addresses as their /64, or a guesser
// simply varies them.
class Throttle {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // An empty clock means std::chrono::steady_clock::now.
  explicit Throttle(ThrottleLimits limits = {}, Clock clock = {});

  // Zero when an attempt is allowed now, else how long until it is (the longer of the two keys).
  // Empty member or address strings are not tracked.
  std::chrono::milliseconds retry_after(std::string_view member, std::string_view address) const;

  void record_failure(std::string_view member, std::string_view address);

  // Clears the member's failures; the address keeps its own, a guesser may own one account.
  void record_success(std::string_view member, std::string_view address);

  // Members plus addresses currently remembered (for status output and tests).
  std::size_t tracked_keys() const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  struct Entry {
    std::vector<TimePoint> failures;  // oldest first, at most `limit` of them
    int lockouts = 0;
    TimePoint locked_until{};
    std::list<const std::string*>::iterator recency;  // position in Table::recency
  };

  // One kind of key. recency lists keys most recently failed first, which is also (with
  // max_lockout <= window) the order in which they expire, so pruning works from the back.
  struct Table {
    int limit = 0;
    std::unordered_map<std::string, Entry> entries;
    std::list<const std::string*> recency;
  };

  void record_failure(Table& table, std::string_view key, TimePoint now);
  Duration wait_for(const Table& table, std::string_view key, TimePoint now) const;
  void prune(Table& table, TimePoint now);
  void erase(Table& table, std::unordered_map<std::string, Entry>::iterator it);
  bool expired(const Entry& entry, TimePoint now) const;
  Duration lockout_for(const Table& table, const Entry& entry, TimePoint now) const;

  const ThrottleLimits limits_;
  const Clock clock_;
  mutable std::mutex mutex_;
  Table members_;
  Table addresses_;
};

}  // namespace coop::auth
