// Matrix spec, Server-Server API "Room State Resolution", room version 2's algorithm
// ("State resolution algorithm": definitions, then the five steps).
#include "workers/matrix/state_res.h"

#include <algorithm>
#include <limits>
#include <queue>
#include <tuple>

#include "common/error.h"

namespace coop::matrix {

using nlohmann::json;

namespace {

std::string text(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t integer(const json& value, int64_t fallback) {
  return value.is_number_integer() ? value.get<int64_t>() : fallback;
}

// The event's auth events; in room version 12 with the create event its room ID implies.
std::vector<std::string> auth_event_ids(const json& event) {
  std::vector<std::string> ids;
  const auto it = event.find("auth_events");
  if (it != event.end() && it->is_array())
    for (const auto& id : *it)
      if (id.is_string()) ids.push_back(id.get<std::string>());
  if (auto create = implied_create_id(event); !create.empty() && std::find(ids.begin(), ids.end(), create) == ids.end())
    ids.push_back(std::move(create));
  return ids;
}

std::pair<std::string, std::string> key_of(const json& event) { return {text(event, "type"), text(event, "state_key")}; }

// "Power events": power levels, join rules, the create event, and memberships that remove
// someone else (kicks and bans).
bool is_power_event(const json& event) {
  const auto [type, state_key] = key_of(event);
  if (!event.contains("state_key")) return false;
  if (state_key.empty() && (type == "m.room.power_levels" || type == "m.room.join_rules" || type == "m.room.create"))
    return true;
  if (type != "m.room.member") return false;
  const std::string membership = text(event.value("content", json::object()), "membership");
  return (membership == "leave" || membership == "ban") && text(event, "sender") != state_key;
}

// The power event among an event's auth events of the given type, or nullptr.
const json* auth_event_of_type(const json& event, const char* type, EventSource& events) {
  for (const auto& id : auth_event_ids(event)) {
    const auto* auth = events.event(id);
    if (auth && text(*auth, "type") == type && text(*auth, "state_key").empty()) return auth;
  }
  return nullptr;
}

// The sender's power level "as given by the power levels event in the event's auth events";
// without one, the room's creator has 100 and anyone else 0.
int64_t sender_power(const json& event, EventSource& events) {
  const std::string sender = text(event, "sender");
  // Room version 12: the creators are above every level, power levels event or not.
  if (const auto* create = auth_event_of_type(event, "m.room.create", events)) {
    const auto creators = room_creators(*create);
    if (std::find(creators.begin(), creators.end(), sender) != creators.end()) return kInfinitePower;
  }
  if (const auto* levels = auth_event_of_type(event, "m.room.power_levels", events)) {
    // Found in place: the content names every user with a level, and is read for many events.
    const auto content = levels->find("content");
    if (content == levels->end() || !content->is_object()) return 0;
    if (const auto users = content->find("users"); users != content->end() && users->is_object())
      if (const auto mine = users->find(sender); mine != users->end()) return integer(*mine, 0);
    const auto fallback = content->find("users_default");
    return fallback == content->end() ? 0 : integer(*fallback, 0);
  }
  if (const auto* create = auth_event_of_type(event, "m.room.create", events)) {
    // Room versions 11+ name the creator by the create event's sender; earlier, in content.
    const std::string creator = create->value("content", json::object()).contains("creator")
                                    ? text(create->value("content", json::object()), "creator")
                                    : text(*create, "sender");
    if (creator == sender || text(*create, "sender") == sender) return 100;
  }
  return 0;
}

int64_t timestamp(const json& event) { return integer(event.value("origin_server_ts", json(0)), 0); }

// "Iterative auth checks": each event in order against the state its auth events give, the
// current partial state taking precedence for the keys the auth rules read; the ones that
// pass join the state.
void iterative_auth_checks(const std::vector<std::string>& order, StateIds& state, EventSource& events,
                           const MembershipLookup& joined_elsewhere) {
  for (const auto& id : order) {
    const auto* event = events.event(id);
    if (!event) continue;
    StateMap auth_state;
    for (const auto& auth_id : auth_event_ids(*event))
      if (const auto* auth = events.event(auth_id)) auth_state[key_of(*auth)] = *auth;
    for (const auto& key : auth_types_for(*event))
      if (const auto it = state.find(key); it != state.end())
        if (const auto* current = events.event(it->second)) auth_state[key] = *current;
    try {
      authorize(*event, auth_state, joined_elsewhere);
    } catch (const Error&) {
      continue;  // rejected: it does not change the state
    }
    state[key_of(*event)] = id;
  }
}

}  // namespace

std::set<std::string> conflicted_subgraph(const std::set<std::string>& conflicted, EventSource& events) {
  // Everything reachable backwards from a conflicted event through auth_events...
  std::set<std::string> below;
  for (const auto& id : conflicted) {
    const auto& chain = events.auth_chain(id);
    below.insert(chain.begin(), chain.end());
  }
  // ...that a conflicted event is reachable from lies on a path between two of them: walk
  // forwards (from auth event to the events citing it) from the conflicted events, within
  // `below`. Linear in the edges, where asking each event for its own chain was quadratic.
  std::map<std::string, std::vector<std::string>> citing;
  for (const auto& id : below)
    if (const auto* event = events.event(id))
      for (const auto& auth : auth_event_ids(*event))
        if (below.count(auth) || conflicted.count(auth)) citing[auth].push_back(id);
  // Every event reached is in `below` (only its events cite anything here).
  std::set<std::string> subgraph(conflicted.begin(), conflicted.end());
  std::vector<std::string> todo(conflicted.begin(), conflicted.end());
  while (!todo.empty()) {
    const std::string id = std::move(todo.back());
    todo.pop_back();
    const auto next = citing.find(id);
    if (next == citing.end()) continue;
    for (const auto& up : next->second)
      if (subgraph.insert(up).second) todo.push_back(up);
  }
  return subgraph;
}

const std::set<std::string>& EventSource::auth_chain(const std::string& event_id) {
  if (const auto found = chains_.find(event_id); found != chains_.end()) return found->second;
  // Iterative walk (a long chain must not exhaust the stack), reusing chains already known.
  std::set<std::string> chain;
  std::vector<std::string> pending;
  if (const auto* event = this->event(event_id)) pending = auth_event_ids(*event);
  while (!pending.empty()) {
    const std::string id = std::move(pending.back());
    pending.pop_back();
    if (!chain.insert(id).second) continue;
    if (const auto known = chains_.find(id); known != chains_.end()) {
      chain.insert(known->second.begin(), known->second.end());
      continue;
    }
    if (const auto* auth = this->event(id))
      for (auto& next : auth_event_ids(*auth))
        if (!chain.count(next)) pending.push_back(std::move(next));
  }
  return chains_.emplace(event_id, std::move(chain)).first->second;
}

std::set<std::string> EventSource::auth_chain_of_set(const std::vector<std::string>& event_ids) {
  std::set<std::string> chain;
  for (const auto& id : event_ids) {
    const auto& mine = auth_chain(id);
    chain.insert(mine.begin(), mine.end());
  }
  return chain;
}

void EventMap::add(const json& event) { events_[text(event, "event_id")] = event; }

const json* EventMap::event(const std::string& event_id) {
  const auto it = events_.find(event_id);
  return it == events_.end() ? nullptr : &it->second;
}

std::vector<std::pair<std::string, std::string>> auth_types_for(const json& event) {
  const std::string type = text(event, "type");
  if (type == "m.room.create") return {};
  std::vector<std::pair<std::string, std::string>> keys{{"m.room.power_levels", ""}, {"m.room.member", text(event, "sender")}};
  // Room version 12: the create event is never selected; the room ID implies it.
  if (implied_create_id(event).empty()) keys.insert(keys.begin(), {"m.room.create", ""});
  if (type == "m.room.member") {
    const json content = event.value("content", json::object());
    const std::string membership = text(content, "membership");
    keys.emplace_back("m.room.member", text(event, "state_key"));
    if (membership == "join" || membership == "invite" || membership == "knock")
      keys.emplace_back("m.room.join_rules", "");
    if (membership == "invite" && content.contains("third_party_invite") && content["third_party_invite"].is_object()) {
      const json signed_part = content["third_party_invite"].value("signed", json::object());
      keys.emplace_back("m.room.third_party_invite", text(signed_part, "token"));
    }
    if (membership == "join") {
      const std::string via = text(content, "join_authorised_via_users_server");
      if (!via.empty()) keys.emplace_back("m.room.member", via);
    }
  }
  return keys;
}

std::vector<std::string> reverse_topological_power_order(const std::set<std::string>& event_ids, EventSource& events) {
  // Kahn's algorithm over the auth graph restricted to these events: an event is ready once
  // all of its auth events among them are out; the ready ones leave smallest first.
  using Key = std::tuple<int64_t, int64_t, std::string>;  // (-power, origin_server_ts, event_id)
  std::map<std::string, std::vector<std::string>> dependents;  // auth event -> events citing it
  std::map<std::string, int> waiting;                          // event -> auth events not yet out
  std::priority_queue<Key, std::vector<Key>, std::greater<>> ready;
  auto key = [&events](const std::string& id) {
    const auto* event = events.event(id);
    return event ? Key{-sender_power(*event, events), timestamp(*event), id} : Key{0, 0, id};
  };
  for (const auto& id : event_ids) {
    int count = 0;
    if (const auto* event = events.event(id))
      for (const auto& auth_id : auth_event_ids(*event))
        if (event_ids.count(auth_id)) {
          dependents[auth_id].push_back(id);
          ++count;
        }
    waiting[id] = count;
    if (count == 0) ready.push(key(id));
  }
  std::vector<std::string> order;
  while (!ready.empty()) {
    const std::string id = std::get<2>(ready.top());
    ready.pop();
    order.push_back(id);
    for (const auto& next : dependents[id])
      if (--waiting[next] == 0) ready.push(key(next));
  }
  return order;  // an auth cycle (impossible with hashed IDs) leaves its events out
}

std::vector<std::string> mainline_order(const std::set<std::string>& event_ids, const std::string& power_levels_id,
                                        EventSource& events) {
  // The mainline: the power levels event, the one in its auth events, and so on back.
  std::map<std::string, int64_t> mainline;  // event -> position (0 = the current one)
  for (std::string id = power_levels_id; !id.empty() && !mainline.count(id);) {
    mainline[id] = static_cast<int64_t>(mainline.size());
    const auto* event = events.event(id);
    const auto* previous = event ? auth_event_of_type(*event, "m.room.power_levels", events) : nullptr;
    id = previous ? text(*previous, "event_id") : "";
  }
  constexpr int64_t kNotOnMainline = std::numeric_limits<int64_t>::max();
  std::map<std::string, int64_t> position_cache;
  // The position of the first power levels event back along e's auth events that is on the
  // mainline (e itself not counted).
  auto position = [&](const std::string& start) {
    std::vector<std::string> walked;
    int64_t found = kNotOnMainline;
    const auto* event = events.event(start);
    std::set<std::string> seen{start};
    while (event) {
      const auto* levels = auth_event_of_type(*event, "m.room.power_levels", events);
      if (!levels) break;
      const std::string id = text(*levels, "event_id");
      if (const auto on = mainline.find(id); on != mainline.end()) {
        found = on->second;
        break;
      }
      if (const auto cached = position_cache.find(id); cached != position_cache.end()) {
        found = cached->second;
        break;
      }
      if (!seen.insert(id).second) break;
      walked.push_back(id);
      event = levels;
    }
    for (const auto& id : walked) position_cache[id] = found;
    return found;
  };
  std::vector<std::tuple<int64_t, int64_t, std::string>> keyed;  // (-position, ts, id): larger position first
  for (const auto& id : event_ids) {
    const auto* event = events.event(id);
    const int64_t at = position(id);
    keyed.emplace_back(at == kNotOnMainline ? std::numeric_limits<int64_t>::min() : -at, event ? timestamp(*event) : 0, id);
  }
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::string> order;
  order.reserve(keyed.size());
  for (auto& entry : keyed) order.push_back(std::move(std::get<2>(entry)));
  return order;
}

StateIds resolve_state_v2(const std::vector<StateIds>& state_sets, EventSource& events,
                          const MembershipLookup& joined_elsewhere, StateResVersion version) {
  const bool v2_1 = version == StateResVersion::kV2_1;
  if (state_sets.empty()) return {};
  if (state_sets.size() == 1) return state_sets.front();

  // Unconflicted state: the keys every set has with the same event. The rest conflict.
  StateIds unconflicted;
  std::set<std::string> conflicted;
  std::set<std::pair<std::string, std::string>> keys;
  for (const auto& set : state_sets)
    for (const auto& [key, id] : set) keys.insert(key);
  for (const auto& key : keys) {
    std::set<std::string> ids;
    bool everywhere = true;
    for (const auto& set : state_sets) {
      const auto it = set.find(key);
      if (it == set.end())
        everywhere = false;
      else
        ids.insert(it->second);
    }
    if (everywhere && ids.size() == 1)
      unconflicted[key] = *ids.begin();
    else
      conflicted.insert(ids.begin(), ids.end());
  }
  if (conflicted.empty()) return unconflicted;

  // The auth difference: what is in some state set's full auth chain but not in all of them.
  std::map<std::string, std::size_t> chain_count;
  for (const auto& set : state_sets) {
    std::vector<std::string> ids;
    ids.reserve(set.size());
    for (const auto& [key, id] : set) ids.push_back(id);
    for (const auto& id : events.auth_chain_of_set(ids)) ++chain_count[id];
  }
  std::set<std::string> full_conflicted;
  for (const auto& id : conflicted)
    if (events.event(id)) full_conflicted.insert(id);
  for (const auto& [id, count] : chain_count)
    if (count < state_sets.size() && events.event(id)) full_conflicted.insert(id);
  // State resolution v2.1 (room version 12): and the conflicted state subgraph, every event on
  // an auth path from one conflicted event to another (what replaying them needs).
  if (v2_1)
    for (const auto& id : conflicted_subgraph(conflicted, events))
      if (events.event(id)) full_conflicted.insert(id);

  // Step 1: the power events, with the parts of their auth chains that conflict too.
  std::set<std::string> power;
  for (const auto& id : full_conflicted)
    if (is_power_event(*events.event(id))) {
      power.insert(id);
      for (const auto& auth_id : events.auth_chain(id))
        if (full_conflicted.count(auth_id)) power.insert(auth_id);
    }
  // Step 2: replay them, in reverse topological power order, onto the unconflicted state; in
  // v2.1 onto an empty state (the auth events fill in what the rules need).
  StateIds resolved = v2_1 ? StateIds{} : unconflicted;
  iterative_auth_checks(reverse_topological_power_order(power, events), resolved, events, joined_elsewhere);

  // Steps 3 and 4: the rest, in mainline order of the power levels just resolved.
  std::set<std::string> others;
  for (const auto& id : full_conflicted)
    if (!power.count(id)) others.insert(id);
  const auto levels = resolved.find({"m.room.power_levels", ""});
  iterative_auth_checks(mainline_order(others, levels == resolved.end() ? "" : levels->second, events), resolved, events,
                        joined_elsewhere);

  // Step 5: the unconflicted state has the last word.
  for (const auto& [key, id] : unconflicted) resolved[key] = id;
  return resolved;
}

}  // namespace coop::matrix
