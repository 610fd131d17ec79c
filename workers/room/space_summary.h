// One room of a Space hierarchy as the Client-Server API (GET /rooms/{roomId}/hierarchy) and
// the Server-Server API (GET /hierarchy/{roomId}) both describe it: name, topic, alias,
// join rule, member count, room type, and its m.space.child events.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace coop::room {

class RoomStore;

struct SpaceRoom {
  nlohmann::json entry;  // the summary, with children_state
  std::string join_rule;
  bool world_readable = false;
  std::vector<std::string> allowed_rooms;  // a restricted room's: members of these may join
  std::vector<std::string> children;  // the rooms its m.space.child events name, in order
  std::vector<std::vector<std::string>> children_via;  // the servers each names
};

// The summary of a room whose state we hold; suggested_only keeps the children marked
// suggested only.
SpaceRoom space_room(RoomStore& store, const std::string& room_id, bool suggested_only);

}  // namespace coop::room
