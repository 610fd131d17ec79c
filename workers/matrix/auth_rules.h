// The room authorization rules (Matrix spec, room version 11 "Authorization rules"), shared by
// the client-side worker and the federation worker that will check remote events.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <utility>

namespace coop::matrix {

// The room's state as the rules need it: (type, state_key) -> event.
using StateMap = std::map<std::pair<std::string, std::string>, nlohmann::json>;

// Whether a user is joined to another room, for restricted join rules (room versions 8+).
using MembershipLookup = std::function<bool(const std::string& room_id, const std::string& user_id)>;

const nlohmann::json* state_of(const StateMap& state, const std::string& type, const std::string& key = "");

// Throws coop::Error(errc::kMForbidden) naming the rule that refuses the event against the state
// before it. Covered: create, membership transitions (join, invite, leave, kick, ban, unban,
// public/invite/restricted join rules), power levels for events and for changing power
// levels, state keys that are user IDs. Not yet: third-party invites, knocking.
void authorize(const nlohmann::json& event, const StateMap& state, const MembershipLookup& joined_elsewhere);

}  // namespace coop::matrix
