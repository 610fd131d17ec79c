// Space membership from the registry, through coop-member's control socket.
#include "workers/room/space_sync.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <set>

#include "common/control/client.h"
#include "common/error.h"
#include "common/paths.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

using nlohmann::json;

namespace {
json member_api(const Home& home, const std::string& path) {
  control::Client client(home.socket("member"));
  const auto response = client.get(path);
  response.throw_if_error();
  return response.json();
}
}  // namespace

SpaceSync::SpaceSync(const Home& home, RoomStore& store, std::string space_name)
    : home_(home), store_(store), space_name_(std::move(space_name)) {}

std::string SpaceSync::system_user() const { return "@coop:" + store_.server_name(); }

std::string SpaceSync::ensure_cooperative_space() {
  for (const auto& [room_id, kind, group] : store_.coop_spaces())
    if (kind == "cooperative") return room_id;
  const auto created = store_.create_room(system_user(), {{"name", space_name_},
                                                          {"topic", "Everyone in the cooperative"},
                                                          {"preset", "private_chat"},
                                                          {"creation_content", {{"type", "m.space"}}}});
  const std::string room_id = created.value("room_id", "");
  store_.mark_space(room_id, "cooperative", "");
  spdlog::info("created the cooperative's Space {}", room_id);
  return room_id;
}

std::string SpaceSync::create_space(const std::string& name, const std::string& group) {
  if (!group.empty()) member_api(home_, "/v1/groups/" + group + "/members");  // 404 for an unknown group
  const auto created = store_.create_room(system_user(), {{"name", name},
                                                          {"preset", "private_chat"},
                                                          {"creation_content", {{"type", "m.space"}}}});
  const std::string room_id = created.value("room_id", "");
  store_.mark_space(room_id, group.empty() ? "space" : "group", group);
  // Every Space hangs off the cooperative's one.
  const auto parent = ensure_cooperative_space();
  store_.send_event(parent, system_user(), "m.space.child", {{"via", {store_.server_name()}}}, room_id);
  store_.send_event(room_id, system_user(), "m.space.parent", {{"via", {store_.server_name()}}, {"canonical", true}}, parent);
  if (!group.empty()) {
    for (const auto& m : member_api(home_, "/v1/groups/" + group + "/members"))
      if (m.value("status", "") == "active")
        set_membership(room_id, "@" + m.value("handle", "") + ":" + store_.server_name(), true, m.value("name", ""));
  }
  return room_id;
}

std::string SpaceSync::create_room(const std::string& name, const std::string& space, bool is_public) {
  json request = {{"name", name}, {"preset", is_public ? "public_chat" : "private_chat"}};
  if (!space.empty()) {
    if (!store_.room_version(space)) throw Error(errc::kNoSuchRoom, "no Space " + space, 404);
    if (!is_public)
      // Room versions 8+: members of the Space may join without an invite.
      request["initial_state"] = json::array({{{"type", "m.room.join_rules"}, {"state_key", ""},
                                              {"content", {{"join_rule", "restricted"},
                                                           {"allow", {{{"type", "m.room_membership"}, {"room_id", space}}}}}}}});
  }
  const auto created = store_.create_room(system_user(), request);
  const std::string room_id = created.value("room_id", "");
  if (is_public) store_.set_published(room_id, true);
  if (!space.empty()) {
    store_.send_event(space, system_user(), "m.space.child", {{"via", {store_.server_name()}}}, room_id);
    store_.send_event(room_id, system_user(), "m.space.parent", {{"via", {store_.server_name()}}, {"canonical", true}}, space);
  }
  return room_id;
}

void SpaceSync::set_membership(const std::string& room_id, const std::string& user_id, bool should_be_in,
                               const std::string& display_name) {
  const auto current = store_.membership(room_id, user_id);
  try {
    if (should_be_in && current != "join") {
      if (current != "invite") store_.send_event(room_id, system_user(), "m.room.member", {{"membership", "invite"}}, user_id);
      // The join carries the member's name, as a client's own join would.
      json join = {{"membership", "join"}};
      const auto [chosen_name, avatar] = store_.profile(user_id);  // what the member set over Matrix wins
      if (chosen_name && !chosen_name->empty()) join["displayname"] = *chosen_name;
      else if (!display_name.empty()) join["displayname"] = display_name;
      if (avatar && !avatar->empty()) join["avatar_url"] = *avatar;
      store_.send_event(room_id, user_id, "m.room.member", join, user_id);
    } else if (!should_be_in && (current == "join" || current == "invite")) {
      store_.send_event(room_id, system_user(), "m.room.member",
                        {{"membership", "leave"}, {"reason", "no longer an active member of this group"}}, user_id);
    }
  } catch (const Error& e) {
    spdlog::warn("space membership of {} in {}: {}", user_id, room_id, e.what());
  }
}

bool SpaceSync::belongs(const json& member, const std::string& kind, const std::string& group) {
  if (member.value("status", "") != "active") return false;
  if (kind == "cooperative") return true;
  if (kind != "group") return false;  // Spaces made with `coop room`: members join them themselves
  try {
    for (const auto& m : member_api(home_, "/v1/groups/" + group + "/members"))
      if (m.value("handle", "") == member.value("handle", "")) return true;
  } catch (const Error&) {
    // The group was removed: nobody is in its Space any more.
  }
  return false;
}

void SpaceSync::reconcile_member(const std::string& handle) {
  std::lock_guard lock(mutex_);
  json member;
  try {
    member = member_api(home_, "/v1/members/" + handle);
  } catch (const Error&) {
    return;
  }
  const bool active = member.value("status", "") == "active";
  const std::string user_id = "@" + handle + ":" + store_.server_name();
  const std::string name = member.value("name", "");
  for (const auto& [room_id, kind, group] : store_.coop_spaces()) {
    if (kind == "cooperative" || kind == "group") {
      // A member who left a Space they belong in stays out until they join again (readmit):
      // reconciling puts them back only when their standing changed, not on every event.
      if (active && store_.membership(room_id, user_id) == "leave" && left_by_choice(room_id, user_id)) continue;
      set_membership(room_id, user_id, belongs(member, kind, group), name);
    } else if (!active) {
      set_membership(room_id, user_id, false, name);
    }
  }
}

void SpaceSync::readmit(const std::string& room_id, const std::string& user_id) {
  std::lock_guard lock(mutex_);
  const auto handle = user_id.substr(1, user_id.find(':') - 1);
  for (const auto& [space, kind, group] : store_.coop_spaces()) {
    if (space != room_id) continue;
    try {
      if (belongs(member_api(home_, "/v1/members/" + handle), kind, group) && store_.membership(room_id, user_id) == "leave")
        store_.send_event(room_id, system_user(), "m.room.member", {{"membership", "invite"}}, user_id);
    } catch (const Error& e) {
      spdlog::warn("cannot readmit {} to {}: {}", user_id, room_id, e.what());
    }
  }
}

bool SpaceSync::left_by_choice(const std::string& room_id, const std::string& user_id) {
  const auto event = store_.state_event(room_id, "m.room.member", user_id);
  return event && event->value("sender", "") == user_id;
}

void SpaceSync::reconcile_all() {
  for (const auto& m : member_api(home_, "/v1/members")) reconcile_member(m.value("handle", ""));
}

}  // namespace coop::room
