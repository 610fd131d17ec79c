// Simplified sliding sync (MSC4186, POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync)
// in the form Synapse serves and Element X and matrix-js-sdk speak: `pos` and `timeout` in the
// query, lists with inclusive `ranges`, `required_state` as [type, state_key] pairs, and the
// to_device, e2ee, account_data, receipts and typing extensions. Nothing a request asks for
// is kept for the next (clients send their lists every time); what a connection was sent is:
// each position stands for a stream token and, per room, how far the room was sent, in
// room.db, so positions survive a restart and a retried request gets the same answer.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "common/digest.h"
#include "common/error.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/key_store.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

using http::Reply;
using http::Request;
using http::Response;
using nlohmann::json;

namespace {

constexpr int kMaxTimelineLimit = 1000;  // as Synapse
constexpr std::size_t kMaxLists = 100;
constexpr std::size_t kMaxRanges = 100;
constexpr std::size_t kMaxSubscriptions = 1000;
constexpr std::size_t kMaxConnId = 64;
constexpr int kToDeviceLimit = 100;
constexpr int kMaxTimeoutMs = 120000;
// What one request may ask: required_state pairs per list or subscription, entries per
// filter array, and the events all its rooms' timelines carry together (rooms past that come
// with the next answer, which is then immediate).
constexpr std::size_t kMaxRequiredState = 100;
constexpr std::size_t kMaxFilterEntries = 100;
constexpr int kMaxEventsPerAnswer = 5000;

// required_state as asked: [type, state_key] pairs, "*" for any type or key, "$ME" for the
// user's own key, ["m.room.member", "$LAZY"] for the members the timeline needs.
struct RequiredState {
  bool everything = false;
  std::set<std::string> whole_types;
  std::set<std::pair<std::string, std::string>> exact;
  bool lazy = false;

  void add(const json& pairs, const std::string& me) {
    if (!pairs.is_array()) return;
    if (pairs.size() > kMaxRequiredState) fail(400, errc::kMInvalidParam, "at most 100 required_state entries");
    for (const auto& pair : pairs) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) continue;
      const std::string type = pair[0], key = pair[1];
      if (type.size() > 255 || key.size() > 255) fail(400, errc::kMInvalidParam, "a required_state type or key over 255 bytes");
      if (type == "*") everything = true;  // ["*", key] too: more than asked is allowed
      else if (key == "*") whole_types.insert(type);
      else if (type == "m.room.member" && key == "$LAZY") lazy = true;
      else exact.insert({type, key == "$ME" ? me : key});
    }
  }
  void add(const RequiredState& other) {
    everything = everything || other.everything;
    whole_types.insert(other.whole_types.begin(), other.whole_types.end());
    exact.insert(other.exact.begin(), other.exact.end());
    lazy = lazy || other.lazy;
  }
  // Equal for the same request, whatever order it listed its pairs in (a digest: it is kept
  // per room with each position).
  std::string signature() const {
    std::string out = everything ? "*" : "";
    for (const auto& type : whole_types) out += "|" + type;
    out += "|";
    for (const auto& [type, key] : exact) out += "|" + type + "\x1f" + key;
    return sha256_hex(out + (lazy ? "|$LAZY" : "")).substr(0, 16);
  }
  bool wants(const std::string& type, const std::string& key, const std::set<std::string>& lazy_members) const {
    if (everything || whole_types.count(type) || exact.count({type, key})) return true;
    return lazy && type == "m.room.member" && lazy_members.count(key);
  }
};

struct RoomConfig {
  RequiredState state;
  int timeline_limit = 0;
  void add(const RoomConfig& other) {
    state.add(other.state);
    timeline_limit = std::max(timeline_limit, other.timeline_limit);
  }
};

RoomConfig parse_config(const json& body, const std::string& me) {
  RoomConfig config;
  if (!body.is_object()) return config;
  config.state.add(body.value("required_state", json::array()), me);
  const auto limit = body.value("timeline_limit", json(0));
  if (limit.is_number_integer()) config.timeline_limit = std::clamp(limit.get<int64_t>(), int64_t{0}, int64_t{kMaxTimelineLimit});
  return config;
}

struct ListSpec {
  std::string name;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  RoomConfig config;
  json filters = json::object();
};

// What one extension asks: on or off, and which rooms (lists' and subscriptions' names, "*").
struct ExtensionScope {
  bool enabled = false;
  json lists = json::array({"*"});
  json rooms = json::array({"*"});
};

