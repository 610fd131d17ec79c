// The room authorization rules (Matrix spec, room versions 10, 11 and 12 "Authorization
// rules"), shared by the client-side worker and the federation worker.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace coop::matrix {

// The room's state as the rules need it: (type, state_key) -> event.
using StateMap = std::map<std::pair<std::string, std::string>, nlohmann::json>;

// Whether a user is joined to another room, for restricted join rules (room versions 8+).
using MembershipLookup = std::function<bool(const std::string& room_id, const std::string& user_id)>;

const nlohmann::json* state_of(const StateMap& state, const std::string& type, const std::string& key = "");

// Room versions (Matrix spec "Room Versions"): the version a create event names ("1" when
// none); whether it has room creators with infinite power and domain-less room IDs (12).
std::string room_version_of(const nlohmann::json& create);
bool has_room_creators(const std::string& version);
// Room version 12: the sender of the create event and its additional_creators; empty before.
std::vector<std::string> room_creators(const nlohmann::json& create);
// Room version 12: the create event a domain-less room ID names ("$" + the ID without "!"),
// which every other event of the room has as an implied auth event; "" for other room IDs.
std::string implied_create_id(const nlohmann::json& event);
// The room an event is of: its room_id; for a room version 12 create event, which has none,
// the room its own event_id makes ("" when neither says).
std::string room_of(const nlohmann::json& event);
// A room creator's power level: above any integer a power levels event can hold.
inline constexpr int64_t kInfinitePower = INT64_MAX;
// A user's power level as the auth rules see it (Client-Server API m.room.power_levels):
// infinite for a room version 12 creator; else the power levels' users entry or
// users_default; without power levels, 100 for the creator and 0 for everyone else. Either
// event may be null.
int64_t power_level_of(const nlohmann::json* create, const nlohmann::json* power_levels, const std::string& user_id);

// Throws coop::Error(errc::kMForbidden) naming the rule that refuses the event against the state
// before it. Covered: create, membership transitions (join, invite, leave, kick, ban, unban,
// public/invite/restricted join rules), power levels for events and for changing power
// levels, state keys that are user IDs. Not yet: third-party invites, knocking.
void authorize(const nlohmann::json& event, const StateMap& state, const MembershipLookup& joined_elsewhere);

}  // namespace coop::matrix
