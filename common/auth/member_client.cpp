// Client side of coop-member's auth and change feed, for every worker.
#include "common/auth/member_client.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/control/client.h"
#include "common/error.h"
#include "common/paths.h"

namespace coop::auth {

namespace {

VerifiedMember ask_registry(const Home& home, const std::string& path, const nlohmann::json& body) {
  control::Client client(home.socket("member"));
  const auto response = client.request("POST", path, body.dump(), std::chrono::seconds(30));
  if (response.status == 429) {
    const auto error = nlohmann::json::parse(response.body, nullptr, false);
    const auto details = error.is_object() ? error.value("error", nlohmann::json::object()) : nlohmann::json::object();
    throw ThrottledError(details.value("message", "too many failed logins"), details.value("retry_after_ms", int64_t{1000}));
  }
  response.throw_if_error();
  const auto j = response.json();
  return VerifiedMember{j.value("handle", ""), j.value("name", ""), j.value("role", ""),
                        j.value("groups", std::vector<std::string>{}), j.value("emails", std::vector<std::string>{}),
                        j.value("credential", "")};
}

}  // namespace

VerifiedMember verify_credentials(const Home& home, const std::string& user, const std::string& password,
                                  const std::string& protocol, const std::string& source) {
  return ask_registry(home, "/v1/auth/verify", {{"user", user}, {"password", password}, {"protocol", protocol}, {"source", source}});
}

VerifiedMember verify_token(const Home& home, const std::string& token, const std::string& protocol, const std::string& source) {
  return ask_registry(home, "/v1/auth/token", {{"token", token}, {"protocol", protocol}, {"source", source}});
}

bool ends_sessions(const MemberEvent& event) {
  return event.kind == "member.suspended" || event.kind == "member.removed" ||
         event.kind == "member.password_changed" || event.kind == "app_password.revoked";
}

struct MemberEventFollower::Impl {
  std::filesystem::path socket;
  std::function<void(const MemberEvent&)> on_event;
  std::function<void()> on_connected;
  std::atomic<int64_t> position{-1};  // -1 until the feed's position is known
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;

  void run() {
    // Short polls, so the destructor never waits long; the feed answers at once on a change.
    constexpr auto kPoll = std::chrono::milliseconds(1000);
    auto backoff = std::chrono::milliseconds(100);
    control::Client client(socket);
    while (true) {
      {
        std::lock_guard lock(mutex);
        if (stopping) return;
      }
      try {
        if (position.load() < 0) {
          const auto status = client.get("/v1/status");
          status.throw_if_error();
          position = status.json().value("last_event", int64_t{0});
          if (on_connected) on_connected();
        }
        const auto response = client.request(
            "GET", "/v1/events?since=" + std::to_string(position.load()) + "&timeout_ms=" + std::to_string(kPoll.count()),
            {}, kPoll + std::chrono::seconds(10));
        response.throw_if_error();
        const auto j = response.json();
        for (const auto& e : j.value("events", nlohmann::json::array())) {
          MemberEvent event{e.value("seq", int64_t{0}), e.value("kind", ""), e.value("handle", ""),
                            e.contains("detail") ? e["detail"].dump() : "{}"};
          on_event(event);
          position = event.seq;
        }
        backoff = std::chrono::milliseconds(100);
      } catch (const std::exception&) {
        // coop-member restarting or not up yet: wait, then ask again from the same position.
        // Until it first answers, briefly: the worker's view starts then.
        const bool first = position.load() < 0;
        std::unique_lock lock(mutex);
        wake.wait_for(lock, first ? std::chrono::milliseconds(50) : backoff, [this] { return stopping; });
        if (!first) backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
  }
};

MemberEventFollower::MemberEventFollower(const Home& home, std::function<void(const MemberEvent&)> on_event,
                                         std::function<void()> on_connected)
    : MemberEventFollower(home, -1, std::move(on_event), std::move(on_connected)) {}

MemberEventFollower::MemberEventFollower(const Home& home, int64_t since, std::function<void(const MemberEvent&)> on_event,
                                         std::function<void()> on_connected)
    : impl_(std::make_unique<Impl>()) {
  impl_->socket = home.socket("member");
  impl_->on_event = std::move(on_event);
  impl_->on_connected = std::move(on_connected);
  impl_->position = since;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

MemberEventFollower::~MemberEventFollower() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

int64_t MemberEventFollower::position() const { return impl_->position.load(); }

}  // namespace coop::auth