ExtensionScope scope_of(const json& extensions, const char* name) {
  ExtensionScope scope;
  if (!extensions.is_object() || !extensions.contains(name) || !extensions[name].is_object()) return scope;
  const auto& e = extensions[name];
  scope.enabled = e.value("enabled", json(false)) == json(true);
  if (e.contains("lists") && e["lists"].is_array()) scope.lists = e["lists"];
  if (e.contains("rooms") && e["rooms"].is_array()) scope.rooms = e["rooms"];
  return scope;
}

bool names(const json& list, const std::string& name) {
  for (const auto& n : list)
    if (n == "*" || n == name) return true;
  return false;
}

std::set<std::string> direct_rooms(RoomStore& store, const std::string& user_id) {
  std::set<std::string> out;
  const auto direct = store.account_data(user_id, "", "m.direct");
  if (direct && direct->is_object())
    for (const auto& [user, rooms] : direct->items())
      if (rooms.is_array())
        for (const auto& r : rooms)
          if (r.is_string()) out.insert(r.get<std::string>());
  return out;
}

// The list filters (MSC4186 "Filters"), all of them together; absent ones let every room by.
class RoomFilter {
 public:
  RoomFilter(RoomStore& store, const std::string& user_id, const std::set<std::string>& dms)
      : store_(store), user_id_(user_id), dms_(dms) {}

  // Throws 400 for filter arrays over kMaxFilterEntries.
  static void check(const json& filters) {
    if (!filters.is_object()) return;
    for (const char* name : {"room_types", "not_room_types", "spaces", "tags", "not_tags"})
      if (filters.contains(name) && filters[name].is_array() && filters[name].size() > kMaxFilterEntries)
        fail(400, errc::kMInvalidParam, std::string("at most 100 entries in filters.") + name);
  }

  bool admits(const RoomStore::ListedRoom& room, const json& filters) {
    if (!filters.is_object()) return true;
    const auto flag = [&](const char* name) -> std::optional<bool> {
      const auto it = filters.find(name);
      if (it == filters.end() || !it->is_boolean()) return std::nullopt;
      return it->get<bool>();
    };
    if (const auto dm = flag("is_dm"); dm && *dm != (dms_.count(room.room_id) > 0)) return false;
    if (const auto invite = flag("is_invite"); invite && *invite != (room.membership == "invite")) return false;
    if (const auto encrypted = flag("is_encrypted"); encrypted && *encrypted != is_encrypted(room.room_id)) return false;
    const auto type_in = [&](const json& types) {
      for (const auto& t : types)
        if ((t.is_null() && room.room_type.empty()) || (t.is_string() && t.get<std::string>() == room.room_type)) return true;
      return false;
    };
    if (filters.contains("room_types") && filters["room_types"].is_array() && !type_in(filters["room_types"])) return false;
    if (filters.contains("not_room_types") && filters["not_room_types"].is_array() && type_in(filters["not_room_types"])) return false;
    if (filters.contains("spaces") && filters["spaces"].is_array() && !in_spaces(room.room_id, filters["spaces"])) return false;
    const bool tags_asked = filters.contains("tags") && filters["tags"].is_array();
    const bool not_tags_asked = filters.contains("not_tags") && filters["not_tags"].is_array();
    if (tags_asked || not_tags_asked) {
      const auto& tags = tags_of(room.room_id);
      const auto any_of = [&](const json& wanted) {
        for (const auto& t : wanted)
          if (t.is_string() && tags.count(t.get<std::string>())) return true;
        return false;
      };
      if (not_tags_asked && any_of(filters["not_tags"])) return false;
      if (tags_asked && !any_of(filters["tags"])) return false;
    }
    return true;
  }

 private:
  // Each room's answers are read once per request, whatever number of lists ask.
  bool is_encrypted(const std::string& room_id) {
    auto [it, fresh] = encrypted_.try_emplace(room_id, false);
    if (fresh) {
      const auto e = store_.state_event(room_id, "m.room.encryption", "");
      it->second = e && e->contains("content") && (*e)["content"].is_object() && (*e)["content"].contains("algorithm") &&
                   !(*e)["content"]["algorithm"].is_null();
    }
    return it->second;
  }
  // The rooms a Space lists as its children (m.space.child with a `via`), per Space asked.
  bool in_spaces(const std::string& room_id, const json& spaces) {
    for (const auto& space : spaces) {
      if (!space.is_string()) continue;
      auto [it, fresh] = children_.try_emplace(space.get<std::string>());
      if (fresh && store_.membership(it->first, user_id_) == "join")
        for (const auto& e : store_.current_state(it->first, [](const std::string& type, const std::string&) {
               return type == "m.space.child";
             }))
          if (e.contains("content") && e["content"].is_object() && e["content"].contains("via") && e["content"]["via"].is_array() &&
              !e["content"]["via"].empty())
            it->second.insert(e.value("state_key", ""));
      if (it->second.count(room_id)) return true;
    }
    return false;
  }
  const std::set<std::string>& tags_of(const std::string& room_id) {
    auto [it, fresh] = tags_.try_emplace(room_id);
    if (fresh) {
      const auto tag = store_.account_data(user_id_, room_id, "m.tag");
      if (tag && tag->is_object() && tag->contains("tags") && (*tag)["tags"].is_object())
        for (const auto& [name, value] : (*tag)["tags"].items()) it->second.insert(name);
    }
    return it->second;
  }

