// Room versions 10, 11 and 12 authorization rules.
#include "workers/matrix/auth_rules.h"

#include <algorithm>
#include <vector>

#include "common/error.h"

namespace coop::matrix {

using nlohmann::json;

namespace {

[[noreturn]] void forbidden(const std::string& why) { throw Error(errc::kMForbidden, why, 403); }

}  // namespace

std::string room_version_of(const json& create) {
  const auto content = create.find("content");
  if (content == create.end() || !content->is_object()) return "1";
  const auto version = content->find("room_version");
  return version != content->end() && version->is_string() ? version->get<std::string>() : "1";
}

bool has_room_creators(const std::string& version) { return version == "12"; }

std::vector<std::string> room_creators(const json& create) {
  if (!has_room_creators(room_version_of(create))) return {};
  std::vector<std::string> creators{create.value("sender", "")};
  const auto& content = create["content"];
  if (const auto more = content.find("additional_creators"); more != content.end() && more->is_array())
    for (const auto& user : *more)
      if (user.is_string()) creators.push_back(user.get<std::string>());
  return creators;
}

std::string room_of(const json& event) {
  if (const auto room = event.find("room_id"); room != event.end()) return room->is_string() ? room->get<std::string>() : "";
  const auto id = event.find("event_id");
  if (event.value("type", json()) != "m.room.create" || id == event.end() || !id->is_string() || id->get_ref<const std::string&>().size() < 2)
    return "";
  return "!" + id->get_ref<const std::string&>().substr(1);
}

std::string implied_create_id(const json& event) {
  const auto room = event.find("room_id");
  if (room == event.end() || !room->is_string()) return "";
  const auto& id = room->get_ref<const std::string&>();
  // Room version 12 "Room IDs": a room ID without a server part is its create event's ID.
  if (id.size() < 2 || id[0] != '!' || id.find(':') != std::string::npos) return "";
  return "$" + id.substr(1);
}

const json* state_of(const StateMap& state, const std::string& type, const std::string& key) {
  auto it = state.find({type, key});
  return it == state.end() ? nullptr : &it->second;
}

namespace {

std::string membership_in(const StateMap& state, const std::string& user) {
  const auto* m = state_of(state, "m.room.member", user);
  return m ? m->value("content", json::object()).value("membership", "") : "";
}

// Room versions 10 and 11, auth rules 10.1-10.3: every level is an integer, "events" and
// "notifications" map to integers, "users" maps user IDs to integers.
void check_power_levels_integers(const json& content) {
  auto bad = [](const std::string& why) { throw coop::Error(errc::kBadJson, "m.room.power_levels: " + why, 400); };
  if (!content.is_object()) bad("content must be an object");
  for (const char* key : {"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"})
    if (content.contains(key) && !content[key].is_number_integer()) bad(std::string(key) + " must be an integer");
  for (const char* key : {"events", "notifications", "users"}) {
    if (!content.contains(key)) continue;
    const auto& map = content[key];
    if (!map.is_object()) bad(std::string(key) + " must be an object");
    for (const auto& [name, level] : map.items()) {
      if (!level.is_number_integer()) bad(std::string(key) + " values must be integers");
      if (std::string_view(key) == "users" && (name.empty() || name[0] != '@' || name.find(':') == std::string::npos))
        bad("users keys must be user IDs");
    }
  }
}

int64_t as_level(const json& value, int64_t fallback) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_string()) {
    try {
      return std::stoll(value.get<std::string>());
    } catch (...) {
    }
  }
  return fallback;
}

// A member of a JSON object, or nullptr: lookups that copy nothing (a power levels event of
// a big room names thousands of users, and every event is checked against it).
const json* member_of(const json* object, const char* key) {
  if (!object || !object->is_object()) return nullptr;
  const auto it = object->find(key);
  return it == object->end() ? nullptr : &*it;
}

struct PowerLevels {
  const json* content = nullptr;  // the m.room.power_levels event's content, in the state
  std::string creator;
  std::vector<std::string> creators;  // room version 12: the creators, whose level is infinite
  bool present = false;

