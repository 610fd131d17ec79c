// fdatasync of several files at once on long-lived threads (one thread per sync was a clone
// and an exit per channel per commit).
#include "workers/docs/sync_pool.h"

#include <unistd.h>

#include <cerrno>

namespace coop::docs {

SyncPool::SyncPool(std::size_t helpers) {
  for (std::size_t i = 0; i < helpers; ++i) threads_.emplace_back([this] { help(); });
}

SyncPool::~SyncPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  for (auto& thread : threads_) thread.join();
}

bool SyncPool::sync_next(std::unique_lock<std::mutex>& lock) {
  if (!fds_ || next_ >= fds_->size()) return false;
  const std::size_t index = next_++;
  const int fd = (*fds_)[index];
  lock.unlock();
  const int error = ::fdatasync(fd) == 0 ? 0 : errno;
  lock.lock();
  results_[index] = error;
  if (++finished_ == fds_->size()) done_.notify_one();
  return true;
}

void SyncPool::help() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [this] { return stopping_ || (fds_ && next_ < fds_->size()); });
    if (stopping_) return;
    sync_next(lock);
  }
}

std::vector<int> SyncPool::sync_all(const std::vector<int>& fds) {
  std::unique_lock lock(mutex_);
  fds_ = &fds;
  results_.assign(fds.size(), 0);
  next_ = finished_ = 0;
  if (fds.size() > 1) work_.notify_all();
  while (sync_next(lock)) {
  }
  done_.wait(lock, [&] { return finished_ == fds.size(); });
  fds_ = nullptr;
  return std::move(results_);
}

}  // namespace coop::docs
