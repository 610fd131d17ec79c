// Client-Server API "Syncing" and "Filtering": /sync with its long-poll, and stored filters.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/worker_runtime.h"
#include "workers/room/client_impl.h"
#include "workers/room/event_filter.h"
#include "workers/room/store/key_store.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

using http::Reply;
using http::Request;
using http::Response;
using nlohmann::json;
namespace asio = boost::asio;

namespace {
// To-device messages per /sync answer; the rest come with the next, as Synapse sends them.
constexpr int kToDevicePerSync = 100;
}  // namespace

json ClientApi::Impl::sync_filter(const Request& q, const std::string& user_id) {
  json filter;
  const auto text = q.query_value("filter");
  if (!text.empty() && text[0] == '{') filter = filter_param(text);
  else if (!text.empty()) {
    try {
      filter = store.filter(user_id, std::stoll(text)).value_or(json::object());
    } catch (...) {
    }
  }
  return filter.is_object() ? filter : json::object();
}

int ClientApi::Impl::timeline_limit(const json& filter) {
  if (filter.contains("room") && filter["room"].is_object() && filter["room"].contains("timeline") &&
      filter["room"]["timeline"].is_object() && filter["room"]["timeline"].value("limit", json(10)).is_number_integer())
    return std::clamp(filter["room"]["timeline"].value("limit", 10), 1, 500);
  return 10;
}

bool ClientApi::Impl::lazy_members(const json& filter) {
  if (!filter.contains("room") || !filter["room"].is_object()) return false;
  const auto& room = filter["room"];
  if (!room.contains("state") || !room["state"].is_object()) return false;
  const auto flag = room["state"].value("lazy_load_members", json(false));
  return flag.is_boolean() && flag.get<bool>();
}

std::pair<json, json> ClientApi::Impl::unread_counts(const std::string& room_id, const std::string& user_id, bool by_thread) {
  const auto counts = store.unread_counts(room_id, user_id, by_thread);
  json threads = json::object();
  for (const auto& [root, c] : counts.threads) threads[root] = {{"notification_count", c.first}, {"highlight_count", c.second}};
  return {{{"notification_count", counts.main.first}, {"highlight_count", counts.main.second}}, threads};
}

json ClientApi::Impl::stripped_state(const std::string& room_id, const std::string& user_id,
                                      const std::optional<RoomStore::RemoteInvite>& remote_invite) {
  json stripped = json::array();
  if (remote_invite) {
    if (remote_invite->state.is_array())
      for (const auto& e : remote_invite->state)
        if (e.is_object()) stripped.push_back(e);
    return stripped;
  }
  const auto wanted = [&user_id](const std::string& type, const std::string& key) {
    return type == "m.room.create" || type == "m.room.name" || type == "m.room.join_rules" || type == "m.room.avatar" ||
           type == "m.room.canonical_alias" || type == "m.room.topic" || type == "m.room.encryption" ||
           (type == "m.room.member" && key == user_id);
  };
  for (const auto& e : store.current_state(room_id, wanted))
    stripped.push_back({{"type", e.value("type", "")}, {"state_key", e.value("state_key", "")}, {"content", e["content"]},
                        {"sender", e.value("sender", "")}});
  return stripped;
}

ClientApi::Impl::SyncMoment ClientApi::Impl::sync_moment() {
  // Read under the typing lock: a typing change takes its position and updates the map
  // under the same lock, so a sync sees both or neither.
  SyncMoment m;
  std::lock_guard lock(typing_mutex);
  m.now = store.position();
  m.now.keys = keys.position();
  m.typing_changed = typing_changed;
  m.typing = typing;
  return m;
}

