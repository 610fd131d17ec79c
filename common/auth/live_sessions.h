// The long-lived sessions of a worker by member, so that a suspension, a removal, a new
// password or a revoked app password ends them at once, not at their next login.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace coop::auth {

class LiveSessions {
 public:
  // Told why; called from the thread that ends the sessions, so it must only post its work
  // to the session's own executor.
  using End = std::function<void(const std::string& reason)>;

  // Registers a session of handle; the id is for remove().
  uint64_t add(const std::string& handle, End end) {
    std::lock_guard lock(mutex_);
    const uint64_t id = next_id_++;
    sessions_[handle].emplace(id, std::move(end));
    return id;
  }

  void remove(const std::string& handle, uint64_t id) {
    std::lock_guard lock(mutex_);
    const auto it = sessions_.find(handle);
    if (it == sessions_.end()) return;
    it->second.erase(id);
    if (it->second.empty()) sessions_.erase(it);
  }

  // Ends every session of handle; returns how many there were.
  std::size_t end_all(const std::string& handle, const std::string& reason) {
    std::vector<End> ends;
    {
      std::lock_guard lock(mutex_);
      const auto it = sessions_.find(handle);
      if (it == sessions_.end()) return 0;
      for (auto& [id, end] : it->second) ends.push_back(end);
    }
    for (const auto& end : ends) end(reason);  // outside the lock: an End may call remove()
    return ends.size();
  }

 private:
  std::mutex mutex_;  // guards sessions_ and next_id_
  std::map<std::string, std::map<uint64_t, End>> sessions_;
  uint64_t next_id_ = 1;
};

}  // namespace coop::auth
