// Long-poll waiters of the change feed.
#include "workers/member/event_feed.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include <atomic>

#include "common/http/date.h"
#include "workers/member/store/member_store.h"

namespace coop::member {

struct EventFeed::Waiter {
  int64_t since;
  int limit;
  control::Reply reply;
  // The timer is touched only on its strand: pool threads post their cancels there.
  boost::asio::strand<boost::asio::io_context::executor_type> strand;
  boost::asio::steady_timer timer;
  std::atomic<bool> answered{false};
  Waiter(boost::asio::io_context& io, int64_t since, int limit, control::Reply reply)
      : since(since), limit(limit), reply(std::move(reply)), strand(io.get_executor()), timer(strand) {}
  void cancel_timer(const std::shared_ptr<Waiter>& self) {
    boost::asio::post(strand, [self] { self->timer.cancel(); });
  }
};

namespace {
nlohmann::json events_json(const std::vector<Event>& events, int64_t since) {
  auto list = nlohmann::json::array();
  int64_t next = since;
  for (const auto& e : events) {
    list.push_back({{"seq", e.seq}, {"at", http::iso8601(e.at)}, {"kind", e.kind}, {"handle", e.handle},
                    {"detail", nlohmann::json::parse(e.detail, nullptr, false)}});
    next = e.seq;
  }
  return {{"events", list}, {"next", next}};
}
}  // namespace

EventFeed::EventFeed(boost::asio::io_context& io, MemberStore& store, control::Runner runner)
    : io_(io), store_(store), runner_(std::move(runner)) {}

EventFeed::~EventFeed() { close(); }

void EventFeed::answer(const std::shared_ptr<Waiter>& waiter, bool even_if_empty) {
  auto events = store_.events_since(waiter->since, waiter->limit);
  if (events.empty() && !even_if_empty) return;
  if (waiter->answered.exchange(true)) return;
  {
    std::lock_guard lock(mutex_);
    waiters_.remove(waiter);
  }
  waiter->cancel_timer(waiter);
  waiter->reply(control::Response::json(events_json(events, waiter->since)));
}

void EventFeed::wait(int64_t since, int limit, std::chrono::milliseconds timeout, control::Reply reply) {
  auto waiter = std::make_shared<Waiter>(io_, since, limit, std::move(reply));
  {
    std::lock_guard lock(mutex_);
    waiters_.push_back(waiter);
  }
  boost::asio::post(waiter->strand, [this, waiter, timeout] {
    waiter->timer.expires_after(timeout);
    waiter->timer.async_wait([this, waiter](const boost::system::error_code& ec) {
      if (ec || waiter->answered) return;
      runner_([this, waiter] { answer(waiter, true); });
    });
  });
  // Registered before the first look, so an event committed in between is not missed.
  runner_([this, waiter, timeout] { answer(waiter, timeout.count() == 0); });
}

void EventFeed::notify() {
  std::list<std::shared_ptr<Waiter>> waiting;
  {
    std::lock_guard lock(mutex_);
    waiting = waiters_;
  }
  if (waiting.empty()) return;
  runner_([this, waiting] {
    for (const auto& waiter : waiting) answer(waiter, false);
  });
}

void EventFeed::close() {
  std::list<std::shared_ptr<Waiter>> waiting;
  {
    std::lock_guard lock(mutex_);
    waiting.swap(waiters_);
  }
  for (const auto& waiter : waiting) {
    if (waiter->answered.exchange(true)) continue;
    waiter->cancel_timer(waiter);
    waiter->reply(control::Response::json({{"events", nlohmann::json::array()}, {"next", waiter->since}}));
  }
}

}  // namespace coop::member
