// Client-Server API "Events", "Redactions", "Event context", "Relationships", "Threading",
// "Receipts", "Fully read markers" and "Typing notifications".
#include <nlohmann/json.hpp>

#include <set>

#include <algorithm>
#include <map>
#include <optional>

#include "common/clock.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/worker_runtime.h"
#include "workers/matrix/server_acl.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/key_store.h"
#include "workers/room/event_filter.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

Response send_event(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  // Transaction IDs make retries idempotent (Client-Server API "Transaction identifiers"),
  // scoped to the device and to the endpoint: the same id on /redact is another transaction.
  // The endpoint is the whole path, room and event type included (as Synapse keys it): the
  // same id in another room is another message.
  const std::string txn = "send\n" + q.param("roomId") + "\n" + q.param("eventType") + "\n" + q.param("txnId");
  if (auto existing = api.store.event_for_txn(s.user_id, s.device_id, txn)) return ok({{"event_id", *existing}});
  const auto event = api.store.send_event(q.param("roomId"), s.user_id, q.param("eventType"), q.json(),
                                          std::nullopt, s.device_id, txn);
  return ok({{"event_id", event.value("event_id", "")}});
}

Response get_event(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_reader(q.param("roomId"), s.user_id);
  auto e = api.store.event(q.param("eventId"));
  if (!e || e->event.value("room_id", "") != q.param("roomId") ||
      !api.store.history_visibility(q.param("roomId"), s.user_id).allows(*e))
    fail(404, errc::kMNotFound, "no such event");
  return ok(api.timeline_event(*e, s));
}

Response messages(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_reader(q.param("roomId"), s.user_id);
  const auto dir = q.query_value("dir", "b");
  if (dir != "b" && dir != "f") fail(400, errc::kMInvalidParam, "dir must be b or f");
  const bool backwards = dir == "b";
  const int limit = std::clamp(std::atoi(q.query_value("limit", "10").c_str()), 1, 1000);
  const auto now = api.store.position();
  auto from = StreamPosition::parse(q.query_value("from"));
  if (!from && !q.query_value("from").empty()) fail(400, errc::kMInvalidParam, "from is not a token of this server");
  if (!from) from = backwards ? now : StreamPosition{0, now.other};
  // A member who left reads up to the moment they left: start there, not at the present,
  // so that pages of events they may not see do not end their history early.
  if (const auto m = api.store.membership(q.param("roomId"), s.user_id); m == "leave" || m == "ban")
    if (const auto member = api.store.state_event(q.param("roomId"), "m.room.member", s.user_id))
      if (const auto left = api.store.event(member->value("event_id", "")); left && from->events > left->stream)
        from->events = left->stream;
  const auto filter_text = q.query_value("filter");
  const EventFilter filter = EventFilter::from(filter_text.empty() ? json::object() : filter_param(filter_text));
  const auto visible = api.store.history_visibility(q.param("roomId"), s.user_id);
  std::vector<StoredEvent> events;
  int64_t cursor = from->events;
  for (int pages = 0; static_cast<int>(events.size()) < limit && pages < 20; ++pages) {
    const auto page = backwards ? api.store.events_between(q.param("roomId"), 0, cursor, limit, true)
                                : api.store.events_between(q.param("roomId"), cursor, now.events, limit, false);
    if (page.empty()) break;
    for (const auto& e : page)
      if (static_cast<int>(events.size()) < limit && visible.allows(e) && filter.matches(e.event)) events.push_back(e);
    cursor = backwards ? page.back().stream - 1 : page.back().stream;
    if (static_cast<int>(page.size()) < limit) break;
  }
  json chunk = json::array();
  for (const auto& e : events) chunk.push_back(api.timeline_event(e, s));
  json body = {{"chunk", chunk}, {"start", from->token()}};
  // Client-Server API "Lazy-loading room members": the member events of the chunk's senders.
  const json filter_json = filter_text.empty() ? json::object() : filter_param(filter_text);
  if (filter_json.is_object() && filter_json.value("lazy_load_members", json(false)) == json(true)) {
    std::set<std::string> senders;
    for (const auto& e : events) senders.insert(e.event.value("sender", ""));
    json state = json::array();
    for (const auto& sender : senders)
      if (auto member = api.store.state_event(q.param("roomId"), "m.room.member", sender))
        state.push_back(api.client_event(*member));
    body["state"] = state;
  }
  if (!events.empty() && static_cast<int>(events.size()) == limit)
    body["end"] = StreamPosition{backwards ? events.back().stream - 1 : events.back().stream, now.other}.token();
  return ok(body);
}