std::pair<json, bool> ClientApi::Impl::build_sync(const Session& session, const Request& q) {
  const std::string& user_id = session.user_id;
  const auto since = StreamPosition::parse(q.query_value("since"));
  if (!since && !q.query_value("since").empty()) fail(400, errc::kMInvalidParam, "since is not a token of this server");
  const bool full_state = q.query_value("full_state") == "true";
  // MSC4222, in the spec since v1.16; matrix-js-sdk still sends the unstable name.
  const bool unstable_state_after = q.query_value("org.matrix.msc4222.use_state_after") == "true";
  const bool use_state_after = q.query_value("use_state_after") == "true" || unstable_state_after;
  const char* state_after_field = unstable_state_after ? "org.matrix.msc4222.state_after" : "state_after";
  auto moment = sync_moment();
  const StreamPosition now = moment.now;
  const auto& typing_positions = moment.typing_changed;
  const auto& typing_now = moment.typing;
  const json filter = sync_filter(q, user_id);
  const int limit = timeline_limit(filter);
  const bool lazy = lazy_members(filter);
  // "Receiving notifications": counts per thread when the filter asks for them.
  bool by_thread = false;
  if (filter.contains("room") && filter["room"].is_object() && filter["room"].contains("timeline") &&
      filter["room"]["timeline"].is_object())
    by_thread = filter["room"]["timeline"].value("unread_thread_notifications", json(false)) == json(true);
  bool anything = false;
  json rooms = {{"join", json::object()}, {"invite", json::object()}, {"leave", json::object()}, {"knock", json::object()}};

  const json room_filter = filter.value("room", json::object());
  const auto only_rooms = string_list(room_filter, "rooms");
  const auto not_rooms = string_list(room_filter, "not_rooms");
  const bool rooms_listed = room_filter.is_object() && room_filter.contains("rooms");
  const EventFilter timeline_filter =
      EventFilter::from(room_filter.is_object() ? room_filter.value("timeline", json::object()) : json::object());
  // Account data once for every room; and on an incremental sync, the rooms with anything new
  // (events, receipts, typing, room account data): the others are left out without a look,
  // so that waking a member of many rooms costs what changed, not what they are in.
  const auto account_data = store.account_data_since(user_id, since ? since->other : 0);
  std::set<std::string> changed_rooms;
  if (since && !full_state) {
    changed_rooms = store.rooms_changed_since(user_id, since->events, since->other);
    for (const auto& [rid, position] : typing_positions)
      if (position > since->other) changed_rooms.insert(rid);
    for (const auto& [rid, type, content] : account_data)
      if (!rid.empty()) changed_rooms.insert(rid);
  }
  for (const auto& [room_id, membership] : store.rooms_of(user_id)) {
    if (since && !full_state && !changed_rooms.count(room_id)) continue;
    if (std::find(not_rooms.begin(), not_rooms.end(), room_id) != not_rooms.end()) continue;
    if (rooms_listed && std::find(only_rooms.begin(), only_rooms.end(), room_id) == only_rooms.end()) continue;
    const auto member_event = store.state_event(room_id, "m.room.member", user_id);
    // An invitation from another server to a room this one is not in: its own event and state.
    const auto remote_invite = !member_event && membership == "invite" ? store.remote_invite(room_id, user_id) : std::nullopt;
    const int64_t member_stream = member_event ? store.event(member_event->value("event_id", ""))->stream
                                  : remote_invite ? remote_invite->stream : 0;
    const bool membership_new = !since || member_stream > since->events;
    if (remote_invite) {
      if (!membership_new) continue;
      rooms["invite"][room_id] = {{"invite_state", {{"events", stripped_state(room_id, user_id, remote_invite)}}}};
      anything = true;
      continue;
    }
    if (membership == "invite" || membership == "knock") {
      if (!membership_new) continue;
      const auto stripped = stripped_state(room_id, user_id, std::nullopt);
      if (membership == "knock") rooms["knock"][room_id] = {{"knock_state", {{"events", stripped}}}};
      else rooms["invite"][room_id] = {{"invite_state", {{"events", stripped}}}};
      anything = true;
      continue;
    }
    if (membership == "leave" || membership == "ban") {
      if (!since || !membership_new) continue;  // initial sync leaves old rooms out
      auto events = store.events_between(room_id, since->events, member_stream, limit, false);
      const auto visible = store.history_visibility(room_id, user_id);
      json timeline = json::array();
      for (const auto& e : events)
        if (visible.allows(e)) timeline.push_back(timeline_event(e, session));
      rooms["leave"][room_id] = {{"timeline", {{"events", timeline}, {"limited", false}}},
                                 {use_state_after ? state_after_field : "state", {{"events", json::array()}}}};
      anything = true;
      continue;
    }
    if (membership != "join") continue;

    const int64_t from = since && !membership_new ? since->events : 0;
    // Newest first, through history visibility and the timeline filter, scanning at most a
    // few pages.
    const auto visible = store.history_visibility(room_id, user_id);
    std::vector<StoredEvent> newest;
    bool members_changed = false;  // the room summary goes with any membership change
    bool state_changed = false;    // and state_after with any state event
    for (int64_t up_to = now.events, pages = 0; static_cast<int>(newest.size()) <= limit && pages < 10; ++pages) {
      const auto page = store.events_between(room_id, from, up_to, std::max(limit + 1, 50), true);
      for (const auto& e : page) {
        members_changed = members_changed || e.event.value("type", "") == "m.room.member";
        state_changed = state_changed || e.event.contains("state_key");
      }
      for (const auto& e : page)
        if (static_cast<int>(newest.size()) <= limit && visible.allows(e) && timeline_filter.matches(e.event))
          newest.push_back(e);
      if (page.empty() || static_cast<int>(page.size()) < std::max(limit + 1, 50)) break;
      up_to = page.back().stream - 1;
    }
    const bool limited = static_cast<int>(newest.size()) > limit;
    if (limited) newest.pop_back();
    std::reverse(newest.begin(), newest.end());
    json timeline = json::array();
    for (const auto& e : newest) timeline.push_back(timeline_event(e, session));
    json room = json::object();
    const std::string prev_batch = newest.empty() ? now.token()
                                                  : StreamPosition{newest.front().stream - 1, now.other}.token();
    room["timeline"] = {{"events", timeline}, {"limited", limited}, {"prev_batch", prev_batch}};
    std::set<std::string> needed = {user_id};
    for (const auto& e : newest) needed.insert(e.event.value("sender", ""));
    RoomStore::StateWanted wanted;
    if (lazy)
      wanted = [&needed](const std::string& type, const std::string& key) { return type != "m.room.member" || needed.count(key) > 0; };
    // Client-Server API "/sync", `use_state_after` (spec v1.16, MSC4222): the state at the
    // end of the timeline instead, whole on an initial or full sync or a new membership, else
    // what changed since the last sync (some of it may be in the timeline too). A client
    // that filters events out of its timeline still learns what they did to the state.
    json after = json::array();
    if (use_state_after) {
      if (!since || full_state || membership_new) {
        for (const auto& e : store.current_state(room_id, wanted)) after.push_back(client_event(e));
      } else if (state_changed || limited) {
        const auto last_seen = store.events_between(room_id, 0, since->events, 1, true);
        std::set<std::string> had;
        if (!last_seen.empty())
          for (const auto& e : store.state_after(last_seen.front().event.value("event_id", ""), wanted).value_or(std::vector<json>{}))
            had.insert(e.value("event_id", ""));
        for (const auto& e : store.current_state(room_id, wanted))
          if (!had.count(e.value("event_id", ""))) after.push_back(client_event(e));
      }
      room[state_after_field] = {{"events", after}};
    }
    // Otherwise state is the room's state at the start of the timeline, on an initial or
    // gappy sync; from the state groups, so it is right for that moment.
    json state = json::array();
    if (!use_state_after && (!since || limited || full_state || membership_new)) {
      std::optional<std::vector<json>> at_start;
      if (newest.empty()) {
        at_start = store.current_state(room_id, wanted);
      } else {
        const auto before = store.events_between(room_id, 0, newest.front().stream - 1, 1, true);
        at_start = before.empty() ? store.state_before(newest.front().event.value("event_id", ""), wanted)
                                  : store.state_after(before.front().event.value("event_id", ""), wanted);
      }
      if (!at_start) {  // events from before state groups: current state minus the timeline
        std::set<std::string> in_timeline;
        for (const auto& e : newest) in_timeline.insert(e.event.value("event_id", ""));
        at_start = std::vector<json>{};
        for (const auto& e : store.current_state(room_id, wanted))
          if (!in_timeline.count(e.value("event_id", ""))) at_start->push_back(e);
      }
      for (const auto& e : *at_start) {
        if (lazy && e.value("type", "") == "m.room.member" && !needed.count(e.value("state_key", ""))) continue;
        state.push_back(client_event(e));
      }
    }
    if (!use_state_after) room["state"] = {{"events", state}};
    json ephemeral = json::array();
    const int64_t other_since = since ? since->other : 0;
    const json receipts = store.receipts_since(room_id, other_since, user_id);
    if (!receipts.empty()) ephemeral.push_back({{"type", "m.receipt"}, {"content", receipts}});
    const auto changed = typing_positions.find(room_id);
    if (changed != typing_positions.end() && changed->second > other_since) {
      json users = json::array();
      const auto t = std::chrono::steady_clock::now();
      if (const auto typers = typing_now.find(room_id); typers != typing_now.end())
        for (const auto& [user, until] : typers->second)
          if (until > t) users.push_back(user);
      ephemeral.push_back({{"type", "m.typing"}, {"content", {{"user_ids", users}}}});
    }
    room["ephemeral"] = {{"events", ephemeral}};
    json room_account = json::array();
    for (const auto& [rid, type, content] : account_data)
      if (rid == room_id) room_account.push_back({{"type", type}, {"content", content}});
    room["account_data"] = {{"events", room_account}};
    if (!since || limited || membership_new || full_state || members_changed) {
      const auto summary = store.room_summary(room_id, user_id, kHeroes);
      room["summary"] = {{"m.joined_member_count", summary.joined}, {"m.invited_member_count", summary.invited},
                         {"m.heroes", summary.heroes}};
    }
    auto [unread, unread_threads] = unread_counts(room_id, user_id, by_thread);
    room["unread_notifications"] = std::move(unread);
    if (by_thread) room["unread_thread_notifications"] = std::move(unread_threads);
    const bool news = !timeline.empty() || !state.empty() || !after.empty() || !ephemeral.empty() || !room_account.empty();
    if (news || !since) {
      rooms["join"][room_id] = room;
      anything = anything || news;
    }
  }
  json global = json::array();
  for (const auto& [rid, type, content] : account_data)
    if (rid.empty()) global.push_back({{"type", type}, {"content", content}});
  anything = anything || !global.empty();

  // Client-Server API "Send-to-Device messaging": what the device has not acknowledged yet. A
  // sync with a token past a message is the acknowledgement, so a client that lost an answer
  // gets the same messages again with the same token.
  StreamPosition next = now;
  if (since) keys.acknowledge_to_device(user_id, session.device_id, since->keys);
  auto [to_device, last_to_device] = keys.to_device(user_id, session.device_id, since ? since->keys : 0, now.keys, kToDevicePerSync);
  if (static_cast<int>(to_device.size()) == kToDevicePerSync) next.keys = last_to_device;
  // "Tracking the device list for a user": who to fetch keys of again, who to forget.
  std::set<std::string> changed, left;
  if (since) std::tie(changed, left) = device_list_delta(user_id, *since, now);
  anything = anything || !to_device.empty() || !changed.empty() || !left.empty();
  json one_time_counts = json::object();
  for (const auto& [algorithm, count] : keys.one_time_key_counts(user_id, session.device_id)) one_time_counts[algorithm] = count;
  const auto unused_fallback = keys.unused_fallback_key_types(user_id, session.device_id);
  json body = {{"next_batch", next.token()},
               {"rooms", rooms},
               {"account_data", {{"events", global}}},
               {"presence", {{"events", json::array()}}},
               {"to_device", {{"events", to_device}}},
               {"device_one_time_keys_count", one_time_counts},
               {"device_unused_fallback_key_types", unused_fallback},
               {"org.matrix.msc2732.device_unused_fallback_key_types", unused_fallback},
               {"device_lists", {{"changed", changed}, {"left", left}}}};
  return {body, anything || !since};
}

