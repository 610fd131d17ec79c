// Our users joining rooms that live on other servers (Server-Server API "Joining Rooms",
// joining side): make_join, the join signed here, send_join v2, and the answer's state and
// auth chain checked and stored. coop-room asks for it over the control API.
#pragma once

#include <nlohmann/json.hpp>

#include "common/http/router.h"

namespace coop::federate {

struct Context;

// body: {room (ID or alias), user_id, servers [...], content {displayname, avatar_url}}.
// Returns {room_id}; coop::Error with a Matrix errcode when no server lets the user in.
nlohmann::json join_remote_room(Context& c, const nlohmann::json& body);

}  // namespace coop::federate