Response typing(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "you can only type as yourself");
  api.require_joined(q.param("roomId"), s.user_id);
  const auto body = q.json();
  {
    std::lock_guard lock(api.typing_mutex);
    const auto position = api.store.allocate_other_position();
    auto& room = api.typing[q.param("roomId")];
    if (body.value("typing", false))
      room[s.user_id] = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::clamp(body.value("timeout", 30000), 1000, 120000));
    else
      room.erase(s.user_id);
    api.typing_changed[q.param("roomId")] = position;
  }
  StoreChange change;
  change.rooms.insert(q.param("roomId"));
  api.notify(change);
  api.send_edu(q.param("roomId"), {{"edu_type", "m.typing"},
                                   {"content", {{"room_id", q.param("roomId")}, {"user_id", s.user_id}, {"typing", body.value("typing", false)}}}});
  return ok(json::object());
}

void set_receipt(ClientApi::Impl& api, const Request& q, const std::string& type, const std::string& event_id,
                 const std::string& thread_id = {}) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  if (type == "m.fully_read") {
    if (!thread_id.empty()) fail(400, errc::kMInvalidParam, "m.fully_read markers are not threaded");
    api.store.set_account_data(s.user_id, q.param("roomId"), "m.fully_read", {{"event_id", event_id}});
    return;
  }
  if (type != "m.read" && type != "m.read.private") fail(400, errc::kMInvalidParam, "unknown receipt type");
  api.store.set_receipt(q.param("roomId"), s.user_id, type, event_id, thread_id);
  if (type != "m.read") return;  // private receipts stay here
  json data = {{"ts", unix_millis()}};
  if (!thread_id.empty()) data["thread_id"] = thread_id;
  api.send_edu(q.param("roomId"),
               {{"edu_type", "m.receipt"},
                {"content", {{q.param("roomId"), {{"m.read", {{s.user_id, {{"event_ids", json::array({event_id})}, {"data", data}}}}}}}}}});
}

// Client-Server API "Threaded read receipts": thread_id is "main" or the root of a thread the
// event belongs to (the root itself or an m.thread reply to it); anything else is refused.
std::string receipt_thread(ClientApi::Impl& api, const Request& q) {
  const auto body = q.body.empty() ? json::object() : q.json();
  if (!body.is_object() || !body.contains("thread_id")) return {};
  const auto& thread = body["thread_id"];
  if (!thread.is_string() || thread.get_ref<const std::string&>().empty())
    fail(400, errc::kMInvalidParam, "thread_id must be a non-empty string");
  const auto& id = thread.get_ref<const std::string&>();
  if (id == "main") return id;
  const auto event = api.store.event(q.param("eventId"));
  bool related = q.param("eventId") == id;
  if (event && !related) {
    const auto& content = event->event.value("content", json::object());
    const auto relates = content.is_object() ? content.value("m.relates_to", json::object()) : json::object();
    related = relates.is_object() && relates.value("rel_type", "") == "m.thread" && relates.value("event_id", "") == id;
  }
  if (!related) fail(400, errc::kMInvalidParam, "the event is not in that thread");
  return id;
}

Response receipt(ClientApi::Impl& api, const Request& q) {
  set_receipt(api, q, q.param("receiptType"), q.param("eventId"), receipt_thread(api, q));
  return ok(json::object());
}

// Client-Server API "Fully read markers": only a member of the room sets them, and every
// request says who it is, even one that sets nothing.
Response read_markers(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  const auto body = q.json();
  if (body.contains("m.read")) set_receipt(api, q, "m.read", body.value("m.read", ""));
  if (body.contains("m.read.private")) set_receipt(api, q, "m.read.private", body.value("m.read.private", ""));
  if (body.contains("m.fully_read")) set_receipt(api, q, "m.fully_read", body.value("m.fully_read", ""));
  return ok(json::object());
}

