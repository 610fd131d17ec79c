// Matrix client-server endpoints: discovery, login, rooms, events, /sync and /messages.
#include "workers/room/client_api.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <openssl/rand.h>

#include "common/auth/member_client.h"
#include "common/blob_store.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/json.h"
#include "common/text.h"
#include "common/http/router.h"
#include "common/version.h"
#include "common/worker_runtime.h"
#include "workers/matrix/base64.h"
#include "workers/room/store/room_store.h"
#include "workers/room/thumbnail.h"

namespace coop::room {

namespace {

using http::Reply;
using http::Request;
using http::Response;
using nlohmann::json;
namespace asio = boost::asio;

const std::vector<std::string> kPrefixes = {"/_matrix/client/v3", "/_matrix/client/r0"};

// CORS on every /_matrix answer, as the Client-Server API "Web Browser Clients" section asks.
Response cors(Response response) {
  response.headers.emplace_back("Access-Control-Allow-Origin", "*");
  response.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
  response.headers.emplace_back("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization");
  return response;
}

Response ok(const json& body) { return cors(Response::json(body)); }

// Client-Server API "Rate limiting": 429 M_LIMIT_EXCEEDED with retry_after_ms.
Response rate_limited(const auth::ThrottledError& e) {
  return cors(Response::json({{"errcode", errc::kMLimitExceeded}, {"error", e.what()}, {"retry_after_ms", e.retry_after_ms()}}, 429));
}

[[noreturn]] void fail(int status, const std::string& errcode, const std::string& message) {
  throw Error(errcode, message, status);
}

// coop::Error codes that are not Matrix errcodes yet get the closest Matrix one.
std::string errcode_for(int status, const std::string& code) {
  if (code.rfind("M_", 0) == 0) return code;
  if (code == errc::kNotJson) return errc::kMNotJson;
  if (code == errc::kBadJson) return errc::kMBadJson;
  if (code == errc::kBadRequest) return errc::kMInvalidParam;
  if (code == errc::kBadCredentials) return errc::kMForbidden;
  if (code == errc::kMemberSuspended || code == errc::kMemberRemoved) return errc::kMUserDeactivated;
  if (code == errc::kThrottled) return errc::kMLimitExceeded;
  switch (status) {
    case 400: return errc::kMBadJson;
    case 401: return errc::kMUnknownToken;
    case 403: return errc::kMForbidden;
    case 404: return errc::kMNotFound;
    case 405: return errc::kMUnrecognized;
    case 413: return errc::kMTooLarge;
    case 429: return errc::kMLimitExceeded;
    default: return errc::kMUnknown;
  }
}

// A filter given inline in a query string (?filter={...}), parsed as bodies are.
json filter_param(const std::string& text) {
  try {
    return parse_json_object(text);
  } catch (const Error&) {
    throw Error(errc::kMInvalidParam, "filter is not a JSON object", 400);
  }
}

std::string localpart(const std::string& user_id) {
  if (user_id.empty() || user_id[0] != '@') return user_id;
  return user_id.substr(1, user_id.find(':') - 1);
}

// Client-Server API "Push Notifications / Predefined Rules": the server-default rules every
// client expects to find (Element shows its notification settings from them).
json default_push_rules(const std::string& user_id) {
  const json notify = json::array({"notify"});
  const json sound = json::array({"notify", {{"set_tweak", "sound"}, {"value", "default"}}});
  const json highlight = json::array({"notify", {{"set_tweak", "sound"}, {"value", "default"}}, {{"set_tweak", "highlight"}}});
  auto rule = [](const char* id, json conditions, json actions, bool enabled = true) {
    return json{{"rule_id", id}, {"default", true}, {"enabled", enabled}, {"conditions", conditions}, {"actions", actions}};
  };
  auto match = [](const char* key, const std::string& pattern) {
    return json{{"kind", "event_match"}, {"key", key}, {"pattern", pattern}};
  };
  const std::string localpart = user_id.substr(1, user_id.find(':') - 1);
  return {
      {"override", json::array({
          rule(".m.rule.master", json::array(), json::array(), false),
          rule(".m.rule.suppress_notices", json::array({match("content.msgtype", "m.notice")}), json::array()),
          rule(".m.rule.invite_for_me", json::array({match("type", "m.room.member"), match("content.membership", "invite"),
                                                     match("state_key", user_id)}), sound),
          rule(".m.rule.member_event", json::array({match("type", "m.room.member")}), json::array()),
          rule(".m.rule.is_user_mention", json::array({{{"kind", "event_property_contains"}, {"key", "content.m\\.mentions.user_ids"}, {"value", user_id}}}), highlight),
          rule(".m.rule.is_room_mention", json::array({{{"kind", "event_property_is"}, {"key", "content.m\\.mentions.room"}, {"value", true}},
                                                       {{"kind", "sender_notification_permission"}, {"key", "room"}}}),
               json::array({"notify", {{"set_tweak", "highlight"}}})),
          rule(".m.rule.tombstone", json::array({match("type", "m.room.tombstone"), match("state_key", "")}),
               json::array({"notify", {{"set_tweak", "highlight"}}})),
          rule(".m.rule.reaction", json::array({match("type", "m.reaction")}), json::array()),
          rule(".m.rule.server_acl", json::array({match("type", "m.room.server_acl"), match("state_key", "")}), json::array()),
      })},
      {"content", json::array({{{"rule_id", ".m.rule.contains_user_name"}, {"default", true}, {"enabled", true},
                                {"pattern", localpart}, {"actions", highlight}}})},
      {"room", json::array()},
      {"sender", json::array()},
      {"underride", json::array({
          rule(".m.rule.call", json::array({match("type", "m.call.invite")}),
               json::array({"notify", {{"set_tweak", "sound"}, {"value", "ring"}}})),
          rule(".m.rule.encrypted_room_one_to_one", json::array({{{"kind", "room_member_count"}, {"is", "2"}},
                                                                 match("type", "m.room.encrypted")}), sound),
          rule(".m.rule.room_one_to_one", json::array({{{"kind", "room_member_count"}, {"is", "2"}},
                                                       match("type", "m.room.message")}), sound),
          rule(".m.rule.message", json::array({match("type", "m.room.message")}), notify),
          rule(".m.rule.encrypted", json::array({match("type", "m.room.encrypted")}), notify),
      })},
  };
}

// Client-Server API "Filtering": '*' matches any run of characters in type patterns.
bool glob_match(const std::string& pattern, const std::string& value) {
  std::size_t p = 0, v = 0, star = std::string::npos, mark = 0;
  while (v < value.size()) {
    if (p < pattern.size() && (pattern[p] == value[v])) {
      ++p;
      ++v;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = v;
    } else if (star != std::string::npos) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<std::string> string_list(const json& object, const char* key) {
  std::vector<std::string> out;
  if (object.is_object() && object.contains(key) && object[key].is_array())
    for (const auto& item : object[key])
      if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

// A RoomEventFilter's types, not_types, senders and not_senders.
struct EventFilter {
  std::vector<std::string> types, not_types, senders, not_senders;
  bool has_types = false;

  static EventFilter from(const json& filter) {
    EventFilter f;
    f.types = string_list(filter, "types");
    f.has_types = filter.is_object() && filter.contains("types");
    f.not_types = string_list(filter, "not_types");
    f.senders = string_list(filter, "senders");
    f.not_senders = string_list(filter, "not_senders");
    return f;
  }
  bool matches(const json& event) const {
    const std::string type = event.value("type", ""), sender = event.value("sender", "");
    for (const auto& t : not_types)
      if (glob_match(t, type)) return false;
    if (std::find(not_senders.begin(), not_senders.end(), sender) != not_senders.end()) return false;
    if (has_types && std::none_of(types.begin(), types.end(), [&](const auto& t) { return glob_match(t, type); }))
      return false;
    if (!senders.empty() && std::find(senders.begin(), senders.end(), sender) == senders.end()) return false;
    return true;
  }
};

struct Waiter {
  std::string user_id;
  Request request;
  Reply reply;
  std::chrono::steady_clock::time_point deadline;
  std::atomic<bool> answered{false};
};

}  // namespace

struct ClientApi::Impl : std::enable_shared_from_this<ClientApi::Impl> {
  Impl(WorkerRuntime& runtime, RoomStore& store)
      : runtime(runtime), store(store), run(runtime.blocking_runner()), blobs(runtime.home().root() / "blobs" / "room") {}

  WorkerRuntime& runtime;
  RoomStore& store;
  http::Runner run;
  BlobStore blobs;  // media
  std::string server() const { return store.server_name(); }

  // typing: room -> user -> expiry; and the "other" stream position of the room's last change
  std::mutex typing_mutex;
  std::map<std::string, std::map<std::string, std::chrono::steady_clock::time_point>> typing;
  std::map<std::string, int64_t> typing_changed;

  std::mutex waiters_mutex;
  std::list<std::shared_ptr<Waiter>> waiters;

  // ---- helpers ----

  Session authenticate(const Request& q) {
    std::string token = q.query_value("access_token");
    const auto header = q.header("authorization");
    if (header.rfind("Bearer ", 0) == 0) token = header.substr(7);
    if (token.empty()) fail(401, errc::kMMissingToken, "missing access token");
    auto session = store.session_for(token);
    if (!session) fail(401, errc::kMUnknownToken, "unknown or expired access token");
    return *session;
  }

  std::string token_of(const Request& q) {
    const auto header = q.header("authorization");
    return header.rfind("Bearer ", 0) == 0 ? header.substr(7) : q.query_value("access_token");
  }

  void route(http::Router& r, const std::string& method, const std::string& path,
             std::function<Response(const Request&)> handler) {
    for (const auto& prefix : kPrefixes) r.add_blocking(method, prefix + path, run, handler);
  }

  std::string resolve_room(const std::string& id_or_alias) {
    if (!id_or_alias.empty() && id_or_alias[0] == '#') {
      auto room = store.room_for_alias(id_or_alias);
      if (!room) fail(404, errc::kMNotFound, "no room alias " + id_or_alias);
      return *room;
    }
    if (id_or_alias.empty() || id_or_alias[0] != '!') fail(400, errc::kMInvalidParam, "not a room ID or alias");
    return id_or_alias;
  }

  void require_joined(const std::string& room_id, const std::string& user_id) {
    if (!store.room_version(room_id)) fail(404, errc::kMNotFound, "no room " + room_id);
    if (store.membership(room_id, user_id) != "join") fail(403, errc::kMForbidden, "you are not in this room");
  }

  // A member's power level and a named level ("redact", "state_default") in a room.
  std::pair<int64_t, int64_t> power(const std::string& room_id, const std::string& user_id, const char* level,
                                    int64_t level_default) {
    const auto levels = store.state_event(room_id, "m.room.power_levels", "");
    const json pl = levels ? (*levels)["content"] : json::object();
    const auto users = pl.value("users", json::object());
    const json mine = users.contains(user_id) ? users[user_id] : pl.value("users_default", json(0));
    const json needed = pl.value(level, json(level_default));
    return {mine.is_number_integer() ? mine.get<int64_t>() : 0, needed.is_number_integer() ? needed.get<int64_t>() : level_default};
  }

  std::string display_name(const std::string& user_id) {
    try {
      control::Client client(runtime.home().socket("member"));
      const auto response = client.get("/v1/members/" + localpart(user_id));
      if (response.ok()) return response.json().value("name", "");
    } catch (const std::exception&) {
    }
    return "";
  }

  json client_event(const json& event) {
    json out = event;
    out.erase("hashes");
    out.erase("signatures");
    out.erase("auth_events");
    out.erase("prev_events");
    out.erase("depth");
    return out;
  }

  // ---- sync ----

  json sync_filter(const Request& q, const std::string& user_id) {
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

  static int timeline_limit(const json& filter) {
    if (filter.contains("room") && filter["room"].is_object() && filter["room"].contains("timeline") &&
        filter["room"]["timeline"].is_object() && filter["room"]["timeline"].value("limit", json(10)).is_number_integer())
      return std::clamp(filter["room"]["timeline"].value("limit", 10), 1, 500);
    return 10;
  }

  // Client-Server API "Lazy-loading room members": only the members the timeline needs.
  static bool lazy_members(const json& filter) {
    if (!filter.contains("room") || !filter["room"].is_object()) return false;
    const auto& room = filter["room"];
    if (!room.contains("state") || !room["state"].is_object()) return false;
    const auto flag = room["state"].value("lazy_load_members", json(false));
    return flag.is_boolean() && flag.get<bool>();
  }

  json unread_counts(const std::string& room_id, const std::string& user_id) {
    const auto [notifications, highlights] = store.unread_counts(room_id, user_id, localpart(user_id));
    return {{"notification_count", notifications}, {"highlight_count", highlights}};
  }

  // Builds a sync response; empty() is true when an incremental sync has nothing new.
  std::pair<json, bool> build_sync(const std::string& user_id, const Request& q) {
    const auto since = StreamPosition::parse(q.query_value("since"));
    if (!since && !q.query_value("since").empty()) fail(400, errc::kMInvalidParam, "since is not a token of this server");
    const bool full_state = q.query_value("full_state") == "true";
    // Read under the typing lock: a typing change takes its position and updates the map
    // under the same lock, so a sync sees both or neither.
    StreamPosition now;
    std::map<std::string, int64_t> typing_positions;
    std::map<std::string, std::map<std::string, std::chrono::steady_clock::time_point>> typing_now;
    {
      std::lock_guard lock(typing_mutex);
      now = store.position();
      typing_positions = typing_changed;
      typing_now = typing;
    }
    const json filter = sync_filter(q, user_id);
    const int limit = timeline_limit(filter);
    const bool lazy = lazy_members(filter);
    bool anything = false;
    json rooms = {{"join", json::object()}, {"invite", json::object()}, {"leave", json::object()}};

    const json room_filter = filter.value("room", json::object());
    const auto only_rooms = string_list(room_filter, "rooms");
    const auto not_rooms = string_list(room_filter, "not_rooms");
    const bool rooms_listed = room_filter.is_object() && room_filter.contains("rooms");
    const EventFilter timeline_filter =
        EventFilter::from(room_filter.is_object() ? room_filter.value("timeline", json::object()) : json::object());
    for (const auto& [room_id, membership] : store.rooms_of(user_id)) {
      if (std::find(not_rooms.begin(), not_rooms.end(), room_id) != not_rooms.end()) continue;
      if (rooms_listed && std::find(only_rooms.begin(), only_rooms.end(), room_id) == only_rooms.end()) continue;
      const auto member_event = store.state_event(room_id, "m.room.member", user_id);
      const int64_t member_stream = member_event ? store.event(member_event->value("event_id", ""))->stream : 0;
      const bool membership_new = !since || member_stream > since->events;
      if (membership == "invite") {
        if (!membership_new) continue;
        json stripped = json::array();
        for (const auto& e : store.current_state(room_id)) {
          const std::string type = e.value("type", "");
          if (type == "m.room.create" || type == "m.room.name" || type == "m.room.join_rules" ||
              type == "m.room.avatar" || type == "m.room.canonical_alias" || type == "m.room.topic" ||
              (type == "m.room.member" && e.value("state_key", "") == user_id))
            stripped.push_back({{"type", type}, {"state_key", e.value("state_key", "")}, {"content", e["content"]},
                                {"sender", e.value("sender", "")}});
        }
        rooms["invite"][room_id] = {{"invite_state", {{"events", stripped}}}};
        anything = true;
        continue;
      }
      if (membership == "leave" || membership == "ban") {
        if (!since || !membership_new) continue;  // initial sync leaves old rooms out
        auto events = store.events_between(room_id, since->events, member_stream, limit, false);
        const auto visible = store.history_visibility(room_id, user_id);
        json timeline = json::array();
        for (const auto& e : events)
          if (visible.allows(e)) timeline.push_back(client_event(e.event));
        rooms["leave"][room_id] = {{"timeline", {{"events", timeline}, {"limited", false}}}, {"state", {{"events", json::array()}}}};
        anything = true;
        continue;
      }
      if (membership != "join") continue;

      const int64_t from = since && !membership_new ? since->events : 0;
      // Newest first, through history visibility and the timeline filter, scanning at most a
      // few pages.
      const auto visible = store.history_visibility(room_id, user_id);
      std::vector<StoredEvent> newest;
      for (int64_t up_to = now.events, pages = 0; static_cast<int>(newest.size()) <= limit && pages < 10; ++pages) {
        const auto page = store.events_between(room_id, from, up_to, std::max(limit + 1, 50), true);
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
      for (const auto& e : newest) timeline.push_back(client_event(e.event));
      json room = json::object();
      const std::string prev_batch = newest.empty() ? now.token()
                                                    : StreamPosition{newest.front().stream - 1, now.other}.token();
      room["timeline"] = {{"events", timeline}, {"limited", limited}, {"prev_batch", prev_batch}};
      // Client-Server API "/sync": state is the room's state at the start of the timeline,
      // on an initial or gappy sync; from the state groups, so it is right for that moment.
      json state = json::array();
      if (!since || limited || full_state || membership_new) {
        std::optional<std::vector<json>> at_start;
        if (newest.empty()) {
          at_start = store.current_state(room_id);
        } else {
          const auto before = store.events_between(room_id, 0, newest.front().stream - 1, 1, true);
          at_start = before.empty() ? std::vector<json>{} : store.state_after(before.front().event.value("event_id", ""));
        }
        if (!at_start) {  // events from before state groups: current state minus the timeline
          std::set<std::string> in_timeline;
          for (const auto& e : newest) in_timeline.insert(e.event.value("event_id", ""));
          at_start = std::vector<json>{};
          for (const auto& e : store.current_state(room_id))
            if (!in_timeline.count(e.value("event_id", ""))) at_start->push_back(e);
        }
        std::set<std::string> needed = {user_id};
        for (const auto& e : newest) needed.insert(e.event.value("sender", ""));
        for (const auto& e : *at_start) {
          if (lazy && e.value("type", "") == "m.room.member" && !needed.count(e.value("state_key", ""))) continue;
          state.push_back(client_event(e));
        }
      }
      room["state"] = {{"events", state}};
      json ephemeral = json::array();
      const int64_t other_since = since ? since->other : 0;
      const json receipts = store.receipts_since(room_id, other_since, user_id);
      if (!receipts.empty()) ephemeral.push_back({{"type", "m.receipt"}, {"content", receipts}});
      const auto changed = typing_positions.find(room_id);
      if (changed != typing_positions.end() && changed->second > other_since) {
        json users = json::array();
        const auto t = std::chrono::steady_clock::now();
        for (const auto& [user, until] : typing_now[room_id])
          if (until > t) users.push_back(user);
        ephemeral.push_back({{"type", "m.typing"}, {"content", {{"user_ids", users}}}});
      }
      room["ephemeral"] = {{"events", ephemeral}};
      json room_account = json::array();
      for (const auto& [rid, type, content] : store.account_data_since(user_id, other_since))
        if (rid == room_id) room_account.push_back({{"type", type}, {"content", content}});
      room["account_data"] = {{"events", room_account}};
      int joined = 0, invited = 0;
      json heroes = json::array();
      const bool want_summary = !since || limited || membership_new || full_state;
      for (const auto& e : want_summary ? store.current_state(room_id) : std::vector<json>{}) {
        if (e.value("type", "") != "m.room.member") continue;
        const auto m = e["content"].value("membership", "");
        joined += m == "join";
        invited += m == "invite";
        if ((m == "join" || m == "invite") && e.value("state_key", "") != user_id && heroes.size() < 5)
          heroes.push_back(e.value("state_key", ""));
      }
      if (want_summary)
        room["summary"] = {{"m.joined_member_count", joined}, {"m.invited_member_count", invited}, {"m.heroes", heroes}};
      room["unread_notifications"] = unread_counts(room_id, user_id);
      if (!timeline.empty() || !state.empty() || !ephemeral.empty() || !room_account.empty() || !since) {
        rooms["join"][room_id] = room;
        anything = anything || !timeline.empty() || !state.empty() || !ephemeral.empty() || !room_account.empty();
      }
    }
    json global = json::array();
    for (const auto& [rid, type, content] : store.account_data_since(user_id, since ? since->other : 0))
      if (rid.empty()) global.push_back({{"type", type}, {"content", content}});
    anything = anything || !global.empty();
    json body = {{"next_batch", now.token()},
                 {"rooms", rooms},
                 {"account_data", {{"events", global}}},
                 {"presence", {{"events", json::array()}}},
                 {"to_device", {{"events", json::array()}}},
                 {"device_one_time_keys_count", json::object()},
                 {"device_lists", {{"changed", json::array()}, {"left", json::array()}}}};
    return {body, anything || !since};
  }

  void sync(const Request& q, Reply reply) {
    auto self = shared_from_this();
    run([self, q, reply] {
      try {
        const auto session = self->authenticate(q);
        auto [body, has_news] = self->build_sync(session.user_id, q);
        const int timeout = std::clamp(std::atoi(q.query_value("timeout", "0").c_str()), 0, 120000);
        if (has_news || timeout == 0) return reply(ok(body));
        auto waiter = std::make_shared<Waiter>();
        waiter->user_id = session.user_id;
        waiter->request = q;
        waiter->reply = reply;
        waiter->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout);
        self->park(waiter);
      } catch (const Error& e) {
        reply(self->error(e.status(), e.code(), e.what()));
      } catch (const std::exception& e) {
        reply(self->error(500, errc::kMUnknown, e.what()));
      }
    });
  }

  void park(const std::shared_ptr<Waiter>& waiter) {
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

  // Re-runs a parked sync; answers it when there is news or its time is up.
  void retry(const std::shared_ptr<Waiter>& waiter, bool final) {
    if (waiter->answered) return;
    json body;
    bool has_news = false;
    std::optional<Response> failed;
    try {
      std::tie(body, has_news) = build_sync(waiter->user_id, waiter->request);
    } catch (const Error& e) {
      failed = error(e.status(), e.code(), e.what());
    } catch (const std::exception& e) {
      spdlog::error("sync for {}: {}", waiter->user_id, e.what());
      failed = error(500, errc::kMUnknown, "internal error");
    }
    if (!failed && !has_news && !final && std::chrono::steady_clock::now() < waiter->deadline) return;
    if (waiter->answered.exchange(true)) return;
    {
      std::lock_guard lock(waiters_mutex);
      waiters.remove(waiter);
    }
    waiter->reply(failed ? std::move(*failed) : ok(body));
  }

  // The registry ended this user's sessions: parked syncs hear so now, not at their timeout.
  void end_waiters(const std::string& user_id) {
    std::list<std::shared_ptr<Waiter>> ended;
    {
      std::lock_guard lock(waiters_mutex);
      for (auto it = waiters.begin(); it != waiters.end();) {
        if ((*it)->user_id == user_id) {
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

  // Wakes parked syncs. Bursts of changes coalesce into one pass over the waiters: a
  // change during a pass schedules exactly one more.
  void notify_all() {
    if (pass_queued.exchange(true)) return;
    run([self = shared_from_this()] {
      self->pass_queued = false;
      std::list<std::shared_ptr<Waiter>> current;
      {
        std::lock_guard lock(self->waiters_mutex);
        current = self->waiters;
      }
      for (const auto& w : current) self->retry(w, false);
    });
  }
  std::atomic<bool> pass_queued{false};

  Response error(int status, const std::string& code, const std::string& message) {
    json body = {{"errcode", errcode_for(status, code)}, {"error", message}};
    return cors(Response::json(body, status));
  }

  // ---- routes ----

  void add_routes(http::Router& r);
};

void ClientApi::Impl::add_routes(http::Router& r) {
  auto self = shared_from_this();
  r.set_error_formatter([self](int status, const std::string& code, const std::string& message) {
    return self->error(status, code, message);
  });
  r.set_fallback([self](const Request& q, Reply reply) {
    if (q.method == "OPTIONS") return reply(cors(Response::json(json::object())));
    reply(self->error(404, errc::kMUnrecognized, "unrecognized request: " + q.method + " " + q.path));
  });

  // Discovery (Client-Server API "Server discovery" and "API standards").
  r.add("GET", "/_matrix/client/versions", [](const Request&) {
    return ok({{"versions", {"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8"}},
               {"unstable_features", json::object()}});
  });
  r.add("GET", "/.well-known/matrix/client", [self](const Request& q) {
    const std::string host = q.header("host", self->server());
    return ok({{"m.homeserver", {{"base_url", "http://" + host}}}});
  });
  route(r, "GET", "/capabilities", [self](const Request& q) {
    self->authenticate(q);
    return ok({{"capabilities", {{"m.room_versions", {{"default", "11"}, {"available", {{"10", "stable"}, {"11", "stable"}}}}},
                                 {"m.change_password", {{"enabled", false}}},
                                 {"m.set_displayname", {{"enabled", false}}}}}});
  });

  // Login with coop credentials (m.login.password); registration stays closed.
  route(r, "GET", "/login", [](const Request&) { return ok({{"flows", {{{"type", "m.login.password"}}}}}); });
  route(r, "POST", "/login", [self](const Request& q) {
    const auto body = q.json();
    if (body.value("type", "") != "m.login.password") fail(400, errc::kMUnknown, "only m.login.password is supported");
    std::string user = body.value("user", "");
    if (body.contains("identifier") && body["identifier"].is_object()) {
      const auto& id = body["identifier"];
      if (id.value("type", "") == "m.id.user") user = id.value("user", "");
      else if (id.value("type", "") == "m.id.thirdparty" && id.value("medium", "") == "email") user = id.value("address", "");
      else fail(400, errc::kMUnknown, "unsupported identifier type");
    }
    if (!user.empty() && user[0] == '@') {
      const auto colon = user.find(':');
      if (colon == std::string::npos || user.substr(colon + 1) != self->server())
        fail(403, errc::kMForbidden, "this server only logs in its own users");
      user = localpart(user);
    }
    try {
      const auto member = auth::verify_credentials(self->runtime.home(), user, body.value("password", ""), "room",
                                                   q.remote_address);
      const std::string user_id = "@" + member.handle + ":" + self->server();
      auto [token, device] = self->store.create_session(user_id, body.value("device_id", ""),
                                                        body.value("initial_device_display_name", ""));
      return ok({{"user_id", user_id}, {"access_token", token}, {"device_id", device}, {"home_server", self->server()},
                 {"well_known", {{"m.homeserver", {{"base_url", "http://" + q.header("host", self->server())}}}}}});
    } catch (const auth::ThrottledError& e) {
      return rate_limited(e);
    } catch (const Error& e) {
      if (e.code() == errc::kBadCredentials) fail(403, errc::kMForbidden, "invalid user name or password");
      if (e.code() == errc::kMemberSuspended || e.code() == errc::kMemberRemoved) fail(403, errc::kMUserDeactivated, e.what());
      throw;
    }
  });
  route(r, "POST", "/logout", [self](const Request& q) {
    self->authenticate(q);
    self->store.delete_session(self->token_of(q));
    return ok(json::object());
  });
  route(r, "POST", "/logout/all", [self](const Request& q) {
    self->store.delete_sessions(self->authenticate(q).user_id);
    return ok(json::object());
  });
  route(r, "GET", "/account/whoami", [self](const Request& q) {
    const auto s = self->authenticate(q);
    return ok({{"user_id", s.user_id}, {"device_id", s.device_id}, {"is_guest", false}});
  });
  route(r, "GET", "/devices", [self](const Request& q) {
    return ok({{"devices", self->store.devices(self->authenticate(q).user_id)}});
  });
  route(r, "GET", "/devices/{deviceId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    for (const auto& d : self->store.devices(s.user_id))
      if (d.value("device_id", "") == q.param("deviceId")) return ok(d);
    fail(404, errc::kMNotFound, "no such device");
  });
  route(r, "PUT", "/devices/{deviceId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    if (!self->store.rename_device(s.user_id, q.param("deviceId"), q.json().value("display_name", "")))
      fail(404, errc::kMNotFound, "no such device");
    return ok(json::object());
  });
  // Client-Server API "User-interactive authentication": deleting a device asks for the
  // password again (m.login.password); without it the answer is 401 with the flows.
  route(r, "DELETE", "/devices/{deviceId}", [self](const Request& q) -> Response {
    const auto s = self->authenticate(q);
    const auto body = q.json();
    const auto auth_dict = body.value("auth", json::object());
    if (auth_dict.value("type", "") != "m.login.password") {
      return cors(Response::json({{"flows", {{{"stages", {"m.login.password"}}}}}, {"params", json::object()},
                                  {"session", "delete-" + q.param("deviceId")}}, 401));
    }
    try {
      auth::verify_credentials(self->runtime.home(), localpart(s.user_id), auth_dict.value("password", ""), "room",
                               q.remote_address);
    } catch (const auth::ThrottledError& e) {
      return rate_limited(e);
    } catch (const Error&) {
      return cors(Response::json({{"errcode", "M_FORBIDDEN"}, {"error", "invalid password"},
                                  {"flows", {{{"stages", {"m.login.password"}}}}}, {"session", "delete-" + q.param("deviceId")}}, 401));
    }
    if (!self->store.delete_device(s.user_id, q.param("deviceId"))) fail(404, errc::kMNotFound, "no such device");
    return ok(json::object());
  });
  route(r, "POST", "/register", [](const Request&) -> Response {
    fail(403, errc::kMForbidden, "registration is closed: members are added by the cooperative (coop member add)");
  });
  route(r, "POST", "/user/{userId}/filter", [self](const Request& q) {
    const auto s = self->authenticate(q);
    if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "cannot create filters for other users");
    return ok({{"filter_id", std::to_string(self->store.filter_create(s.user_id, q.json()))}});
  });
  route(r, "GET", "/user/{userId}/filter/{filterId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    auto f = self->store.filter(s.user_id, std::atoll(q.param("filterId").c_str()));
    if (!f) fail(404, errc::kMNotFound, "no such filter");
    return ok(*f);
  });

  // Profiles: display names come from the registry.
  route(r, "GET", "/profile/{userId}", [self](const Request& q) {
    const auto name = self->display_name(q.param("userId"));
    json body = json::object();
    if (!name.empty()) body["displayname"] = name;
    return ok(body);
  });
  route(r, "GET", "/profile/{userId}/displayname", [self](const Request& q) {
    return ok({{"displayname", self->display_name(q.param("userId"))}});
  });

  // Rooms.
  route(r, "POST", "/createRoom", [self](const Request& q) {
    const auto s = self->authenticate(q);
    const auto body = q.json();
    auto created = self->store.create_room(s.user_id, body);
    if (body.value("visibility", "private") == "public") self->store.set_published(created.value("room_id", ""), true);
    return ok(created);
  });
  auto join = [self](const Request& q, const std::string& target) {
    const auto s = self->authenticate(q);
    const auto room_id = self->resolve_room(target);
    if (!self->store.room_version(room_id)) fail(404, errc::kMNotFound, "no room " + room_id);
    if (self->store.membership(room_id, s.user_id) != "join") {
      json content = {{"membership", "join"}};
      const auto name = self->display_name(s.user_id);
      if (!name.empty()) content["displayname"] = name;
      self->store.send_event(room_id, s.user_id, "m.room.member", content, s.user_id);
    }
    return ok({{"room_id", room_id}});
  };
  route(r, "POST", "/join/{roomIdOrAlias}", [join](const Request& q) { return join(q, q.param("roomIdOrAlias")); });
  route(r, "POST", "/rooms/{roomId}/join", [join](const Request& q) { return join(q, q.param("roomId")); });
  auto membership_change = [self](const char* membership, bool target_from_body) {
    return [self, membership, target_from_body](const Request& q) {
      const auto s = self->authenticate(q);
      const auto body = q.json();
      const std::string target = target_from_body ? body.value("user_id", "") : s.user_id;
      if (target.empty()) fail(400, errc::kMMissingParam, "user_id is required");
      json content = {{"membership", membership}};
      if (body.contains("reason")) content["reason"] = body["reason"];
      self->store.send_event(q.param("roomId"), s.user_id, "m.room.member", content, target);
      return ok(json::object());
    };
  };
  route(r, "POST", "/rooms/{roomId}/leave", membership_change("leave", false));
  route(r, "POST", "/rooms/{roomId}/invite", membership_change("invite", true));
  route(r, "POST", "/rooms/{roomId}/kick", membership_change("leave", true));
  route(r, "POST", "/rooms/{roomId}/ban", membership_change("ban", true));
  route(r, "POST", "/rooms/{roomId}/unban", membership_change("leave", true));
  route(r, "POST", "/rooms/{roomId}/forget", [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->store.forget(q.param("roomId"), s.user_id);
    return ok(json::object());
  });
  route(r, "GET", "/joined_rooms", [self](const Request& q) {
    const auto s = self->authenticate(q);
    json rooms = json::array();
    for (const auto& [room, m] : self->store.rooms_of(s.user_id))
      if (m == "join") rooms.push_back(room);
    return ok({{"joined_rooms", rooms}});
  });

  // Events.
  route(r, "PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    // Transaction IDs make retries idempotent (Client-Server API "Transaction identifiers"),
    // scoped to the device and to the endpoint: the same id on /redact is another transaction.
    const std::string txn = "send\n" + q.param("txnId");
    if (auto existing = self->store.event_for_txn(s.user_id, s.device_id, txn)) return ok({{"event_id", *existing}});
    const auto event = self->store.send_event(q.param("roomId"), s.user_id, q.param("eventType"), q.json(),
                                              std::nullopt, s.device_id, txn);
    return ok({{"event_id", event.value("event_id", "")}});
  });
  auto put_state = [self](const Request& q) {
    const auto s = self->authenticate(q);
    const auto event = self->store.send_event(q.param("roomId"), s.user_id, q.param("eventType"), q.json(),
                                              q.param("stateKey"));
    return ok({{"event_id", event.value("event_id", "")}});
  };
  route(r, "PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", put_state);
  route(r, "PUT", "/rooms/{roomId}/state/{eventType}", put_state);
  auto get_state = [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    auto event = self->store.state_event(q.param("roomId"), q.param("eventType"), q.param("stateKey"));
    if (!event) fail(404, errc::kMNotFound, "no such state");
    return ok((*event)["content"]);
  };
  route(r, "GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", get_state);
  route(r, "GET", "/rooms/{roomId}/state/{eventType}", get_state);
  route(r, "GET", "/rooms/{roomId}/state", [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    json list = json::array();
    for (const auto& e : self->store.current_state(q.param("roomId"))) list.push_back(self->client_event(e));
    return ok(list);
  });
  route(r, "GET", "/rooms/{roomId}/event/{eventId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    auto e = self->store.event(q.param("eventId"));
    if (!e || e->event.value("room_id", "") != q.param("roomId") ||
        !self->store.history_visibility(q.param("roomId"), s.user_id).allows(*e))
      fail(404, errc::kMNotFound, "no such event");
    return ok(self->client_event(e->event));
  });
  auto members = [self](const Request& q, bool joined_only) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    json chunk = json::array(), joined = json::object();
    for (const auto& e : self->store.current_state(q.param("roomId"))) {
      if (e.value("type", "") != "m.room.member") continue;
      chunk.push_back(self->client_event(e));
      if (e["content"].value("membership", "") == "join")
        joined[e.value("state_key", "")] = {{"display_name", e["content"].value("displayname", "")}};
    }
    return joined_only ? ok({{"joined", joined}}) : ok({{"chunk", chunk}});
  };
  route(r, "GET", "/rooms/{roomId}/members", [members](const Request& q) { return members(q, false); });
  route(r, "GET", "/rooms/{roomId}/joined_members", [members](const Request& q) { return members(q, true); });
  route(r, "GET", "/rooms/{roomId}/messages", [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    const auto dir = q.query_value("dir", "b");
    if (dir != "b" && dir != "f") fail(400, errc::kMInvalidParam, "dir must be b or f");
    const bool backwards = dir == "b";
    const int limit = std::clamp(std::atoi(q.query_value("limit", "10").c_str()), 1, 1000);
    const auto now = self->store.position();
    auto from = StreamPosition::parse(q.query_value("from"));
    if (!from && !q.query_value("from").empty()) fail(400, errc::kMInvalidParam, "from is not a token of this server");
    if (!from) from = backwards ? now : StreamPosition{0, now.other};
    const auto filter_text = q.query_value("filter");
    const EventFilter filter = EventFilter::from(filter_text.empty() ? json::object() : filter_param(filter_text));
    const auto visible = self->store.history_visibility(q.param("roomId"), s.user_id);
    std::vector<StoredEvent> events;
    int64_t cursor = from->events;
    for (int pages = 0; static_cast<int>(events.size()) < limit && pages < 20; ++pages) {
      const auto page = backwards ? self->store.events_between(q.param("roomId"), 0, cursor, limit, true)
                                  : self->store.events_between(q.param("roomId"), cursor, now.events, limit, false);
      if (page.empty()) break;
      for (const auto& e : page)
        if (static_cast<int>(events.size()) < limit && visible.allows(e) && filter.matches(e.event)) events.push_back(e);
      cursor = backwards ? page.back().stream - 1 : page.back().stream;
      if (static_cast<int>(page.size()) < limit) break;
    }
    json chunk = json::array();
    for (const auto& e : events) chunk.push_back(self->client_event(e.event));
    json body = {{"chunk", chunk}, {"start", from->token()}};
    if (!events.empty() && static_cast<int>(events.size()) == limit)
      body["end"] = StreamPosition{backwards ? events.back().stream - 1 : events.back().stream, now.other}.token();
    return ok(body);
  });
  route(r, "PUT", "/rooms/{roomId}/typing/{userId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "you can only type as yourself");
    self->require_joined(q.param("roomId"), s.user_id);
    const auto body = q.json();
    {
      std::lock_guard lock(self->typing_mutex);
      const auto position = self->store.allocate_other_position();
      auto& room = self->typing[q.param("roomId")];
      if (body.value("typing", false))
        room[s.user_id] = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::clamp(body.value("timeout", 30000), 1000, 120000));
      else
        room.erase(s.user_id);
      self->typing_changed[q.param("roomId")] = position;
    }
    self->notify_all();
    return ok(json::object());
  });
  auto receipt = [self](const Request& q, const std::string& type, const std::string& event_id) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    if (type == "m.fully_read") {
      self->store.set_account_data(s.user_id, q.param("roomId"), "m.fully_read", {{"event_id", event_id}});
      return;
    }
    if (type != "m.read" && type != "m.read.private") fail(400, errc::kMInvalidParam, "unknown receipt type");
    self->store.set_receipt(q.param("roomId"), s.user_id, type, event_id);
  };
  route(r, "POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", [receipt](const Request& q) {
    receipt(q, q.param("receiptType"), q.param("eventId"));
    return ok(json::object());
  });
  route(r, "POST", "/rooms/{roomId}/read_markers", [self, receipt](const Request& q) {
    const auto body = q.json();
    if (body.contains("m.read")) receipt(q, "m.read", body.value("m.read", ""));
    if (body.contains("m.fully_read")) {
      const auto s = self->authenticate(q);
      self->store.set_account_data(s.user_id, q.param("roomId"), "m.fully_read", {{"event_id", body.value("m.fully_read", "")}});
    }
    return ok(json::object());
  });

