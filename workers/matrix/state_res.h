// State resolution: the state of a room where its history forked, as every server computes it
// alike (Matrix spec, Server-Server API "Room State Resolution"; the algorithm of room version
// 2, which versions 2 to 11 use, and its v2.1 of room version 12). Pure: events come from an EventSource, the room's store in
// coop-room and coop-federate, a map in the tests.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "workers/matrix/auth_rules.h"

namespace coop::matrix {

// A room state by event ID: (type, state_key) -> event_id.
using StateIds = std::map<std::pair<std::string, std::string>, std::string>;

// Where state resolution reads events.
class EventSource {
 public:
  virtual ~EventSource() = default;
  // The event, or nullptr when it is unknown or was rejected (resolution then leaves it out).
  virtual const nlohmann::json* event(const std::string& event_id) = 0;
  // The auth chain of an event: every event reachable through auth_events, not the event
  // itself. This default walks auth_events through event() and remembers what it found; a
  // store answers from its own index instead.
  virtual const std::set<std::string>& auth_chain(const std::string& event_id);
  // The auth chain of several events together (the union of theirs): the full auth chain of
  // a state set. This default asks auth_chain() of each; a store answers in one walk.
  virtual std::set<std::string> auth_chain_of_set(const std::vector<std::string>& event_ids);

 private:
  std::map<std::string, std::set<std::string>> chains_;
};

// Events held in memory (tests, and a transaction's worth of new events).
class EventMap : public EventSource {
 public:
  void add(const nlohmann::json& event);  // by its event_id
  const nlohmann::json* event(const std::string& event_id) override;

 private:
  std::map<std::string, nlohmann::json> events_;
};

// The keys whose events the auth rules read for `event` (spec "Auth events selection"):
// create, power levels, the sender's membership, and for a membership event the target's and
// the join rules.
std::vector<std::pair<std::string, std::string>> auth_types_for(const nlohmann::json& event);

// v2: room versions 2 to 11; v2.1: room version 12 (replays from an empty state and takes in
// the conflicted state subgraph, Matrix spec room version 12 "State resolution").
enum class StateResVersion { kV2, kV2_1 };
inline StateResVersion state_res_for(const std::string& room_version) {
  return room_version == "12" ? StateResVersion::kV2_1 : StateResVersion::kV2;
}

// State resolution v2 (or v2.1). Events that are unknown, or fail the auth rules when they are
// replayed, drop out of the result.
StateIds resolve_state_v2(const std::vector<StateIds>& state_sets, EventSource& events,
                          const MembershipLookup& joined_elsewhere, StateResVersion version = StateResVersion::kV2);

// State resolution v2.1's conflicted state subgraph: the conflicted events and every event on
// an auth_events path from one of them to another.
std::set<std::string> conflicted_subgraph(const std::set<std::string>& conflicted, EventSource& events);

// The two orderings the algorithm sorts by, exposed for tests.
// Reverse topological power ordering: auth events first; among the rest, the sender with more
// power first, then the older origin_server_ts, then the smaller event ID.
std::vector<std::string> reverse_topological_power_order(const std::set<std::string>& event_ids, EventSource& events);
// Mainline ordering based on the power levels event `power_levels_id` ("" when none).
std::vector<std::string> mainline_order(const std::set<std::string>& event_ids, const std::string& power_levels_id,
                                        EventSource& events);

}  // namespace coop::matrix