Response redact(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const std::string txn = "redact\n" + q.param("roomId") + "\n" + q.param("eventId") + "\n" + q.param("txnId");
  if (auto existing = api.store.event_for_txn(s.user_id, s.device_id, txn)) return ok({{"event_id", *existing}});
  auto target = api.store.event(q.param("eventId"));
  if (!target || target->event.value("room_id", "") != q.param("roomId")) fail(404, errc::kMNotFound, "no such event");
  if (target->event.value("sender", "") != s.user_id) {
    const auto [mine, needed] = api.power(q.param("roomId"), s.user_id, "redact", 50);
    if (mine < needed) fail(403, errc::kMForbidden, "your power level is too low to redact others' events");
  }
  json content = {{"redacts", q.param("eventId")}};  // room version 11: in content
  const auto body = q.json();
  if (body.contains("reason")) content["reason"] = body["reason"];
  const auto event = api.store.send_event(q.param("roomId"), s.user_id, "m.room.redaction", content, std::nullopt,
                                          s.device_id, txn);
  return ok({{"event_id", event.value("event_id", "")}});
}

Response context(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_reader(q.param("roomId"), s.user_id);
  auto target = api.store.event(q.param("eventId"));
  const auto visible = api.store.history_visibility(q.param("roomId"), s.user_id);
  if (!target || target->event.value("room_id", "") != q.param("roomId") || !visible.allows(*target))
    fail(404, errc::kMNotFound, "no such event");
  const int limit = std::clamp(std::atoi(q.query_value("limit", "10").c_str()), 0, 100);
  const auto now = api.store.position();
  auto before = api.store.events_between(q.param("roomId"), 0, target->stream - 1, limit / 2 + limit % 2, true);
  auto after = api.store.events_between(q.param("roomId"), target->stream, now.events, limit / 2, false);
  json b = json::array(), a = json::array(), state = json::array();
  for (const auto& e : before)
    if (visible.allows(e)) b.push_back(api.timeline_event(e, s));
  for (const auto& e : after)
    if (visible.allows(e)) a.push_back(api.timeline_event(e, s));
  const auto at_event = api.store.state_after(q.param("eventId"));
  for (const auto& e : at_event ? *at_event : api.store.current_state(q.param("roomId")))
    state.push_back(api.client_event(e));
  const int64_t start = before.empty() ? target->stream - 1 : before.back().stream - 1;
  const int64_t end = after.empty() ? target->stream : after.back().stream;
  return ok({{"event", api.timeline_event(*target, s)}, {"events_before", b}, {"events_after", a}, {"state", state},
             {"start", StreamPosition{start, now.other}.token()}, {"end", StreamPosition{end, now.other}.token()}});
}

Response relations(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  const int limit = std::clamp(std::atoi(q.query_value("limit", "50").c_str()), 1, 1000);
  json chunk = json::array();
  for (const auto& e : api.store.relations(q.param("roomId"), q.param("eventId"), q.param("relType"), limit)) {
    if (!q.param("eventType").empty() && e.event.value("type", "") != q.param("eventType")) continue;
    chunk.push_back(api.client_event(e.event));
  }
  return ok({{"chunk", chunk}});
}

