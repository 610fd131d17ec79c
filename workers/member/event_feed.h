// GET /v1/events?since=N: the registry's change feed, long-polled by every worker so a
// suspension or removal reaches them within a second.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>

#include "common/control/router.h"

namespace boost::asio {
class io_context;
}

namespace coop::member {

class MemberStore;

class EventFeed {
 public:
  EventFeed(boost::asio::io_context& io, MemberStore& store, control::Runner runner);
  ~EventFeed();

  // Answers at once when events after `since` exist, else when one is committed or after
  // timeout, with {"events":[...],"next":N}.
  void wait(int64_t since, int limit, std::chrono::milliseconds timeout, control::Reply reply);
  // New events were committed (any thread).
  void notify();
  // Answers every waiter now (shutdown).
  void close();

 private:
  struct Waiter;
  void answer(const std::shared_ptr<Waiter>& waiter, bool even_if_empty);

  boost::asio::io_context& io_;
  MemberStore& store_;
  control::Runner runner_;
  std::mutex mutex_;
  std::list<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace coop::member
