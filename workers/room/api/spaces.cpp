// Client-Server API "Spaces": the hierarchy of rooms below a Space.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "common/error.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

constexpr int kMaxDepth = 50;
constexpr int kMaxPage = 500;
constexpr std::size_t kMaxRooms = 5000;  // one walk lists at most this many rooms

// A breadth-first walk of m.space.child events.
Response hierarchy(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const std::string root = q.param("roomId");
  const auto root_membership = api.store.membership(root, s.user_id);
  if (!api.store.room_version(root)) fail(404, errc::kMNotFound, "no room " + root);
  if (root_membership != "join" && root_membership != "invite") fail(403, errc::kMForbidden, "you cannot see this Space");
  const int max_depth = std::clamp(std::atoi(q.query_value("max_depth", "10").c_str()), 0, kMaxDepth);
  const bool suggested_only = q.query_value("suggested_only") == "true";
  const int limit = std::clamp(std::atoi(q.query_value("limit", "50").c_str()), 1, kMaxPage);
  // Pagination: the token is how many rooms of the walk came before (the walk is the same
  // for the same state, so the offset names the same place).
  const auto from = q.query_value("from");
  const std::size_t offset = from.empty() ? 0 : static_cast<std::size_t>(page_token(from, "from"));
  json rooms = json::array();
  std::set<std::string> seen;
  std::vector<std::pair<std::string, int>> queue = {{root, 0}};
  for (std::size_t i = 0; i < queue.size() && rooms.size() < kMaxRooms; ++i) {
    const auto [room_id, depth] = queue[i];
    if (!seen.insert(room_id).second || !api.store.room_version(room_id)) continue;
    json entry = {{"room_id", room_id}, {"world_readable", false}, {"guest_can_join", false}, {"num_joined_members", 0}};
    json children = json::array();
    std::string join_rule = "invite";
    for (const auto& e : api.store.current_state(room_id)) {
      const std::string type = e.value("type", "");
      const json& content = e["content"];
      if (type == "m.room.name") entry["name"] = content.value("name", "");
      if (type == "m.room.topic") entry["topic"] = content.value("topic", "");
      if (type == "m.room.canonical_alias") entry["canonical_alias"] = content.value("alias", "");
      if (type == "m.room.join_rules") join_rule = content.value("join_rule", "invite");
      if (type == "m.room.create" && content.contains("type")) entry["room_type"] = content["type"];
      if (type == "m.room.member" && content.value("membership", "") == "join")
        entry["num_joined_members"] = entry["num_joined_members"].get<int>() + 1;
      if (type == "m.space.child" && content.contains("via") &&
          (!suggested_only || content.value("suggested", json(false)) == json(true))) {
        children.push_back({{"type", type}, {"state_key", e.value("state_key", "")}, {"content", content},
                            {"sender", e.value("sender", "")}, {"origin_server_ts", e.value("origin_server_ts", int64_t{0})}});
        if (depth < max_depth) queue.emplace_back(e.value("state_key", ""), depth + 1);
      }
    }
    entry["join_rule"] = join_rule;
    entry["children_state"] = children;
    // Only rooms the member could see or join are listed (public, restricted to a Space, or theirs).
    const auto m = api.store.membership(room_id, s.user_id);
    if (room_id != root && join_rule != "public" && join_rule != "restricted" && m != "join" && m != "invite") continue;
    rooms.push_back(entry);
  }
  json page = json::array();
  for (std::size_t i = offset; i < rooms.size() && page.size() < static_cast<std::size_t>(limit); ++i) page.push_back(rooms[i]);
  json body = {{"rooms", page}};
  if (offset + page.size() < rooms.size()) body["next_batch"] = std::to_string(offset + page.size());
  return ok(body);
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kSpaceTable[] = {
    {"GET", "/_matrix/client/v1/rooms/{roomId}/hierarchy", Mount::kExact, Run::kBlocking, hierarchy, "the rooms of a Space, breadth first"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kSpaceRoutes = kSpaceTable;

}  // namespace coop::room
