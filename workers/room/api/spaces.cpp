// Client-Server API "Spaces": the hierarchy of rooms below a Space, rooms of other servers
// included.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "common/error.h"
#include "workers/room/client_impl.h"
#include "workers/room/space_summary.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

constexpr int kMaxDepth = 50;
constexpr int kMaxPage = 500;
constexpr std::size_t kMaxRooms = 5000;  // one walk lists at most this many rooms

// At most this many rooms of a walk are asked of other servers (GET /hierarchy over
// federation): a Space that names rooms elsewhere shows them, without a request fanning out
// across the federation.
constexpr int kMaxRemoteLookups = 10;

struct Step {
  std::string room_id;
  int depth = 0;
  std::vector<std::string> via;  // servers the parent's m.space.child names
};

// A room we do not hold, as another server's hierarchy answer described it: its summary,
// and the children its own answer listed (so that they are not asked for again).
json remote_room(ClientApi::Impl& api, const Step& step, bool suggested_only, std::map<std::string, json>& known) {
  if (const auto it = known.find(step.room_id); it != known.end()) return it->second;
  if (step.via.empty()) return nullptr;
  json answer;
  try {
    answer = api.federate("/v1/hierarchy", {{"room_id", step.room_id}, {"servers", step.via}, {"suggested_only", suggested_only}},
                          std::chrono::seconds(20));
  } catch (const std::exception&) {
    return nullptr;  // unreachable or refused: the room is left out, as the spec allows
  }
  if (!answer.contains("room") || !answer["room"].is_object() || answer["room"].value("room_id", json()) != step.room_id)
    return nullptr;
  if (answer.contains("children") && answer["children"].is_array())
    for (const auto& child : answer["children"])
      if (child.is_object() && child.value("room_id", json()).is_string()) known.emplace(child["room_id"].get<std::string>(), child);
  return answer["room"];
}

// A breadth-first walk of m.space.child events, through other servers for rooms we do not
// hold (Client-Server API GET /hierarchy, Server-Server API GET /hierarchy).
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
  std::map<std::string, json> remote_known;
  int remote_asked = 0;
  std::vector<Step> queue = {{root, 0, {}}};
  for (std::size_t i = 0; i < queue.size() && rooms.size() < kMaxRooms; ++i) {
    const Step step = queue[i];
    if (!seen.insert(step.room_id).second) continue;
    json entry;
    std::vector<Step> children;
    if (api.store.room_version(step.room_id)) {
      auto room = space_room(api.store, step.room_id, suggested_only);
      entry = std::move(room.entry);
      for (std::size_t c = 0; c < room.children.size(); ++c) children.push_back({room.children[c], step.depth + 1, room.children_via[c]});
    } else {
      if (!remote_known.count(step.room_id) && remote_asked >= kMaxRemoteLookups) continue;
      if (!remote_known.count(step.room_id)) ++remote_asked;
      entry = remote_room(api, step, suggested_only, remote_known);
      if (!entry.is_object()) continue;
      // Another server's answer: every field checked before it is read.
      const auto listed = entry.find("children_state");
      if (listed != entry.end() && listed->is_array())
        for (const auto& child : *listed) {
          if (!child.is_object() || !child.value("state_key", json()).is_string()) continue;
          const auto content = child.find("content");
          const auto servers = content != child.end() && content->is_object() ? content->find("via") : child.end();
          std::vector<std::string> via;
          if (servers != child.end() && servers->is_array())
            for (const auto& server : *servers)
              if (server.is_string()) via.push_back(server.get<std::string>());
          children.push_back({child["state_key"].get<std::string>(), step.depth + 1, via});
        }
    }
    // Only rooms the member could see or join are listed (public, restricted to a Space, or theirs).
    const auto rule = entry.find("join_rule");
    const std::string join_rule = rule != entry.end() && rule->is_string() ? rule->get<std::string>() : "invite";
    const auto m = api.store.membership(step.room_id, s.user_id);
    if (step.room_id != root && join_rule != "public" && join_rule != "restricted" && m != "join" && m != "invite") continue;
    if (!entry.contains("children_state")) entry["children_state"] = json::array();
    rooms.push_back(entry);
    if (step.depth < max_depth)
      for (auto& child : children) queue.push_back(std::move(child));
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
