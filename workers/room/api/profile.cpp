// Client-Server API "Profiles" and "User directory": both read from the member registry.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/control/client.h"
#include "common/error.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

// Profiles: display names come from the registry.
Response get_profile(ClientApi::Impl& api, const Request& q) {
  const auto name = api.display_name(q.param("userId"));
  json body = json::object();
  if (!name.empty()) body["displayname"] = name;
  return ok(body);
}

Response get_displayname(ClientApi::Impl& api, const Request& q) {
  return ok({{"displayname", api.display_name(q.param("userId"))}});
}

// The user directory is the registry's active members.
Response search_user_directory(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  const auto body = q.json();
  const std::string term = ascii_lower(body.value("search_term", ""));
  const int limit = std::clamp(body.value("limit", 10), 1, 100);
  control::Client client(api.runtime.home().socket("member"));
  const auto members = client.get("/v1/members?status=active");
  members.throw_if_error();
  json results = json::array();
  for (const auto& m : members.json()) {
    const std::string haystack = ascii_lower(m.value("handle", "") + " " + m.value("name", ""));
    if (haystack.find(term) == std::string::npos) continue;
    results.push_back({{"user_id", "@" + m.value("handle", "") + ":" + api.server()}, {"display_name", m.value("name", "")}});
    if (static_cast<int>(results.size()) >= limit) break;
  }
  return ok({{"results", results}, {"limited", static_cast<int>(results.size()) >= limit}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kProfileTable[] = {
    {"GET", "/profile/{userId}", Mount::kV3AndR0, Run::kBlocking, get_profile, "a member's profile"},
    {"GET", "/profile/{userId}/displayname", Mount::kV3AndR0, Run::kBlocking, get_displayname, "a member's display name"},
    {"POST", "/user_directory/search", Mount::kV3AndR0, Run::kBlocking, search_user_directory, "search the active members"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kProfileRoutes = kProfileTable;

}  // namespace coop::room
