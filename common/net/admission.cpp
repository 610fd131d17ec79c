// Admission counts with eviction of the longest-evictable connection in the full scope.
#include "common/net/admission.h"

#include <boost/asio/ip/address.hpp>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace coop::net {

std::string network_of(std::string_view address) {
  boost::system::error_code ec;
  const auto parsed = boost::asio::ip::make_address(std::string(address), ec);
  if (ec) return std::string(address);
  if (parsed.is_v4()) {
    auto bytes = parsed.to_v4().to_bytes();
    bytes[3] = 0;
    return boost::asio::ip::address_v4(bytes).to_string() + "/24";
  }
  auto bytes = parsed.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

Admission::Admission(AdmissionLimits limits) : limits_(std::move(limits)) {
  for (const auto& text : limits_.uncapped)
    if (auto cidr = Cidr::parse(text)) uncapped_.push_back(*cidr);
}

bool Admission::uncapped(const std::string& address) const {
  return std::any_of(uncapped_.begin(), uncapped_.end(), [&](const Cidr& c) { return c.contains(address); });
}

Admission::Decision Admission::admit(const std::string& address) {
  const std::string network = network_of(address);
  const std::size_t max_evictable = limits_.max_evictable ? limits_.max_evictable : std::max<std::size_t>(1, limits_.max_connections * 3 / 4);
  std::lock_guard lock(mutex_);
  Decision decision;
  // Counts as they will be once the chosen connections are gone.
  std::size_t from_address = per_address_[address], from_network = per_network_[network];
  std::size_t total = entries_.size(), evictable = line_.size();
  auto chosen = [&](Id id) { return std::find(decision.evicted.begin(), decision.evicted.end(), id) != decision.evicted.end(); };
  // The longest-evictable connection that matches, not chosen yet; 0 when there is none.
  auto pick = [&](auto matches) -> Id {
    for (const Id id : line_)
      if (!chosen(id) && matches(entries_.at(id))) return id;
    return 0;
  };
  auto make_room = [&](auto matches, auto over, std::string_view refusal) {
    while (over()) {
      const Id id = pick(matches);
      if (id == 0) {
        decision.refusal = refusal;
        return false;
      }
      const Entry& e = entries_.at(id);
      decision.evicted.push_back(id);
      from_address -= e.address == address;
      from_network -= e.network == network;
      --total;
      --evictable;
    }
    return true;
  };
  const bool capped_here = !uncapped(address);
  const bool room =
      make_room([&](const Entry& e) { return e.address == address; },
                [&] { return capped_here && limits_.max_per_address && from_address >= limits_.max_per_address; },
                kTooManyFromAddress) &&
      make_room([&](const Entry& e) { return e.network == network; },
                [&] { return capped_here && limits_.max_per_network && from_network >= limits_.max_per_network; },
                kTooManyFromNetwork) &&
      make_room([](const Entry&) { return true; }, [&] { return evictable >= max_evictable; }, kTooManyConnections) &&
      make_room([](const Entry&) { return true; }, [&] { return total >= limits_.max_connections; }, kTooManyConnections);
  if (!room) {
    decision.evicted.clear();
    if (per_address_[address] == 0) per_address_.erase(address);
    if (per_network_[network] == 0) per_network_.erase(network);
    return decision;
  }
  for (const Id id : decision.evicted) forget(id);
  decision.id = next_id_++;
  line_.push_back(decision.id);
  entries_.emplace(decision.id, Entry{address, network, true, std::prev(line_.end())});
  ++per_address_[address];
  ++per_network_[network];
  peak_ = std::max(peak_, entries_.size());
  return decision;
}

void Admission::set_evictable(Id id, bool evictable) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (e.evictable) line_.erase(e.in_line);
  e.evictable = evictable;
  if (evictable) e.in_line = line_.insert(line_.end(), id);
}

void Admission::release(Id id) {
  static constexpr std::size_t kPeakWorthTrimming = 64;
  static std::atomic<int64_t> last_trim_ms{0};
  bool trim = false;
  {
    std::lock_guard lock(mutex_);
    forget(id);
    if (peak_ >= kPeakWorthTrimming && entries_.size() <= peak_ / 2) {
      const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch()).count();
      int64_t last = last_trim_ms.load();
      if (now - last >= 1000 && last_trim_ms.compare_exchange_strong(last, now)) {
        trim = true;
        peak_ = entries_.size();
      }
    }
  }
  if (trim) ::malloc_trim(0);
}

void Admission::forget(Id id) {
  const auto it = entries_.find(id);
  if (it == entries_.end()) return;
  const Entry& e = it->second;
  if (e.evictable) line_.erase(e.in_line);
  if (--per_address_[e.address] == 0) per_address_.erase(e.address);
  if (--per_network_[e.network] == 0) per_network_.erase(e.network);
  entries_.erase(it);
}

std::size_t Admission::total() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::size_t Admission::from(const std::string& address) const {
  std::lock_guard lock(mutex_);
  const auto it = per_address_.find(address);
  return it == per_address_.end() ? 0 : it->second;
}

std::size_t Admission::evictable() const {
  std::lock_guard lock(mutex_);
  return line_.size();
}

}  // namespace coop::net
