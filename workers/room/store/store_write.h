// The one way room.db and e2ee.db commit a write: under the store's mutex, in a transaction,
// collecting what changed; after the commit and outside the lock, the change goes to whoever
// wakes /sync. Included by the store sources only.
#pragma once

#include <functional>
#include <mutex>
#include <utility>

#include "common/sqlite.h"
#include "workers/room/store/store_change.h"

namespace coop::room {

template <typename Fn>
auto write_and_tell(std::mutex& mutex, sqlite::Database& db, StoreChange& pending,
                    const std::function<void(const StoreChange&)>& on_change, Fn&& fn) {
  std::unique_lock lock(mutex);
  pending = StoreChange{};
  sqlite::Transaction tx(db);
  auto result = fn();
  tx.commit();
  auto callback = on_change;
  const auto changed = std::move(pending);
  pending = StoreChange{};
  lock.unlock();
  if (callback && !changed.empty()) callback(changed);
  return result;
}

}  // namespace coop::room
