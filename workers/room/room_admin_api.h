// coop-room's control API: rooms and Spaces for `coop room`, and a member's chat export.
#pragma once

#include <memory>

namespace coop {
class WorkerRuntime;
}

namespace coop::room {

class RoomStore;
class SpaceSync;
struct JitsiSettings;

void add_room_admin_routes(WorkerRuntime& runtime, RoomStore& store, SpaceSync& spaces,
                           std::shared_ptr<const JitsiSettings> jitsi);

}  // namespace coop::room