std::shared_ptr<Waiter> ClientApi::Impl::new_waiter(const Session& session, Reply reply, int timeout_ms,
                                                    std::function<std::pair<json, bool>(bool last)> build, json on_close) {
  auto waiter = std::make_shared<Waiter>();
  waiter->user_id = session.user_id;
  waiter->device_id = session.device_id;
  for (const auto& [room_id, membership] : store.rooms_of(session.user_id))
    if (membership == "join" || membership == "invite") waiter->rooms.insert(room_id);
  waiter->build = std::move(build);
  waiter->on_close = std::move(on_close);
  waiter->reply = std::move(reply);
  waiter->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  return waiter;
}

void ClientApi::Impl::park(const std::shared_ptr<Waiter>& waiter) {
  {
    std::lock_guard lock(waiters_mutex);
    waiters.push_back(waiter);
  }
  auto timer = std::make_shared<asio::steady_timer>(runtime.io());
  timer->expires_at(waiter->deadline);
  timer->async_wait([self = shared_from_this(), waiter, timer](const boost::system::error_code&) {
    self->run([self, waiter] { self->retry(waiter, true); });
  });
  // A change committed after this sync looked but before it was parked woke nobody: look
  // once more now that it is parked, so no notification falls between the two.
  retry(waiter, false);
}

