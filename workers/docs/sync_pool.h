// fdatasync of several files side by side on a few long-lived threads: the filesystem's
// journal commits them together, where one after the other each would wait for its own.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace coop::docs {

class SyncPool {
 public:
  // helpers threads besides the caller's.
  explicit SyncPool(std::size_t helpers);
  ~SyncPool();
  SyncPool(const SyncPool&) = delete;
  SyncPool& operator=(const SyncPool&) = delete;

  // fdatasync on every descriptor, the caller's thread taking part; the errno of each (0 when
  // it succeeded), in order. One call at a time.
  std::vector<int> sync_all(const std::vector<int>& fds);

 private:
  void help();
  // Takes the next descriptor of the current call, syncs it, records the result; false when
  // none is left.
  bool sync_next(std::unique_lock<std::mutex>& lock);

  std::mutex mutex_;
  std::condition_variable work_, done_;
  const std::vector<int>* fds_ = nullptr;
  std::vector<int> results_;
  std::size_t next_ = 0, finished_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace coop::docs