  RoomStore& store_;
  const std::string& user_id_;
  const std::set<std::string>& dms_;
  std::map<std::string, std::set<std::string>> children_;
  std::map<std::string, bool> encrypted_;
  std::map<std::string, std::set<std::string>> tags_;
};

// The rooms a list may show: every membership but leaves, except a kick or a ban, and a
// leave of the user's own since the connection's last position (so the client hears of it).
// A leave whose event is not a leave (an invitation from another server declined here) is
// the user's own.
bool listable(const RoomStore::ListedRoom& room, const std::string& user_id, const std::optional<StreamPosition>& since) {
  if (room.membership == "join" || room.membership == "invite" || room.membership == "knock" || room.membership == "ban")
    return true;
  if (room.membership != "leave") return false;
  const bool own = room.member_sender == user_id || room.member_event_membership != "leave";
  return !own || (since && room.member_stream > since->events);
}

// Where a room sorts: its latest event, or for those the user is not in, their membership's.
int64_t recency(const RoomStore::ListedRoom& room) {
  return room.membership == "join" ? std::max(room.latest, room.member_stream) : room.member_stream;
}

}  // namespace

std::vector<RoomStore::ListedRoom> ClientApi::Impl::room_listing(const std::string& user_id, int64_t up_to) {
  constexpr std::size_t kMaxListings = 10000;  // users; past that the cache starts over
  Listing listing;
  {
    std::lock_guard lock(listings_mutex);
    if (const auto it = listings.find(user_id); it != listings.end()) listing = it->second;
  }
  const auto changes = store.listing_changes(user_id, listing.at);
  if (listing.at == 0 || changes.memberships != listing.memberships || changes.rooms.size() > 64) {
    listing.rooms = store.listed_rooms(user_id);
  } else {
    std::erase_if(listing.rooms, [&](const auto& r) { return changes.rooms.count(r.room_id) > 0; });
    for (const auto& room_id : changes.rooms)
      for (auto& room : store.listed_rooms(user_id, room_id)) listing.rooms.push_back(std::move(room));
  }
  listing.at = up_to;
  listing.memberships = changes.memberships;
  std::lock_guard lock(listings_mutex);
  if (listings.size() >= kMaxListings) listings.clear();
  auto& kept = listings[user_id];
  if (kept.at <= listing.at) kept = listing;
  return std::move(listing.rooms);
}

