// coop-room's control API: rooms and Spaces for `coop room`, and a member's chat export.
#pragma once

namespace coop {
class WorkerRuntime;
}

namespace coop::room {

class RoomStore;
class SpaceSync;

void add_room_admin_routes(WorkerRuntime& runtime, RoomStore& store, SpaceSync& spaces);

}  // namespace coop::room
