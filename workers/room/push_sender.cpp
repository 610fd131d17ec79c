// Push gateway delivery: one thread walks the notifications table in order, posts each to the
// member's HTTP pushers on configured gateways, and retries transient failures with backoff.
#include "workers/room/push_sender.h"

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "workers/room/store/room_store.h"

namespace coop::room {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kBatch = 100;
constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr auto kMaxBackoff = std::chrono::minutes(10);
constexpr std::size_t kMaxRetries = 10000;  // waiting deliveries kept in memory at most

std::size_t collect(char* data, std::size_t size, std::size_t count, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() + size * count > 65536) return 0;  // a gateway's answer is small
  body->append(data, size * count);
  return size * count;
}

// POST body to url; {status, response body}, status 0 when the request did not complete.
std::pair<long, std::string> post_json(const std::string& url, const std::string& body) {
  CURL* curl = curl_easy_init();
  if (!curl) return {0, ""};
  std::string answer;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(std::chrono::milliseconds(kRequestTimeout).count()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return {status, answer};
}

}  // namespace

struct PushSender::Impl {
  struct Delivery {
    std::string user_id, app_id, pushkey, url;
    std::string body;
    int attempts = 0;
    Clock::time_point due;
  };

  Impl(RoomStore& store, PushSettings settings) : store(store), settings(std::move(settings)) {}

  RoomStore& store;
  PushSettings settings;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool poked = true;
  std::deque<Delivery> retries;
  std::thread thread;

  bool allowed(const std::string& url) const {
    return std::any_of(settings.gateways.begin(), settings.gateways.end(),
                       [&](const std::string& prefix) { return !prefix.empty() && url.rfind(prefix, 0) == 0; });
  }

  // Push Gateway API "POST /_matrix/push/v1/notify": the event, who sent it where, the
  // member's unread count for the badge, and the device. No content for encrypted events or
  // for pushers that asked for event_id_only.
  std::string payload(const RoomStore::PendingPush& n, const json& pusher) {
    const auto& e = n.event;
    const std::string room_id = e.value("room_id", ""), sender = e.value("sender", "");
    json data = pusher.value("data", json::object());
    const bool id_only = data.value("format", "") == "event_id_only";
    data.erase("url");
    json tweaks = json::object();
    bool highlight = false;
    for (const auto& action : n.actions)
      if (action.is_object() && action.contains("set_tweak")) {
        const std::string tweak = action.value("set_tweak", "");
        tweaks[tweak] = action.value("value", json(true));
        highlight = highlight || tweak == "highlight";
      }
    json notification = {{"event_id", e.value("event_id", "")},
                         {"room_id", room_id},
                         {"counts", {{"unread", store.unread_total(n.user_id)}, {"missed_calls", 0}}},
                         {"prio", highlight || e.value("type", "") == "m.call.invite" ? "high" : "low"},
                         {"devices", json::array({{{"app_id", pusher.value("app_id", "")},
                                                   {"pushkey", pusher.value("pushkey", "")},
                                                   {"data", data},
                                                   {"tweaks", tweaks}}})}};
    if (!id_only) {
      notification["type"] = e.value("type", "");
      notification["sender"] = sender;
      if (e.contains("state_key")) notification["user_is_target"] = e.value("state_key", "") == n.user_id;
      if (auto member = store.state_event(room_id, "m.room.member", sender))
        if ((*member)["content"].contains("displayname")) notification["sender_display_name"] = (*member)["content"]["displayname"];
      if (auto name = store.state_event(room_id, "m.room.name", "")) notification["room_name"] = (*name)["content"].value("name", "");
      if (e.value("type", "") != "m.room.encrypted" && e.contains("content")) notification["content"] = e["content"];
    }
    return json{{"notification", notification}}.dump();
  }

  // One attempt; true when the delivery is settled (done, or refused for good).
  bool attempt(Delivery& d) {
    const auto [status, answer] = post_json(d.url, d.body);
    if (status == 200) {
      // "rejected": push keys the gateway no longer knows; their pushers go.
      const auto j = json::parse(answer, nullptr, false);
      if (j.is_object() && j.contains("rejected") && j["rejected"].is_array())
        for (const auto& key : j["rejected"])
          if (key.is_string()) {
            spdlog::info("push gateway rejected a push key of {}: its pusher is removed", d.user_id);
            store.delete_pusher(d.user_id, d.app_id, key.get<std::string>());
          }
      return true;
    }
    if (status >= 400 && status < 500 && status != 429) {
      spdlog::warn("push gateway {} refused a notification for {} ({})", d.url, d.user_id, status);
      return true;
    }
    return false;
  }

  void schedule_retry(Delivery d) {
    if (++d.attempts >= settings.max_attempts) {
      spdlog::warn("push to {} for {} dropped after {} attempts", d.url, d.user_id, d.attempts);
      return;
    }
    d.due = Clock::now() + std::min<Clock::duration>(std::chrono::seconds(1LL << std::min(d.attempts, 20)), kMaxBackoff);
    std::lock_guard lock(mutex);
    if (retries.size() < kMaxRetries) retries.push_back(std::move(d));
  }

  void deliver_new() {
    auto position = store.push_position();
    for (;;) {
      const auto batch = store.notifications_after(position, kBatch);
      if (batch.empty()) break;
      for (const auto& n : batch) {
        for (const auto& pusher : store.pushers(n.user_id)) {
          const std::string url = pusher.value("data", json::object()).value("url", "");
          if (pusher.value("kind", "") != "http" || !allowed(url)) continue;
          Delivery d{n.user_id, pusher.value("app_id", ""), pusher.value("pushkey", ""), url, payload(n, pusher), 0,
                     Clock::now()};
          if (!attempt(d)) schedule_retry(std::move(d));
        }
        position = n.id;
      }
      store.set_push_position(position);
      std::lock_guard lock(mutex);
      if (stopping) return;
    }
  }

  void deliver_due() {
    std::deque<Delivery> due;
    {
      std::lock_guard lock(mutex);
      const auto now = Clock::now();
      for (auto it = retries.begin(); it != retries.end();) {
        if (it->due <= now) {
          due.push_back(std::move(*it));
          it = retries.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& d : due)
      if (!attempt(d)) schedule_retry(std::move(d));
  }

  void run() {
    for (;;) {
      {
        std::unique_lock lock(mutex);
        auto next = Clock::now() + std::chrono::minutes(1);
        for (const auto& d : retries) next = std::min(next, d.due);
        wake.wait_until(lock, next, [this] { return stopping || poked; });
        if (stopping) return;
        poked = false;
      }
      try {
        deliver_new();
        deliver_due();
      } catch (const std::exception& e) {
        spdlog::error("push delivery: {}", e.what());
      }
    }
  }
};

PushSender::PushSender(RoomStore& store, PushSettings settings) : impl_(std::make_unique<Impl>(store, std::move(settings))) {
  if (impl_->settings.gateways.empty()) return;  // nothing to deliver to: no thread
  store.push_position();  // delivery starts from here
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

PushSender::~PushSender() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void PushSender::poke() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->poked = true;
  }
  impl_->wake.notify_all();
}

}  // namespace coop::room