std::pair<json, bool> ClientApi::Impl::build_sliding_sync(const Session& session, const json& body, const std::string& pos,
                                                          bool commit) {
  const std::string& user_id = session.user_id;
  if (!body.is_object()) fail(400, errc::kMBadJson, "the body is a JSON object");
  std::string conn_id;
  if (body.contains("conn_id")) {
    if (!body["conn_id"].is_string() || body["conn_id"].get_ref<const std::string&>().size() > kMaxConnId)
      fail(400, errc::kMInvalidParam, "conn_id is a string of at most 64 bytes");
    conn_id = body["conn_id"];
  }
  // The connection's last position: what it was sent, and from when.
  std::optional<RoomStore::SlidingPosition> previous;
  std::optional<StreamPosition> since;
  if (!pos.empty()) {
    int64_t id = 0;
    try {
      id = page_token(pos, "pos", 18);
    } catch (const Error&) {
      fail(400, "M_UNKNOWN_POS", "unknown position");
    }
    previous = store.sliding_position(user_id, session.device_id, conn_id, id);
    if (!previous) fail(400, "M_UNKNOWN_POS", "unknown position");
    since = StreamPosition::parse(previous->token);
    if (!since) fail(400, "M_UNKNOWN_POS", "unknown position");
  }
  const auto moment = sync_moment();
  const StreamPosition& now = moment.now;

  // Lists and subscriptions as asked.
  std::vector<ListSpec> lists;
  if (body.contains("lists") && body["lists"].is_object()) {
    if (body["lists"].size() > kMaxLists) fail(400, errc::kMInvalidParam, "at most 100 lists");
    for (const auto& [name, spec] : body["lists"].items()) {
      if (!spec.is_object() || name.size() > 64) fail(400, errc::kMInvalidParam, "a list is an object with a short name");
      ListSpec list;
      list.name = name;
      list.config = parse_config(spec, user_id);
      if (spec.contains("filters") && spec["filters"].is_object()) list.filters = spec["filters"];
      RoomFilter::check(list.filters);
      if (spec.contains("ranges")) {
        if (!spec["ranges"].is_array()) fail(400, errc::kMInvalidParam, "ranges is a list of [start, end]");
        if (spec["ranges"].size() > kMaxRanges) fail(400, errc::kMInvalidParam, "at most 100 ranges a list");
        for (const auto& range : spec["ranges"]) {
          if (!range.is_array() || range.size() != 2 || !range[0].is_number_integer() || !range[1].is_number_integer() ||
              range[0].get<int64_t>() < 0 || range[1].get<int64_t>() < range[0].get<int64_t>())
            fail(400, errc::kMInvalidParam, "a range is [start, end] with 0 <= start <= end");
          list.ranges.emplace_back(range[0].get<int64_t>(), range[1].get<int64_t>());
        }
      }
      lists.push_back(std::move(list));
    }
  }
  std::map<std::string, RoomConfig> subscriptions;
  if (body.contains("room_subscriptions") && body["room_subscriptions"].is_object()) {
    if (body["room_subscriptions"].size() > kMaxSubscriptions) fail(400, errc::kMInvalidParam, "at most 1000 room subscriptions");
    for (const auto& [room_id, spec] : body["room_subscriptions"].items()) subscriptions[room_id] = parse_config(spec, user_id);
  }
  const json extensions = body.value("extensions", json::object());

  // The rooms, filtered and sorted per list; the windows the ranges cut.
  std::vector<RoomStore::ListedRoom> listed;
  std::map<std::string, const RoomStore::ListedRoom*> by_id;
  const auto all_rooms = room_listing(user_id, now.events);
  for (const auto& room : all_rooms)
    if (listable(room, user_id, since)) listed.push_back(room);
  std::sort(listed.begin(), listed.end(), [](const auto& a, const auto& b) {
    return recency(a) != recency(b) ? recency(a) > recency(b) : a.room_id < b.room_id;
  });
  for (const auto& room : listed) by_id[room.room_id] = &room;
  const auto dms = direct_rooms(store, user_id);
  RoomFilter filter(store, user_id, dms);
  json lists_out = json::object();
  std::map<std::string, RoomConfig> chosen;             // room -> what to send of it
  std::map<std::string, std::set<std::string>> in_list;  // list name -> rooms in its windows
  for (const auto& list : lists) {
    int64_t index = 0;
    for (const auto& room : listed) {
      if (!filter.admits(room, list.filters)) continue;
      for (const auto& [start, end] : list.ranges)
        if (index >= start && index <= end) {
          chosen[room.room_id].add(list.config);
          in_list[list.name].insert(room.room_id);
          break;
        }
      ++index;
    }
    lists_out[list.name] = {{"count", index}};
  }
  std::set<std::string> subscribed;
  for (const auto& [room_id, config] : subscriptions) {
    const auto it = std::find_if(all_rooms.begin(), all_rooms.end(), [&](const auto& r) { return r.room_id == room_id; });
    if (it == all_rooms.end()) continue;  // no membership: nothing to show, as if never asked
    if (!by_id.count(room_id)) by_id[room_id] = &*it;
    chosen[room_id].add(config);
    subscribed.insert(room_id);
  }

  // Each room chosen: everything on its first time on this connection, else what changed
  // since it was last sent.
  json sent_before = previous ? previous->rooms : json::object();
  // What this connection was sent of rooms the user still has (a left and forgotten room's
  // entry goes).
  json sent_now = json::object();
  for (const auto& room : all_rooms)
    if (sent_before.contains(room.room_id)) sent_now[room.room_id] = sent_before[room.room_id];
  json rooms_out = json::object();
  int events_budget = kMaxEventsPerAnswer;
  bool more_to_send = false;  // rooms left for the next answer, past the budget
  for (const auto& [room_id, config] : chosen) {
    const auto& room = *by_id.at(room_id);
    // How far the room was sent on this connection (-1: never), with which timeline_limit,
    // required_state and membership: [position, limit, required_state's signature, membership].
    int64_t bound = -1, sent_limit = 0;
    std::string sent_state, sent_membership;
    if (const auto it = sent_before.find(room_id); it != sent_before.end() && it->is_array() && it->size() == 4 &&
                                                   (*it)[0].is_number_integer() && (*it)[1].is_number_integer() &&
                                                   (*it)[2].is_string() && (*it)[3].is_string()) {
      bound = (*it)[0].get<int64_t>();
      sent_limit = (*it)[1].get<int64_t>();
      sent_state = (*it)[2].get<std::string>();
      sent_membership = (*it)[3].get<std::string>();
    }
    const std::string state_signature = config.state.signature();
    json result = json::object();
    if (room.membership == "invite" || room.membership == "knock") {
      if (bound >= 0 && room.member_stream <= bound) continue;
      // An invitation from another server to a room this one is not in: its own stripped state.
      const auto remote = room.membership == "invite" && !store.state_event(room_id, "m.room.member", user_id)
                              ? store.remote_invite(room_id, user_id)
                              : std::nullopt;
      result["invite_state"] = stripped_state(room_id, user_id, remote);
      result["initial"] = true;
      result["bump_stamp"] = remote ? remote->stream : room.member_stream;
      result["notification_count"] = 0;
      result["highlight_count"] = 0;
      if (dms.count(room_id)) result["is_dm"] = true;
      rooms_out[room_id] = result;
      sent_now[room_id] = json::array({now.events, 0, "", room.membership});
      continue;
    }
    if (room.membership != "join") {
      // Left, kicked or banned: the member's own membership event, so that the client knows;
      // no state or timeline of a room they are not in (some never were).
      if (bound >= 0 && room.member_stream <= bound) continue;
      if (const auto member = store.state_event(room_id, "m.room.member", user_id))
        result["required_state"] = json::array({client_event(*member)});
      if (bound < 0) result["initial"] = true;
      result["bump_stamp"] = room.member_stream;
      result["notification_count"] = 0;
      result["highlight_count"] = 0;
      rooms_out[room_id] = result;
      sent_now[room_id] = json::array({room.member_stream, config.timeline_limit, state_signature, room.membership});
      continue;
    }
    if (events_budget <= 0) {  // this one comes with the next answer, which comes at once
      more_to_send = true;
      continue;
    }
    const int64_t up_to = now.events;
    sent_now[room_id] = json::array({up_to, config.timeline_limit, state_signature, room.membership});
    // A room sent before with a shorter timeline or other required_state (a client opening
    // a room it listed): the newest events again, marked so (Synapse's
    // unstable_expanded_timeline), and all the state now asked for.
    const bool expanded_timeline = bound >= 0 && config.timeline_limit > sent_limit;
    const bool expanded_state = bound >= 0 && state_signature != sent_state;
    if (bound >= 0 && std::max(room.latest, room.member_stream) <= bound && !expanded_timeline && !expanded_state)
      continue;  // nothing new
    // The first time on this connection, or joined since it was last sent (an invitation
    // before): all of it (MSC4186 "initial").
    const bool initial = bound < 0 || sent_membership != "join";
    if (initial || expanded_timeline) bound = 0;
    const int limit = config.timeline_limit;

    // The timeline: the newest `limit` events the user may read after the bound.
    const auto visible = store.history_visibility(room_id, user_id);
    std::vector<StoredEvent> newest;
    bool state_changed = false, members_changed = false;
    for (int64_t top = up_to, pages = 0; static_cast<int>(newest.size()) <= limit && pages < 10; ++pages) {
      const auto page = store.events_between(room_id, bound, top, std::max(limit + 1, 50), true);
      for (const auto& e : page) {
        state_changed = state_changed || e.event.contains("state_key");
        members_changed = members_changed || e.event.value("type", "") == "m.room.member";
        if (static_cast<int>(newest.size()) <= limit && visible.allows(e)) newest.push_back(e);
      }
      if (page.empty() || static_cast<int>(page.size()) < std::max(limit + 1, 50)) break;
      top = page.back().stream - 1;
    }
    const bool limited = static_cast<int>(newest.size()) > limit;
    if (limited) newest.pop_back();
    std::reverse(newest.begin(), newest.end());
    events_budget -= static_cast<int>(newest.size()) + 1;
    if (!initial && newest.empty() && !state_changed && !limited && !expanded_state) continue;

    // The state: all of it the first time, else what changed (a long gap may hide changes).
    // Only what is asked for is read (a big room's members stay on disk), with the name and
    // avatar, which the room's fields carry.
    std::set<std::string> lazy_members = {user_id};
    for (const auto& e : newest) {
      lazy_members.insert(e.event.value("sender", ""));
      if (e.event.value("type", "") == "m.room.member") lazy_members.insert(e.event.value("state_key", ""));
    }
    const RoomStore::StateWanted wanted = [&](const std::string& type, const std::string& key) {
      return type == "m.room.name" || type == "m.room.avatar" || type == "m.room.canonical_alias" ||
             config.state.wants(type, key, lazy_members);
    };
    const auto state_now = [&] { return store.current_state(room_id, wanted); };
    std::vector<json> changed;
    if (initial || expanded_state) {
      changed = state_now();
    } else if (state_changed || limited || expanded_timeline) {
      std::set<std::string> had;
      const auto last_sent = store.events_between(room_id, 0, sent_before[room_id][0].get<int64_t>(), 1, true);
      if (!last_sent.empty())
        for (const auto& e : store.state_after(last_sent.front().event.value("event_id", ""), wanted).value_or(std::vector<json>{}))
          had.insert(e.value("event_id", ""));
      for (auto& e : state_now())
        if (!had.count(e.value("event_id", ""))) changed.push_back(std::move(e));
    }
    json required = json::array();
    std::set<std::string> required_ids;
    const auto changed_of = [&](const char* type) -> const json* {
      for (const auto& e : changed)
        if (e.value("type", "") == type && e.value("state_key", "") == "") return &e;
      return nullptr;
    };
    for (const auto& e : changed)
      if (config.state.wants(e.value("type", ""), e.value("state_key", ""), lazy_members)) {
        required_ids.insert(e.value("event_id", ""));
        required.push_back(client_event(e));
      }
    // Lazy members: the timeline's senders' member events, sent or not before.
    if (config.state.lazy && !initial)
      for (const auto& member : lazy_members)
        if (const auto e = store.state_event(room_id, "m.room.member", member); e && !required_ids.count(e->value("event_id", "")))
          required.push_back(client_event(*e));

    // Name, avatar, heroes and counts: the first time, and when they change. A room without
    // a name gets the one the Client-Server API's "Calculating the display name for a room"
    // gives it (its canonical alias, else its heroes), and its heroes.
    std::string explicit_name;
    if (const auto name = store.state_event(room_id, "m.room.name", "");
        name && (*name)["content"].is_object() && (*name)["content"].value("name", json()).is_string())
      explicit_name = (*name)["content"]["name"].get<std::string>();
    const bool members_moved = initial || members_changed || limited;
    std::optional<RoomStore::RoomSummary> summary;
    json heroes = json::array();
    if (members_moved || (explicit_name.empty() && (changed_of("m.room.name") || changed_of("m.room.canonical_alias")))) {
      summary = store.room_summary(room_id, user_id, kHeroes);
      for (const auto& hero : summary->heroes) {
        json h = {{"user_id", hero}};
        if (const auto member = store.state_event(room_id, "m.room.member", hero); member && (*member)["content"].is_object()) {
          const auto& content = (*member)["content"];
          if (content.value("displayname", json()).is_string()) h["displayname"] = content["displayname"];
          if (content.value("avatar_url", json()).is_string()) h["avatar_url"] = content["avatar_url"];
        }
        heroes.push_back(std::move(h));
      }
    }
    if (!explicit_name.empty() && (initial || changed_of("m.room.name"))) {
      result["name"] = explicit_name;
    } else if (explicit_name.empty() && summary) {
      std::string alias;
      if (const auto canonical = store.state_event(room_id, "m.room.canonical_alias", "");
          canonical && (*canonical)["content"].is_object() && (*canonical)["content"].value("alias", json()).is_string())
        alias = (*canonical)["content"]["alias"].get<std::string>();
      std::vector<std::string> names;
      for (const auto& h : heroes) names.push_back(h.value("displayname", h.value("user_id", "")));
      const int64_t others = summary->joined + summary->invited - 1 - static_cast<int64_t>(names.size());
      std::string computed = alias;
      if (computed.empty() && names.empty()) computed = "Empty Room";
      for (std::size_t i = 0; computed.empty() || (alias.empty() && i < names.size()); ++i) {
        if (i > 0) computed += (i + 1 == names.size() && others <= 0) ? " and " : ", ";
        computed += names[i];
      }
      if (alias.empty() && !names.empty() && others > 0) computed += " and " + std::to_string(others) + " others";
      result["name"] = computed;
      result["heroes"] = heroes;
    }
    if (summary && members_moved) {
      result["joined_count"] = summary->joined;
      result["invited_count"] = summary->invited;
    }
    if (initial) result["initial"] = true;
    if (expanded_timeline && !initial) result["unstable_expanded_timeline"] = true;
    if (!required.empty()) result["required_state"] = required;
    json timeline = json::array();
    for (const auto& e : newest) timeline.push_back(timeline_event(e, session));
    if (!timeline.empty()) result["timeline"] = timeline;
    result["limited"] = limited;
    result["prev_batch"] = newest.empty() ? StreamPosition{up_to, now.other}.token()
                                          : StreamPosition{newest.front().stream - 1, now.other}.token();
    int64_t live = 0;
    if (since)
      for (const auto& e : newest) live += e.stream > since->events ? 1 : 0;
    result["num_live"] = live;
    result["bump_stamp"] = std::max(room.bump, int64_t{0});
    const auto [unread, threads] = unread_counts(room_id, user_id, false);
    result["notification_count"] = unread.value("notification_count", 0);
    result["highlight_count"] = unread.value("highlight_count", 0);
    if (dms.count(room_id)) result["is_dm"] = true;
    rooms_out[room_id] = std::move(result);
  }

  // The extensions asked for, and only those (matrix-js-sdk stops at one it did not ask for).
  json extensions_out = json::object();
  bool extension_news = false;
  const auto scoped = [&](const ExtensionScope& scope) {
    std::set<std::string> out;
    for (const auto& [name, rooms] : in_list)
      if (names(scope.lists, name)) out.insert(rooms.begin(), rooms.end());
    for (const auto& room_id : subscribed)
      if (names(scope.rooms, room_id)) out.insert(room_id);
    return out;
  };
  // Receipts and typing are for rooms the user is in, as /sync has them.
  const auto joined_in = [&](const std::set<std::string>& rooms) {
    std::set<std::string> out;
    for (const auto& room_id : rooms)
      if (const auto it = by_id.find(room_id); it != by_id.end() && it->second->membership == "join") out.insert(room_id);
    return out;
  };
  if (const auto to_device = scope_of(extensions, "to_device"); to_device.enabled) {
    const auto& e = extensions["to_device"];
    int64_t from = 0;
    if (e.contains("since") && e["since"].is_string()) from = page_token(e["since"], "since", 18);
    int limit = kToDeviceLimit;
    if (e.contains("limit") && e["limit"].is_number_integer()) limit = std::clamp(e["limit"].get<int>(), 1, kToDeviceLimit);
    // Messages up to `since` were had: they go (Client-Server API "Send-to-Device messaging").
    if (from > 0) keys.acknowledge_to_device(user_id, session.device_id, from);
    auto [events, last] = keys.to_device(user_id, session.device_id, from, now.keys, limit);
    const int64_t next = static_cast<int>(events.size()) == limit ? last : std::max(now.keys, from);
    extension_news = extension_news || !events.empty();
    extensions_out["to_device"] = {{"next_batch", std::to_string(next)}, {"events", events}};
  }
  if (scope_of(extensions, "e2ee").enabled) {
    json counts = json::object();
    for (const auto& [algorithm, count] : keys.one_time_key_counts(user_id, session.device_id)) counts[algorithm] = count;
    json e2ee = {{"device_one_time_keys_count", counts},
                 {"device_unused_fallback_key_types", keys.unused_fallback_key_types(user_id, session.device_id)}};
    if (since) {
      const auto [changed, left] = device_list_delta(user_id, *since, now);
      if (!changed.empty() || !left.empty()) {
        e2ee["device_lists"] = {{"changed", changed}, {"left", left}};
        extension_news = true;
      }
    }
    extensions_out["e2ee"] = std::move(e2ee);
  }
  if (const auto scope = scope_of(extensions, "account_data"); scope.enabled) {
    const auto in_scope = scoped(scope);
    json global = json::array(), per_room = json::object();
    for (const auto& [rid, type, content] : store.account_data_since(user_id, since ? since->other : 0)) {
      if (rid.empty()) global.push_back({{"type", type}, {"content", content}});
      else if (in_scope.count(rid)) per_room[rid].push_back({{"type", type}, {"content", content}});
    }
    // A room sent for the first time brings its account data whenever it changed.
    std::set<std::string> first_time;
    for (const auto& [room_id, result] : rooms_out.items())
      if (since && in_scope.count(room_id) && result.value("initial", false)) first_time.insert(room_id);
    if (!first_time.empty())
      for (const auto& [rid, type, content] : store.account_data_since(user_id, 0))
        if (first_time.count(rid) && !per_room.contains(rid)) per_room[rid].push_back({{"type", type}, {"content", content}});
    extension_news = extension_news || !global.empty() || !per_room.empty();
    extensions_out["account_data"] = {{"global", global}, {"rooms", per_room}};
  }
  if (const auto scope = scope_of(extensions, "receipts"); scope.enabled) {
    json per_room = json::object();
    for (const auto& room_id : joined_in(scoped(scope))) {
      const bool first = rooms_out.contains(room_id) && rooms_out[room_id].value("initial", false);
      const json receipts = store.receipts_since(room_id, since && !first ? since->other : 0, user_id);
      if (!receipts.empty()) per_room[room_id] = {{"type", "m.receipt"}, {"content", receipts}};
    }
    extension_news = extension_news || !per_room.empty();
    extensions_out["receipts"] = {{"rooms", per_room}};
  }
  if (const auto scope = scope_of(extensions, "typing"); scope.enabled) {
    json per_room = json::object();
    const auto t = std::chrono::steady_clock::now();
    for (const auto& room_id : joined_in(scoped(scope))) {
      const auto changed = moment.typing_changed.find(room_id);
      if (since && (changed == moment.typing_changed.end() || changed->second <= since->other)) continue;
      json users = json::array();
      if (const auto typing_in = moment.typing.find(room_id); typing_in != moment.typing.end())
        for (const auto& [user, until] : typing_in->second)
          if (until > t) users.push_back(user);
      if (!since && users.empty()) continue;
      per_room[room_id] = {{"type", "m.typing"}, {"content", {{"user_ids", users}}}};
    }
    extension_news = extension_news || !per_room.empty();
    extensions_out["typing"] = {{"rooms", per_room}};
  }

  const bool news = !since || !rooms_out.empty() || extension_news || more_to_send;
  json out = {{"lists", lists_out}, {"rooms", rooms_out}, {"extensions", extensions_out}};
  if (body.contains("txn_id") && body["txn_id"].is_string()) out["txn_id"] = body["txn_id"];
  if (commit || news) {
    const auto id = store.save_sliding_position(user_id, session.device_id, conn_id, previous ? previous->id : 0, now.token(), sent_now);
    out["pos"] = std::to_string(id);
  }
  return {out, news};
}