  // Account data.
  route(r, "PUT", "/user/{userId}/account_data/{type}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "not your account data");
    self->store.set_account_data(s.user_id, "", q.param("type"), q.json());
    return ok(json::object());
  });
  route(r, "GET", "/user/{userId}/account_data/{type}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "not your account data");
    auto content = self->store.account_data(s.user_id, "", q.param("type"));
    if (!content) fail(404, errc::kMNotFound, "no account data of that type");
    return ok(*content);
  });
  route(r, "PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "not your account data");
    self->store.set_account_data(s.user_id, q.param("roomId"), q.param("type"), q.json());
    return ok(json::object());
  });
  // Push rules live in the member's account data (m.push_rules), so /sync carries every edit.
  auto rules_of = [self](const std::string& user_id) {
    auto stored = self->store.account_data(user_id, "", "m.push_rules");
    return stored && stored->contains("global") ? *stored : json{{"global", default_push_rules(user_id)}};
  };
  auto find_rule = [](json& rules, const std::string& kind, const std::string& id) -> json* {
    if (!rules["global"].contains(kind)) fail(400, errc::kMInvalidParam, "unknown push rule kind " + kind);
    for (auto& rule : rules["global"][kind])
      if (rule.value("rule_id", "") == id) return &rule;
    return nullptr;
  };
  route(r, "GET", "/pushrules/", [self, rules_of](const Request& q) { return ok(rules_of(self->authenticate(q).user_id)); });
  route(r, "GET", "/pushrules/global/", [self, rules_of](const Request& q) {
    return ok(rules_of(self->authenticate(q).user_id)["global"]);
  });
  route(r, "GET", "/pushrules/global/{kind}/{ruleId}", [self, rules_of, find_rule](const Request& q) {
    auto rules = rules_of(self->authenticate(q).user_id);
    const json* rule = find_rule(rules, q.param("kind"), q.param("ruleId"));
    if (!rule) fail(404, errc::kMNotFound, "no such push rule");
    return ok(*rule);
  });
  route(r, "PUT", "/pushrules/global/{kind}/{ruleId}", [self, rules_of, find_rule](const Request& q) {
    const auto s = self->authenticate(q);
    const auto id = q.param("ruleId"), kind = q.param("kind");
    if (!id.empty() && id[0] == '.') fail(400, errc::kMInvalidParam, "server-default rules can only be enabled or given actions");
    auto rules = rules_of(s.user_id);
    const auto body = q.json();
    if (!body.contains("actions") || !body["actions"].is_array()) fail(400, errc::kMMissingParam, "actions are required");
    json rule = {{"rule_id", id}, {"default", false}, {"enabled", true}, {"actions", body["actions"]}};
    if (kind == "override" || kind == "underride") rule["conditions"] = body.value("conditions", json::array());
    if (kind == "content") rule["pattern"] = body.value("pattern", "");
    if (json* existing = find_rule(rules, kind, id)) {
      *existing = rule;
    } else {
      // User rules come before the server defaults of their kind, the master rule excepted.
      auto& list = rules["global"][kind];
      const auto at = kind == "override" && !list.empty() && list[0].value("rule_id", "") == ".m.rule.master" ? 1 : 0;
      list.insert(list.begin() + at, rule);
    }
    self->store.set_account_data(s.user_id, "", "m.push_rules", rules);
    return ok(json::object());
  });
  route(r, "DELETE", "/pushrules/global/{kind}/{ruleId}", [self, rules_of](const Request& q) {
    const auto s = self->authenticate(q);
    if (!q.param("ruleId").empty() && q.param("ruleId")[0] == '.') fail(400, errc::kMInvalidParam, "server-default rules cannot be deleted");
    auto rules = rules_of(s.user_id);
    auto& list = rules["global"][q.param("kind")];
    const auto before = list.size();
    for (auto it = list.begin(); it != list.end(); ++it)
      if (it->value("rule_id", "") == q.param("ruleId")) {
        list.erase(it);
        break;
      }
    if (list.size() == before) fail(404, errc::kMNotFound, "no such push rule");
    self->store.set_account_data(s.user_id, "", "m.push_rules", rules);
    return ok(json::object());
  });
  for (const char* attribute : {"enabled", "actions"}) {
    const std::string name = attribute;
    route(r, "GET", "/pushrules/global/{kind}/{ruleId}/" + name, [self, rules_of, find_rule, name](const Request& q) {
      auto rules = rules_of(self->authenticate(q).user_id);
      const json* rule = find_rule(rules, q.param("kind"), q.param("ruleId"));
      if (!rule) fail(404, errc::kMNotFound, "no such push rule");
      return ok({{name, (*rule)[name]}});
    });
    route(r, "PUT", "/pushrules/global/{kind}/{ruleId}/" + name, [self, rules_of, find_rule, name](const Request& q) {
      const auto s = self->authenticate(q);
      auto rules = rules_of(s.user_id);
      json* rule = find_rule(rules, q.param("kind"), q.param("ruleId"));
      if (!rule) fail(404, errc::kMNotFound, "no such push rule");
      const auto body = q.json();
      if (!body.contains(name) || (name == "enabled" ? !body[name].is_boolean() : !body[name].is_array()))
        fail(400, errc::kMBadJson, name + " is missing or of the wrong type");
      (*rule)[name] = body[name];
      self->store.set_account_data(s.user_id, "", "m.push_rules", rules);
      return ok(json::object());
    });
  }

  // Aliases and the directory.
  route(r, "GET", "/directory/room/{roomAlias}", [self](const Request& q) {
    auto room = self->store.room_for_alias(q.param("roomAlias"));
    if (!room) fail(404, errc::kMNotFound, "no such alias");
    return ok({{"room_id", *room}, {"servers", {self->server()}}});
  });
  route(r, "PUT", "/directory/room/{roomAlias}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    const auto room_id = q.json().value("room_id", "");
    self->require_joined(room_id, s.user_id);
    self->store.add_alias(q.param("roomAlias"), room_id, s.user_id);
    return ok(json::object());
  });
  route(r, "GET", "/directory/list/room/{roomId}", [self](const Request& q) {
    if (!self->store.room_version(q.param("roomId"))) fail(404, errc::kMNotFound, "no such room");
    return ok({{"visibility", self->store.published(q.param("roomId")) ? "public" : "private"}});
  });
  route(r, "PUT", "/directory/list/room/{roomId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    const auto [mine, needed] = self->power(q.param("roomId"), s.user_id, "state_default", 50);
    if (mine < needed) fail(403, errc::kMForbidden, "your power level is too low to publish this room");
    const auto visibility = q.json().value("visibility", "");
    if (visibility != "public" && visibility != "private") fail(400, errc::kMInvalidParam, "visibility is public or private");
    self->store.set_published(q.param("roomId"), visibility == "public");
    return ok(json::object());
  });
  route(r, "GET", "/rooms/{roomId}/aliases", [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    return ok({{"aliases", self->store.aliases_of(q.param("roomId"))}});
  });
  route(r, "DELETE", "/directory/room/{roomAlias}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    const auto room = self->store.room_for_alias(q.param("roomAlias"));
    if (!room) fail(404, errc::kMNotFound, "no such alias");
    // The alias's creator, or a moderator of the room (Client-Server API "Room aliases").
    const auto [mine, needed] = self->power(*room, s.user_id, "state_default", 50);
    if (self->store.alias_creator(q.param("roomAlias")) != s.user_id && mine < needed)
      fail(403, errc::kMForbidden, "only the alias's creator or a moderator can remove it");
    self->store.remove_alias(q.param("roomAlias"));
    return ok(json::object());
  });
  route(r, "GET", "/publicRooms", [self](const Request&) {
    json chunk = json::array();
    for (const auto& room_id : self->store.public_rooms()) {
      json entry = {{"room_id", room_id}, {"world_readable", false}, {"guest_can_join", false}};
      if (auto name = self->store.state_event(room_id, "m.room.name", "")) entry["name"] = (*name)["content"].value("name", "");
      if (auto topic = self->store.state_event(room_id, "m.room.topic", "")) entry["topic"] = (*topic)["content"].value("topic", "");
      int joined = 0;
      for (const auto& e : self->store.current_state(room_id))
        joined += e.value("type", "") == "m.room.member" && e["content"].value("membership", "") == "join";
      entry["num_joined_members"] = joined;
      chunk.push_back(entry);
    }
    return ok({{"chunk", chunk}, {"total_room_count_estimate", chunk.size()}});
  });

  // Redactions, context, relations.
  route(r, "PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    const std::string txn = "redact\n" + q.param("txnId");
    if (auto existing = self->store.event_for_txn(s.user_id, s.device_id, txn)) return ok({{"event_id", *existing}});
    auto target = self->store.event(q.param("eventId"));
    if (!target || target->event.value("room_id", "") != q.param("roomId")) fail(404, errc::kMNotFound, "no such event");
    if (target->event.value("sender", "") != s.user_id) {
      const auto [mine, needed] = self->power(q.param("roomId"), s.user_id, "redact", 50);
      if (mine < needed) fail(403, errc::kMForbidden, "your power level is too low to redact others' events");
    }
    json content = {{"redacts", q.param("eventId")}};  // room version 11: in content
    const auto body = q.json();
    if (body.contains("reason")) content["reason"] = body["reason"];
    const auto event = self->store.send_event(q.param("roomId"), s.user_id, "m.room.redaction", content, std::nullopt,
                                              s.device_id, txn);
    return ok({{"event_id", event.value("event_id", "")}});
  });
  route(r, "GET", "/rooms/{roomId}/context/{eventId}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    auto target = self->store.event(q.param("eventId"));
    const auto visible = self->store.history_visibility(q.param("roomId"), s.user_id);
    if (!target || target->event.value("room_id", "") != q.param("roomId") || !visible.allows(*target))
      fail(404, errc::kMNotFound, "no such event");
    const int limit = std::clamp(std::atoi(q.query_value("limit", "10").c_str()), 0, 100);
    const auto now = self->store.position();
    auto before = self->store.events_between(q.param("roomId"), 0, target->stream - 1, limit / 2 + limit % 2, true);
    auto after = self->store.events_between(q.param("roomId"), target->stream, now.events, limit / 2, false);
    json b = json::array(), a = json::array(), state = json::array();
    for (const auto& e : before)
      if (visible.allows(e)) b.push_back(self->client_event(e.event));
    for (const auto& e : after)
      if (visible.allows(e)) a.push_back(self->client_event(e.event));
    const auto at_event = self->store.state_after(q.param("eventId"));
    for (const auto& e : at_event ? *at_event : self->store.current_state(q.param("roomId")))
      state.push_back(self->client_event(e));
    const int64_t start = before.empty() ? target->stream - 1 : before.back().stream - 1;
    const int64_t end = after.empty() ? target->stream : after.back().stream;
    return ok({{"event", self->client_event(target->event)}, {"events_before", b}, {"events_after", a}, {"state", state},
               {"start", StreamPosition{start, now.other}.token()}, {"end", StreamPosition{end, now.other}.token()}});
  });
  auto relations = [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    const int limit = std::clamp(std::atoi(q.query_value("limit", "50").c_str()), 1, 1000);
    json chunk = json::array();
    for (const auto& e : self->store.relations(q.param("roomId"), q.param("eventId"), q.param("relType"), limit)) {
      if (!q.param("eventType").empty() && e.event.value("type", "") != q.param("eventType")) continue;
      chunk.push_back(self->client_event(e.event));
    }
    return ok({{"chunk", chunk}});
  };
  for (const char* prefix : {"/_matrix/client/v1", "/_matrix/client/v3"}) {
    r.add_blocking("GET", std::string(prefix) + "/rooms/{roomId}/relations/{eventId}", run, relations);
    r.add_blocking("GET", std::string(prefix) + "/rooms/{roomId}/relations/{eventId}/{relType}", run, relations);
    r.add_blocking("GET", std::string(prefix) + "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", run, relations);
  }

  // Threads (Client-Server API "Threading"): roots with their latest reply and reply count,
  // newest activity first.
  r.add_blocking("GET", "/_matrix/client/v1/rooms/{roomId}/threads", run, [self](const Request& q) {
    const auto s = self->authenticate(q);
    self->require_joined(q.param("roomId"), s.user_id);
    const bool participated = q.query_value("include", "all") == "participated";
    struct Thread {
      json latest;
      int64_t last_stream = 0;
      int count = 0;
      bool mine = false;
    };
    std::map<std::string, Thread> threads;
    for (const auto& reply : self->store.thread_replies(q.param("roomId"), 10000)) {
      const auto root = reply.event["content"]["m.relates_to"].value("event_id", "");
      auto& t = threads[root];
      t.latest = reply.event;
      t.last_stream = reply.stream;
      ++t.count;
      t.mine = t.mine || reply.event.value("sender", "") == s.user_id;
    }
    std::vector<std::pair<int64_t, json>> roots;
    for (auto& [root_id, t] : threads) {
      auto root = self->store.event(root_id);
      if (!root) continue;
      const bool mine = t.mine || root->event.value("sender", "") == s.user_id;
      if (participated && !mine) continue;
      json event = self->client_event(root->event);
      event["unsigned"]["m.relations"]["m.thread"] = {{"latest_event", self->client_event(t.latest)}, {"count", t.count},
                                                      {"current_user_participated", mine}};
      roots.emplace_back(t.last_stream, event);
    }
    std::sort(roots.begin(), roots.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    const int limit = std::clamp(std::atoi(q.query_value("limit", "50").c_str()), 1, 500);
    json chunk = json::array();
    for (const auto& [stream, event] : roots)
      if (static_cast<int>(chunk.size()) < limit) chunk.push_back(event);
    return ok({{"chunk", chunk}});
  });

  // Tags are room account data of type m.tag (Client-Server API "Room Tagging").
  route(r, "GET", "/user/{userId}/rooms/{roomId}/tags", [self](const Request& q) {
    const auto s = self->authenticate(q);
    auto tags = self->store.account_data(s.user_id, q.param("roomId"), "m.tag").value_or(json{{"tags", json::object()}});
    return ok(tags);
  });
  route(r, "PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    auto tags = self->store.account_data(s.user_id, q.param("roomId"), "m.tag").value_or(json{{"tags", json::object()}});
    tags["tags"][q.param("tag")] = q.json();
    self->store.set_account_data(s.user_id, q.param("roomId"), "m.tag", tags);
    return ok(json::object());
  });
  route(r, "DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", [self](const Request& q) {
    const auto s = self->authenticate(q);
    auto tags = self->store.account_data(s.user_id, q.param("roomId"), "m.tag").value_or(json{{"tags", json::object()}});
    tags["tags"].erase(q.param("tag"));
    self->store.set_account_data(s.user_id, q.param("roomId"), "m.tag", tags);
    return ok(json::object());
  });

  // The user directory is the registry's active members.
  route(r, "POST", "/user_directory/search", [self](const Request& q) {
    self->authenticate(q);
    const auto body = q.json();
    const std::string term = ascii_lower(body.value("search_term", ""));
    const int limit = std::clamp(body.value("limit", 10), 1, 100);
    control::Client client(self->runtime.home().socket("member"));
    const auto members = client.get("/v1/members?status=active");
    members.throw_if_error();
    json results = json::array();
    for (const auto& m : members.json()) {
      const std::string haystack = ascii_lower(m.value("handle", "") + " " + m.value("name", ""));
      if (haystack.find(term) == std::string::npos) continue;
      results.push_back({{"user_id", "@" + m.value("handle", "") + ":" + self->server()}, {"display_name", m.value("name", "")}});
      if (static_cast<int>(results.size()) >= limit) break;
    }
    return ok({{"results", results}, {"limited", static_cast<int>(results.size()) >= limit}});
  });

  // Spaces (Client-Server API "Spaces"): a breadth-first walk of m.space.child events.
  r.add_blocking("GET", "/_matrix/client/v1/rooms/{roomId}/hierarchy", run, [self](const Request& q) {
    const auto s = self->authenticate(q);
    const std::string root = q.param("roomId");
    const auto root_membership = self->store.membership(root, s.user_id);
    if (!self->store.room_version(root)) fail(404, errc::kMNotFound, "no room " + root);
    if (root_membership != "join" && root_membership != "invite") fail(403, errc::kMForbidden, "you cannot see this Space");
    const int max_depth = std::atoi(q.query_value("max_depth", "10").c_str());
    json rooms = json::array();
    std::set<std::string> seen;
    std::vector<std::pair<std::string, int>> queue = {{root, 0}};
    for (std::size_t i = 0; i < queue.size() && rooms.size() < 200; ++i) {
      const auto [room_id, depth] = queue[i];
      if (!seen.insert(room_id).second || !self->store.room_version(room_id)) continue;
      json entry = {{"room_id", room_id}, {"world_readable", false}, {"guest_can_join", false}, {"num_joined_members", 0}};
      json children = json::array();
      std::string join_rule = "invite";
      for (const auto& e : self->store.current_state(room_id)) {
        const std::string type = e.value("type", "");
        const json& content = e["content"];
        if (type == "m.room.name") entry["name"] = content.value("name", "");
        if (type == "m.room.topic") entry["topic"] = content.value("topic", "");
        if (type == "m.room.canonical_alias") entry["canonical_alias"] = content.value("alias", "");
        if (type == "m.room.join_rules") join_rule = content.value("join_rule", "invite");
        if (type == "m.room.create" && content.contains("type")) entry["room_type"] = content["type"];
        if (type == "m.room.member" && content.value("membership", "") == "join")
          entry["num_joined_members"] = entry["num_joined_members"].get<int>() + 1;
        if (type == "m.space.child" && content.contains("via")) {
          children.push_back({{"type", type}, {"state_key", e.value("state_key", "")}, {"content", content},
                              {"sender", e.value("sender", "")}, {"origin_server_ts", e.value("origin_server_ts", 0)}});
          if (depth < max_depth) queue.emplace_back(e.value("state_key", ""), depth + 1);
        }
      }
      entry["join_rule"] = join_rule;
      entry["children_state"] = children;
      // Only rooms the member could see or join are listed (public, restricted to a Space, or theirs).
      const auto m = self->store.membership(room_id, s.user_id);
      if (room_id != root && join_rule != "public" && join_rule != "restricted" && m != "join" && m != "invite") continue;
      rooms.push_back(entry);
    }
    return ok({{"rooms", rooms}});
  });

  // Media: bytes in the blob store, metadata in room.db; downloads need a session
  // (authenticated media, spec v1.11) but the legacy unauthenticated paths still answer.
  auto upload = [self](const Request& q) {
    const auto s = self->authenticate(q);
    auto writer = self->blobs.writer();
    writer.append(q.body);
    const auto size = static_cast<int64_t>(writer.size());
    const auto blob = writer.commit();
    std::string random(18, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), static_cast<int>(random.size()));
    const std::string media_id = matrix::unpadded_base64_url(random);
    self->store.add_media(media_id, blob, q.header("content-type", "application/octet-stream"), q.query_value("filename"),
                          size, s.user_id);
    return ok({{"content_uri", "mxc://" + self->server() + "/" + media_id}});
  };
  r.add_blocking("POST", "/_matrix/media/v3/upload", run, upload);
  r.add_blocking("POST", "/_matrix/media/r0/upload", run, upload);
  auto download = [self](bool authenticated) {
    return [self, authenticated](const Request& q) {
      if (authenticated) self->authenticate(q);
      if (q.param("serverName") != self->server()) fail(404, errc::kMNotFound, "media of other servers is not fetched yet");
      auto m = self->store.media(q.param("mediaId"));
      if (!m) fail(404, errc::kMNotFound, "no such media");
      Response response = Response::bytes(200, self->blobs.read(m->blob), m->content_type);
      const std::string name = q.param("fileName").empty() ? m->filename : q.param("fileName");
      response.headers.emplace_back("Content-Disposition", name.empty() ? "inline" : "inline; filename=\"" + name + "\"");
      response.headers.emplace_back("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';");
      return cors(response);
    };
  };
  auto thumbnail = [self](bool authenticated) {
    return [self, authenticated](const Request& q) {
      if (authenticated) self->authenticate(q);
      if (q.param("serverName") != self->server()) fail(404, errc::kMNotFound, "media of other servers is not fetched yet");
      auto m = self->store.media(q.param("mediaId"));
      if (!m) fail(404, errc::kMNotFound, "no such media");
      const int width = std::atoi(q.query_value("width", "0").c_str());
      const int height = std::atoi(q.query_value("height", "0").c_str());
      if (width < 1 || height < 1) fail(400, errc::kMMissingParam, "width and height are required");
      auto thumb = make_thumbnail(self->blobs.read(m->blob), width, height, q.query_value("method", "scale") == "crop");
      if (!thumb) fail(400, errc::kMUnknown, "this media cannot be thumbnailed");
      return cors(Response::bytes(200, std::move(thumb->bytes), thumb->content_type));
    };
  };
  for (const std::string prefix : {"/_matrix/media/v3", "/_matrix/media/r0"}) {
    r.add_blocking("GET", prefix + "/download/{serverName}/{mediaId}", run, download(false));
    r.add_blocking("GET", prefix + "/download/{serverName}/{mediaId}/{fileName}", run, download(false));
    r.add_blocking("GET", prefix + "/thumbnail/{serverName}/{mediaId}", run, thumbnail(false));
    r.add_blocking("GET", prefix + "/config", run, [](const Request&) { return ok({{"m.upload.size", 50 << 20}}); });
  }
  r.add_blocking("GET", "/_matrix/client/v1/media/download/{serverName}/{mediaId}", run, download(true));
  r.add_blocking("GET", "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}", run, download(true));
  r.add_blocking("GET", "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}", run, thumbnail(true));
  r.add_blocking("GET", "/_matrix/client/v1/media/config", run, [self](const Request& q) {
    self->authenticate(q);
    return ok({{"m.upload.size", 50 << 20}});
  });
}

ClientApi::ClientApi(WorkerRuntime& runtime, RoomStore& store, http::Router& router)
    : impl_(std::make_shared<Impl>(runtime, store)) {
  impl_->add_routes(router);
  for (const auto& prefix : kPrefixes) {
    auto impl = impl_;
    router.add_async("GET", prefix + "/sync", [impl](const Request& q, Reply reply) { impl->sync(q, reply); });
  }
}

ClientApi::~ClientApi() { close(); }

void ClientApi::end_sessions(const std::string& handle) {
  const std::string user_id = "@" + handle + ":" + impl_->server();
  impl_->store.delete_sessions(user_id);
  impl_->end_waiters(user_id);
}

void ClientApi::notify() { impl_->notify_all(); }

void ClientApi::close() {
  std::list<std::shared_ptr<Waiter>> current;
  {
    std::lock_guard lock(impl_->waiters_mutex);
    current.swap(impl_->waiters);
  }
  for (const auto& w : current)
    if (!w->answered.exchange(true)) w->reply(cors(Response::json({{"next_batch", w->request.query_value("since")}, {"rooms", json::object()}})));
}

}  // namespace coop::room
