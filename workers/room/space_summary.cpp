// See space_summary.h.
#include "workers/room/space_summary.h"

#include "workers/room/store/room_store.h"

namespace coop::room {

using nlohmann::json;

SpaceRoom space_room(RoomStore& store, const std::string& room_id, bool suggested_only) {
  SpaceRoom out;
  out.entry = {{"room_id", room_id}, {"world_readable", false}, {"guest_can_join", false}, {"num_joined_members", 0}};
  json children = json::array();
  out.join_rule = "invite";
  int joined = 0;
  for (const auto& e : store.current_state(room_id)) {
    const std::string type = e.value("type", "");
    const json& content = e["content"];
    if (!content.is_object()) continue;
    if (type == "m.room.name" && content.value("name", json()).is_string()) out.entry["name"] = content["name"];
    if (type == "m.room.topic" && content.value("topic", json()).is_string()) out.entry["topic"] = content["topic"];
    if (type == "m.room.avatar" && content.value("url", json()).is_string()) out.entry["avatar_url"] = content["url"];
    if (type == "m.room.canonical_alias" && content.value("alias", json()).is_string()) out.entry["canonical_alias"] = content["alias"];
    if (type == "m.room.join_rules" && content.value("join_rule", json()).is_string()) {
      out.join_rule = content["join_rule"];
      for (const auto& allow : content.value("allow", json::array()))
        if (allow.is_object() && allow.value("type", json()) == "m.room_membership" && allow.value("room_id", json()).is_string())
          out.allowed_rooms.push_back(allow["room_id"].get<std::string>());
    }
    if (type == "m.room.history_visibility") out.world_readable = content.value("history_visibility", json()) == "world_readable";
    if (type == "m.room.guest_access") out.entry["guest_can_join"] = content.value("guest_access", json()) == "can_join";
    if (type == "m.room.create" && content.contains("type")) out.entry["room_type"] = content["type"];
    if (type == "m.room.member" && content.value("membership", json()) == "join") ++joined;
    if (type == "m.space.child" && content.contains("via") && content["via"].is_array() && !content["via"].empty() &&
        (!suggested_only || content.value("suggested", json(false)) == json(true))) {
      children.push_back({{"type", type}, {"state_key", e.value("state_key", "")}, {"content", content},
                          {"sender", e.value("sender", "")}, {"origin_server_ts", e.value("origin_server_ts", int64_t{0})}});
      out.children.push_back(e.value("state_key", ""));
      std::vector<std::string> via;
      for (const auto& server : content["via"])
        if (server.is_string()) via.push_back(server.get<std::string>());
      out.children_via.push_back(std::move(via));
    }
  }
  out.entry["num_joined_members"] = joined;
  out.entry["world_readable"] = out.world_readable;
  out.entry["join_rule"] = out.join_rule;
  if (!out.allowed_rooms.empty()) out.entry["allowed_room_ids"] = out.allowed_rooms;
  out.entry["children_state"] = children;
  return out;
}

}  // namespace coop::room