namespace {

void sliding_sync(ClientApi::Impl& api, const Request& q, Reply reply) {
  auto self = api.shared_from_this();
  api.run([self, q, reply] {
    try {
      const auto session = self->authenticate(q);
      const json body = q.json();
      const std::string pos = q.query_value("pos");
      // matrix-js-sdk puts a timeout of 0 in the body, others in the query.
      int timeout = std::atoi(q.query_value("timeout", "0").c_str());
      if (q.query_value("timeout").empty() && body.is_object() && body.value("timeout", json()).is_number_integer())
        timeout = body["timeout"].get<int>();
      timeout = std::clamp(timeout, 0, kMaxTimeoutMs);
      const bool wait = !pos.empty() && timeout > 0;
      auto [answer, has_news] = self->build_sliding_sync(session, body, pos, !wait);
      if (has_news || !wait) return reply(ok(answer));
      std::weak_ptr<ClientApi::Impl> weak = self;
      self->park(self->new_waiter(
          session, reply, timeout,
          [weak, session, body, pos](bool last) -> std::pair<json, bool> {
            const auto api = weak.lock();
            if (!api) throw Error(errc::kMUnknown, "shutting down", 503);
            return api->build_sliding_sync(session, body, pos, last);
          },
          // Stopping coop-room answers "nothing new" at the same position, which the client
          // then uses again (a position it already holds, not a new one).
          {{"pos", pos}, {"lists", json::object()}, {"rooms", json::object()}, {"extensions", json::object()}}));
    } catch (const Error& e) {
      reply(self->error(e.status(), e.code(), e.what()));
    } catch (const std::exception& e) {
      spdlog::error("sliding sync: {}", e.what());  // the client hears no internals
      reply(self->error(500, errc::kMUnknown, "internal error"));
    }
  });
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kSlidingSyncTable[] = {
    {"POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", Mount::kExact, Run::kLongPoll, sliding_sync,
     "simplified sliding sync (MSC4186): room lists, subscriptions and extensions, long-polling up to timeout"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kSlidingSyncRoutes = kSlidingSyncTable;

}  // namespace coop::room