  int64_t user(const std::string& user_id) const {
    if (std::find(creators.begin(), creators.end(), user_id) != creators.end()) return kInfinitePower;
    if (!present) return user_id == creator ? 100 : 0;
    if (const auto* users = member_of(content, "users"); users && users->is_object()) {
      const auto it = users->find(user_id);
      if (it != users->end()) return as_level(*it, 0);
    }
    const auto* fallback = member_of(content, "users_default");
    return fallback ? as_level(*fallback, 0) : 0;
  }
  int64_t named(const char* key, int64_t fallback) const {
    const auto* value = present ? member_of(content, key) : nullptr;
    return value ? as_level(*value, fallback) : fallback;
  }
  int64_t for_event(const std::string& type, bool is_state) const {
    if (const auto* events = present ? member_of(content, "events") : nullptr; events && events->is_object()) {
      const auto it = events->find(type);
      if (it != events->end()) return as_level(*it, 0);
    }
    return is_state ? named("state_default", present ? 50 : 0) : named("events_default", 0);
  }
};

PowerLevels power_levels(const StateMap& state) {
  PowerLevels pl;
  if (const auto* create = state_of(state, "m.room.create")) {
    pl.creator = create->value("sender", "");
    pl.creators = room_creators(*create);
  }
  if (const auto* levels = state_of(state, "m.room.power_levels")) {
    static const json kEmpty = json::object();
    pl.present = true;
    const auto* content = member_of(levels, "content");
    pl.content = content ? content : &kEmpty;
  }
  return pl;
}

}  // namespace

int64_t power_level_of(const json* create, const json* power_levels, const std::string& user_id) {
  // The rules' own reading, without copying either event (a big room's power levels name
  // thousands of users).
  PowerLevels pl;
  if (create) {
    pl.creator = create->value("sender", "");
    pl.creators = room_creators(*create);
  }
  if (power_levels) {
    static const json kEmpty = json::object();
    pl.present = true;
    const auto* content = member_of(power_levels, "content");
    pl.content = content ? content : &kEmpty;
  }
  return pl.user(user_id);
}

// Matrix spec, room version 11 "Authorization rules" (the client-side subset: no third-party
// invites, no restricted joins yet). Throws M_FORBIDDEN with the rule that refused.

namespace {
void authorize_checked(const json& event, const StateMap& state, const MembershipLookup& joined_elsewhere);
}  // namespace

void authorize(const json& event, const StateMap& state, const MembershipLookup& joined_elsewhere) {
  try {
    authorize_checked(event, state, joined_elsewhere);
  } catch (const json::exception& e) {
    // A field of the wrong type in the event or the state: refuse, never crash.
    forbidden(std::string("malformed event or room state: ") + e.what());
  }
}