void ClientApi::Impl::retry(const std::shared_ptr<Waiter>& waiter, bool final) {
  if (waiter->answered) return;
  json body;
  bool has_news = false;
  std::optional<Response> failed;
  // Decided once, before the answer is built: a sliding sync answer that is not the last
  // try and has no news is built without a new position, so it must not go out.
  const bool last = final || std::chrono::steady_clock::now() >= waiter->deadline;
  try {
    std::tie(body, has_news) = waiter->build(last);
  } catch (const Error& e) {
    failed = error(e.status(), e.code(), e.what());
  } catch (const std::exception& e) {
    spdlog::error("sync for {}: {}", waiter->user_id, e.what());
    failed = error(500, errc::kMUnknown, "internal error");
  }
  if (!failed && !has_news && !last) return;
  if (waiter->answered.exchange(true)) return;
  {
    std::lock_guard lock(waiters_mutex);
    waiters.remove(waiter);
  }
  waiter->reply(failed ? std::move(*failed) : ok(body));
}

void ClientApi::Impl::end_waiters(const std::string& user_id, const std::set<std::string>& devices) {
  std::list<std::shared_ptr<Waiter>> ended;
  {
    std::lock_guard lock(waiters_mutex);
    for (auto it = waiters.begin(); it != waiters.end();) {
      if ((*it)->user_id == user_id && (devices.empty() || devices.count((*it)->device_id))) {
        ended.push_back(*it);
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& w : ended)
    if (!w->answered.exchange(true)) w->reply(error(401, errc::kMUnknownToken, "this session has ended"));
}

void ClientApi::Impl::notify(const StoreChange& change) {
  {
    std::lock_guard lock(changes_mutex);
    changes.merge(change);
    if (pass_queued) return;
    pass_queued = true;
  }
  run([self = shared_from_this()] {
    StoreChange now;
    {
      std::lock_guard lock(self->changes_mutex);
      now = std::move(self->changes);
      self->changes = StoreChange{};
      self->pass_queued = false;
    }
    // Keys that changed matter to everyone who shares a room with their owner.
    for (const auto& user : now.device_lists)
      for (const auto& peer : self->store.users_sharing_rooms(user)) now.users.insert(peer);
    std::list<std::shared_ptr<Waiter>> current;
    {
      std::lock_guard lock(self->waiters_mutex);
      for (const auto& w : self->waiters) {
        bool concerned = now.users.count(w->user_id) > 0;
        for (auto it = now.rooms.begin(); !concerned && it != now.rooms.end(); ++it) concerned = w->rooms.count(*it) > 0;
        if (concerned) current.push_back(w);
      }
    }
    for (const auto& w : current) self->retry(w, false);
  });
}

namespace {

Response create_filter(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "cannot create filters for other users");
  return ok({{"filter_id", std::to_string(api.store.filter_create(s.user_id, q.json()))}});
}

Response get_filter(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto f = api.store.filter(s.user_id, std::atoll(q.param("filterId").c_str()));
  if (!f) fail(404, errc::kMNotFound, "no such filter");
  return ok(*f);
}

void sync(ClientApi::Impl& api, const Request& q, Reply reply) {
  auto self = api.shared_from_this();
  api.run([self, q, reply] {
    try {
      const auto session = self->authenticate(q);
      auto [body, has_news] = self->build_sync(session, q);
      const int timeout = std::clamp(std::atoi(q.query_value("timeout", "0").c_str()), 0, 120000);
      if (has_news || timeout == 0) return reply(ok(body));
      std::weak_ptr<ClientApi::Impl> weak = self;
      self->park(self->new_waiter(
          session, reply, timeout,
          [weak, session, q](bool) -> std::pair<json, bool> {
            const auto api = weak.lock();
            if (!api) throw Error(errc::kMUnknown, "shutting down", 503);
            return api->build_sync(session, q);
          },
          {{"next_batch", q.query_value("since")}, {"rooms", json::object()}}));
    } catch (const Error& e) {
      reply(self->error(e.status(), e.code(), e.what()));
    } catch (const std::exception& e) {
      spdlog::error("sync: {}", e.what());  // the client hears no internals
      reply(self->error(500, errc::kMUnknown, "internal error"));
    }
  });
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kSyncTable[] = {
    {"POST", "/user/{userId}/filter", Mount::kV3AndR0, Run::kBlocking, create_filter, "store a filter"},
    {"GET", "/user/{userId}/filter/{filterId}", Mount::kV3AndR0, Run::kBlocking, get_filter, "read a stored filter"},
    {"GET", "/sync", Mount::kV3AndR0, Run::kLongPoll, sync, "changes since a token, long-polling up to timeout"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kSyncRoutes = kSyncTable;

}  // namespace coop::room
