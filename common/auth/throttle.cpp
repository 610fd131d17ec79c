// Sliding-window failure counting with exponential lockouts, bounded in memory.
#include "common/auth/throttle.h"

#include <algorithm>

#include "common/error.h"

namespace coop::auth {

namespace {

// Longer member names or addresses are cut here: real ones are shorter, and a hostile client
// must not make us store megabytes per key. Cut keys share a bucket, which only makes it stricter.
constexpr std::size_t kMaxKeyBytes = 256;

std::string_view bounded(std::string_view key) { return key.substr(0, kMaxKeyBytes); }

}  // namespace

Throttle::Throttle(ThrottleLimits limits, Clock clock)
    : limits_(limits),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {
  if (limits_.window.count() <= 0) {
    throw Error(errc::kConfigInvalid, "the login throttle window must be positive", 500);
  }
  members_.limit = limits_.member_failures;
  addresses_.limit = limits_.address_failures;
}

std::chrono::milliseconds Throttle::retry_after(std::string_view member,
                                                std::string_view address) const {
  std::lock_guard lock(mutex_);
  const TimePoint now = clock_();
  const Duration wait = std::max(wait_for(members_, member, now), wait_for(addresses_, address, now));
  // Rounded up, so that retrying after exactly this long is allowed.
  return std::chrono::ceil<std::chrono::milliseconds>(wait);
}

void Throttle::record_failure(std::string_view member, std::string_view address) {
  std::lock_guard lock(mutex_);
  const TimePoint now = clock_();
  record_failure(members_, member, now);
  record_failure(addresses_, address, now);
}

void Throttle::record_success(std::string_view member, std::string_view /*address*/) {
  std::lock_guard lock(mutex_);
  if (member.empty()) return;
  const auto it = members_.entries.find(std::string(bounded(member)));
  if (it != members_.entries.end()) erase(members_, it);
}

std::size_t Throttle::tracked_keys() const {
  std::lock_guard lock(mutex_);
  return members_.entries.size() + addresses_.entries.size();
}

void Throttle::record_failure(Table& table, std::string_view key, TimePoint now) {
  if (key.empty() || table.limit <= 0) return;
  prune(table, now);
  const std::string name(bounded(key));
  auto it = table.entries.find(name);
  if (it == table.entries.end()) {
    // Drop the least recently failed key rather than grow without bound under a flood.
    if (table.entries.size() >= std::max<std::size_t>(limits_.max_keys, 1)) {
      erase(table, table.entries.find(*table.recency.back()));
    }
    it = table.entries.emplace(name, Entry{}).first;
    table.recency.push_front(&it->first);
    it->second.recency = table.recency.begin();
  } else {
    if (expired(it->second, now)) it->second = Entry{{}, 0, {}, it->second.recency};
    table.recency.splice(table.recency.begin(), table.recency, it->second.recency);
  }

  Entry& entry = it->second;
  const auto in_window = [&](TimePoint t) { return now - t < limits_.window; };
  entry.failures.erase(entry.failures.begin(),
                       std::find_if(entry.failures.begin(), entry.failures.end(), in_window));
  entry.failures.push_back(now);
  if (entry.failures.size() > static_cast<std::size_t>(table.limit)) {
    entry.failures.erase(entry.failures.begin());
  }
  if (entry.failures.size() == static_cast<std::size_t>(table.limit)) {
    ++entry.lockouts;
    entry.locked_until = std::max(entry.locked_until, now + lockout_for(table, entry, now));
  }
}

Throttle::Duration Throttle::lockout_for(const Table& table, const Entry& entry,
                                         TimePoint now) const {
  const Duration cap = limits_.max_lockout;
  const Duration until_window_frees = entry.failures.front() + limits_.window - now;
  Duration backoff = Duration(limits_.window) / table.limit;
  for (int n = 1; n < entry.lockouts && backoff < cap; ++n) backoff *= 2;
  return std::clamp(std::max(until_window_frees, backoff), Duration::zero(),
                    std::max(cap, Duration::zero()));
}

Throttle::Duration Throttle::wait_for(const Table& table, std::string_view key,
                                      TimePoint now) const {
  if (key.empty()) return Duration::zero();
  const auto it = table.entries.find(std::string(bounded(key)));
  if (it == table.entries.end() || it->second.locked_until <= now) return Duration::zero();
  return it->second.locked_until - now;
}

bool Throttle::expired(const Entry& entry, TimePoint now) const {
  const TimePoint last_failure = entry.failures.empty() ? TimePoint{} : entry.failures.back();
  return now >= entry.locked_until && now - last_failure >= limits_.window;
}

// Removes expired keys from the least recently failed end; amortised O(1) per failure. With
// max_lockout > window a long lockout can stop the scan early; max_keys still bounds the table.
void Throttle::prune(Table& table, TimePoint now) {
  while (!table.recency.empty()) {
    const auto it = table.entries.find(*table.recency.back());
    if (!expired(it->second, now)) break;
    erase(table, it);
  }
}

void Throttle::erase(Table& table, std::unordered_map<std::string, Entry>::iterator it) {
  table.recency.erase(it->second.recency);
  table.entries.erase(it);
}

}  // namespace coop::auth