namespace {

void authorize_checked(const json& event, const StateMap& state, const MembershipLookup& joined_elsewhere) {
  const std::string type = event.value("type", "");
  const std::string sender = event.value("sender", "");
  if (type == "m.room.create") {
    // Rule 1: a room's first event.
    if (!state.empty()) forbidden("the room already exists");
    if (has_room_creators(room_version_of(event))) {
      // Room version 12, rules 1.2 and 1.4: no room ID (the event's own ID is the room's), and
      // additional creators that are user IDs as the sender is.
      if (event.contains("room_id")) forbidden("a room version 12 create event has no room_id");
      const auto& content = event["content"];
      if (const auto more = content.find("additional_creators"); more != content.end()) {
        if (!more->is_array()) forbidden("additional_creators must be a list of user IDs");
        for (const auto& user : *more)
          if (!user.is_string() || user.get_ref<const std::string&>().size() > 255 || user.get_ref<const std::string&>()[0] != '@' ||
              user.get_ref<const std::string&>().find(':') == std::string::npos)
            forbidden("additional_creators must be a list of user IDs");
      }
      return;
    }
    // Rule 1.2 (versions 10, 11): by a user of the server in its room ID.
    const std::string room_id = event.value("room_id", "");
    const auto at = [](const std::string& id) { const auto c = id.find(':'); return c == std::string::npos ? std::string() : id.substr(c + 1); };
    if (at(room_id).empty() || at(room_id) != at(sender)) forbidden("the room's creator is not of the room ID's server");
    return;
  }
  const auto* create = state_of(state, "m.room.create");
  if (!create) forbidden("no m.room.create event in the room");
  // Room version 12, rule 2: the room ID is the create event's ID (with "!" for "$").
  if (has_room_creators(room_version_of(*create)) && implied_create_id(event) != create->value("event_id", ""))
    forbidden("the room ID is not that of the room's create event");
  const auto pl = power_levels(state);
  const auto sender_membership = membership_in(state, sender);

  if (type == "m.room.member") {
    const std::string target = event.value("state_key", "");
    const json content = event.value("content", json::object());
    const std::string membership = content.value("membership", "");
    const std::string target_membership = membership_in(state, target);
    const auto* join_rules = state_of(state, "m.room.join_rules");
    const std::string join_rule = join_rules ? join_rules->value("content", json::object()).value("join_rule", "invite") : "invite";
    if (membership == "join") {
      if (sender != target) forbidden("you can only join as yourself");
      if (target == pl.creator && state.size() == 1) return;  // the creator's first join
      if (target_membership == "ban") forbidden(target + " is banned from this room");
      if (join_rule == "public") return;
      // Room versions 8+: "restricted" admits members of the rooms (Spaces) it allows.
      if (join_rule == "restricted" || join_rule == "knock_restricted") {
        if (target_membership == "invite" || target_membership == "join") return;
        for (const auto& allow : join_rules->value("content", json::object()).value("allow", json::array()))
          if (allow.is_object() && allow.value("type", "") == "m.room_membership" && joined_elsewhere(allow.value("room_id", ""), target)) return;
        forbidden("this room admits members of its Space only");
      }
      if ((join_rule == "invite" || join_rule == "knock") && (target_membership == "invite" || target_membership == "join")) return;
      forbidden("this room is invite-only");
    }
    if (membership == "invite") {
      if (sender_membership != "join") forbidden("you are not in this room");
      if (target_membership == "ban") forbidden(target + " is banned from this room");
      if (target_membership == "join") forbidden(target + " is already in the room");
      if (pl.user(sender) < pl.named("invite", 0)) forbidden("your power level is too low to invite");
      return;
    }
    if (membership == "leave") {
      if (sender == target) {
        if (target_membership == "join" || target_membership == "invite" || target_membership == "knock") return;
        forbidden("you are not in this room");
      }
      if (sender_membership != "join") forbidden("you are not in this room");
      if (target_membership == "ban" && pl.user(sender) < pl.named("ban", 50)) forbidden("your power level is too low to unban");
      if (pl.user(sender) < pl.named("kick", 50) || pl.user(sender) <= pl.user(target))
        forbidden("your power level is too low to kick " + target);
      return;
    }
    // Room versions 7+ "knock": asking to be let in, where the join rule says so.
    if (membership == "knock") {
      if (join_rule != "knock" && join_rule != "knock_restricted") forbidden("this room does not take knocks");
      if (sender != target) forbidden("you can only knock as yourself");
      if (target_membership == "ban" || target_membership == "invite" || target_membership == "join")
        forbidden("you cannot knock on a room you are banned from, invited to or in");
      return;
    }
    if (membership == "ban") {
      if (sender_membership != "join") forbidden("you are not in this room");
      if (pl.user(sender) < pl.named("ban", 50) || pl.user(sender) <= pl.user(target))
        forbidden("your power level is too low to ban " + target);
      return;
    }
    forbidden("unknown membership '" + membership + "'");
  }

  if (sender_membership != "join") forbidden("you are not in this room");
  const bool is_state = event.contains("state_key");
  if (pl.user(sender) < pl.for_event(type, is_state)) forbidden("your power level is too low to send " + type);
  if (is_state) {
    const std::string key = event.value("state_key", "");
    if (!key.empty() && key[0] == '@' && key != sender) forbidden("state keys that are user IDs belong to that user");
  }
  if (type == "m.room.power_levels") {
    check_power_levels_integers(event.value("content", json::object()));
    // Room version 12, rule 10.4: creators are above every level and are not listed.
    const json listed = event.value("content", json::object()).value("users", json::object());
    for (const auto& creator : pl.creators)
      if (listed.contains(creator)) forbidden("room creators cannot be given a power level");
  }
  if (type == "m.room.power_levels" && pl.present) {
    // Nobody grants more than they hold, or changes someone at or above their own level.
    const auto mine = pl.user(sender);
    const json next = event.value("content", json::object());
    // items() must not run over a temporary: the proxy would outlive it (found by fuzzing).
    const json users = next.value("users", json::object());
    if (!users.is_object()) forbidden("users must be an object");
    for (const auto& [user, level] : users.items()) {
      const auto before = pl.user(user);
      const auto after = as_level(level, 0);
      if (before == after) continue;
      if (after > mine) forbidden("you cannot grant a power level above your own");
      if (before >= mine && user != sender) forbidden("you cannot change the level of " + user);
    }
  }
  // m.room.redaction: the auth rules allow it (same server); whether the sender may redact
  // someone else's event is checked where the redaction is requested (ClientApi).
}

}  // namespace

}  // namespace coop::matrix