// Threads (Client-Server API "Threading"): roots with their latest reply and reply count,
// newest activity first.
Response threads(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  const bool participated = q.query_value("include", "all") == "participated";
  struct Thread {
    json latest;
    int64_t last_stream = 0;
    int count = 0;
    bool mine = false;
  };
  std::map<std::string, Thread> threads;
  for (const auto& reply : api.store.thread_replies(q.param("roomId"), 10000)) {
    const auto root = reply.event["content"]["m.relates_to"].value("event_id", "");
    auto& t = threads[root];
    t.latest = reply.event;
    t.last_stream = reply.stream;
    ++t.count;
    t.mine = t.mine || reply.event.value("sender", "") == s.user_id;
  }
  std::vector<std::pair<int64_t, json>> roots;
  for (auto& [root_id, t] : threads) {
    auto root = api.store.event(root_id);
    if (!root) continue;
    const bool mine = t.mine || root->event.value("sender", "") == s.user_id;
    if (participated && !mine) continue;
    json event = api.client_event(root->event);
    event["unsigned"]["m.relations"]["m.thread"] = {{"latest_event", api.client_event(t.latest)}, {"count", t.count},
                                                    {"current_user_participated", mine}};
    roots.emplace_back(t.last_stream, event);
  }
  std::sort(roots.begin(), roots.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const int limit = std::clamp(std::atoi(q.query_value("limit", "50").c_str()), 1, 500);
  json chunk = json::array();
  for (const auto& [stream, event] : roots)
    if (static_cast<int>(chunk.size()) < limit) chunk.push_back(event);
  return ok({{"chunk", chunk}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

// Relations and threads are newer than r0: relations answer under v1, where the spec puts
// them, and under v3; threads under v1 only.
constexpr ClientRoute kEventTable[] = {
    {"PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", Mount::kV3AndR0, Run::kBlocking, send_event, "send a message event"},
    {"GET", "/rooms/{roomId}/event/{eventId}", Mount::kV3AndR0, Run::kBlocking, get_event, "one event"},
    {"GET", "/rooms/{roomId}/messages", Mount::kV3AndR0, Run::kBlocking, messages, "a page of the timeline"},
    {"PUT", "/rooms/{roomId}/typing/{userId}", Mount::kV3AndR0, Run::kBlocking, typing, "start or stop typing"},
    {"POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", Mount::kV3AndR0, Run::kBlocking, receipt, "send a receipt"},
    {"POST", "/rooms/{roomId}/read_markers", Mount::kV3AndR0, Run::kBlocking, read_markers, "set the read and fully-read markers"},
    {"PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", Mount::kV3AndR0, Run::kBlocking, redact, "redact an event"},
    {"GET", "/rooms/{roomId}/context/{eventId}", Mount::kV3AndR0, Run::kBlocking, context, "the events around one event"},
    {"GET", "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}", Mount::kExact, Run::kBlocking, relations, "related events"},
    {"GET", "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}", Mount::kExact, Run::kBlocking, relations, "related events, by relation type"},
    {"GET", "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", Mount::kExact, Run::kBlocking, relations, "related events, by relation and event type"},
    {"GET", "/_matrix/client/v3/rooms/{roomId}/relations/{eventId}", Mount::kExact, Run::kBlocking, relations, "related events"},
    {"GET", "/_matrix/client/v3/rooms/{roomId}/relations/{eventId}/{relType}", Mount::kExact, Run::kBlocking, relations, "related events, by relation type"},
    {"GET", "/_matrix/client/v3/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", Mount::kExact, Run::kBlocking, relations, "related events, by relation and event type"},
    {"GET", "/_matrix/client/v1/rooms/{roomId}/threads", Mount::kExact, Run::kBlocking, threads, "the room's threads, latest activity first"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kEventRoutes = kEventTable;

namespace {

// Server-Server API "Send-to-device messaging": an m.direct_to_device EDU from one of the
// origin's users to devices of ours ("*" for all of a user's devices). Its message_id makes a
// repeated one a no-op, as a client's transaction ID does.
template <typename FromOrigin>
void apply_remote_to_device(ClientApi::Impl& api, const json& content, const FromOrigin& from_origin) {
  constexpr std::size_t kMaxIdBytes = 255, kMaxContentBytes = 65536, kMaxRecipients = 10000;
  const auto text = [&content](const char* key) {
    const auto it = content.find(key);
    return it != content.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const auto sender = text("sender"), type = text("type"), message_id = text("message_id");
  if (!from_origin(sender) || type.empty() || type.size() > kMaxIdBytes || message_id.empty() || message_id.size() > kMaxIdBytes)
    return;
  const auto messages = content.find("messages");
  if (messages == content.end() || !messages->is_object()) return;
  std::vector<KeyStore::ToDevice> queued;
  for (const auto& [user_id, devices] : messages->items()) {
    if (!api.is_local_user(user_id) || !devices.is_object()) continue;
    std::vector<std::string> known;
    for (const auto& d : api.store.devices(user_id)) known.push_back(d.value("device_id", ""));
    for (const auto& [device_id, body] : devices.items()) {
      if (!body.is_object() || body.dump().size() > kMaxContentBytes) continue;
      for (const auto& device : known)
        if ((device_id == "*" || device_id == device) && queued.size() < kMaxRecipients) queued.push_back({user_id, device, body});
    }
  }
  // The sender's device is not named over federation: ("" , message_id) is the transaction.
  api.keys.send_to_device(sender, "", message_id, type, queued);
}

}  // namespace

// Server-Server API "Typing Notifications", "Receipts", "Send-to-device messaging" and "Device
// Management": what another server says of its own users (typing and receipts only in rooms
// they are joined to); anything else is dropped.
void ClientApi::Impl::apply_remote_edus(const std::string& origin, const json& edus) {
  if (!edus.is_array()) return;
  const auto from_origin = [&origin](const std::string& user_id) {
    const auto colon = user_id.find(':');
    return !user_id.empty() && user_id[0] == '@' && colon != std::string::npos && user_id.substr(colon + 1) == origin;
  };
  // Typing and receipts concern a room: its server ACL may shut the origin out of it.
  const auto acl_admits = [this, &origin](const std::string& room_id) {
    const auto acl = store.state_event(room_id, "m.room.server_acl", "");
    return !acl || matrix::server_acl_allows(acl->value("content", json()), origin);
  };
  StoreChange change;
  for (const auto& edu : edus) {
    if (!edu.is_object() || !edu.contains("content") || !edu["content"].is_object()) continue;
    const auto& content = edu["content"];
    const std::string type = edu.contains("edu_type") && edu["edu_type"].is_string() ? edu["edu_type"].get<std::string>() : "";
    if (type == "m.typing") {
      const auto text = [&content](const char* key) {
        return content.contains(key) && content[key].is_string() ? content[key].get<std::string>() : std::string();
      };
      const std::string room_id = text("room_id"), user_id = text("user_id");
      if (!from_origin(user_id) || store.membership(room_id, user_id) != "join" || !acl_admits(room_id)) continue;
      const bool on = content.contains("typing") && content["typing"].is_boolean() && content["typing"].get<bool>();
      std::lock_guard lock(typing_mutex);
      auto& room = typing[room_id];
      // Other servers send no timeout: their user types for 30 s unless they say it stopped.
      if (on)
        room[user_id] = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      else
        room.erase(user_id);
      typing_changed[room_id] = store.allocate_other_position();
      change.rooms.insert(room_id);
    } else if (type == "m.receipt") {
      for (const auto& [room_id, kinds] : content.items()) {
        if (!kinds.is_object() || !kinds.contains("m.read") || !kinds["m.read"].is_object() || !acl_admits(room_id)) continue;
        for (const auto& [user_id, receipt] : kinds["m.read"].items()) {
          if (!from_origin(user_id) || !receipt.is_object() || store.membership(room_id, user_id) != "join") continue;
          const auto ids = receipt.contains("event_ids") ? receipt["event_ids"] : json();
          if (!ids.is_array() || ids.empty() || !ids[0].is_string()) continue;
          const auto event = store.event(ids[0].get<std::string>());
          if (!event || event->event.value("room_id", "") != room_id) continue;
          std::string thread;
          if (receipt.contains("data") && receipt["data"].is_object() && receipt["data"].contains("thread_id") &&
              receipt["data"]["thread_id"].is_string())
            thread = receipt["data"]["thread_id"];
          store.set_receipt(room_id, user_id, "m.read", ids[0].get<std::string>(), thread);
          change.rooms.insert(room_id);
        }
      }
    } else if (type == "m.direct_to_device") {
      apply_remote_to_device(*this, content, from_origin);
    } else if (type == "m.device_list_update" || type == "m.signing_key_update") {
      // Server-Server API "Device Management": we keep no copy of other servers' device lists
      // (a client's keys query asks their server), so an update only tells our members who
      // share a room with the user to ask again.
      const auto it = content.find("user_id");
      if (it == content.end() || !it->is_string() || !from_origin(it->get<std::string>())) continue;
      const auto user_id = it->get<std::string>();
      const auto sharing = store.users_sharing_rooms(user_id);
      if (std::any_of(sharing.begin(), sharing.end(), [this](const std::string& u) { return is_local_user(u); }))
        keys.remote_device_list_changed(user_id);
    }
  }
  if (!change.empty()) notify(change);
}

void ClientApi::Impl::send_edu(const std::string& room_id, json edu) {
  if (store.remote_servers_in(room_id).empty()) return;
  run([socket = runtime.home().socket("federate"), body = json{{"room_id", room_id}, {"edu", std::move(edu)}}.dump()] {
    try {
      control::Client(socket).request("POST", "/v1/outbound/edu", body, std::chrono::seconds(5));
    } catch (const std::exception&) {
      // Typing and receipts are ephemeral: with federation down they are not kept.
    }
  });
}

}  // namespace coop::room
