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

namespace coop::federate {

// body: {room_id, sender, user_id, content {reason, is_direct}}: one of our members invites a
// user of another server ("Inviting to a room"): the invite is signed here, countersigned by
// the invitee's server (PUT /v2/invite), then stored and sent to the room's servers.
nlohmann::json invite_remote_user(Context& c, const nlohmann::json& body);

// body: {room_id, user_id, servers [...]}: one of our members declines an invitation into a
// room this server is not in ("Leaving Rooms (Rejecting Invites)"): make_leave and send_leave
// v2 through the first server that answers. coop::Error when none does.
nlohmann::json leave_remote_room(Context& c, const nlohmann::json& body);

}  // namespace coop::federate
