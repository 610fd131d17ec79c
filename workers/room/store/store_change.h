// What one commit of room.db or e2ee.db changed, as far as parked /sync requests care: whom to
// wake, so that a message in one room re-runs the syncs of that room's members only.
#pragma once

#include <set>
#include <string>

namespace coop::room {

struct StoreChange {
  std::set<std::string> rooms;         // timeline, state or receipts: the room's members
  std::set<std::string> users;         // this user's own data: account data, to-device, a membership
  std::set<std::string> device_lists;  // these users' keys: everyone who shares a room with them

  bool empty() const { return rooms.empty() && users.empty() && device_lists.empty(); }
  void merge(const StoreChange& other) {
    rooms.insert(other.rooms.begin(), other.rooms.end());
    users.insert(other.users.begin(), other.users.end());
    device_lists.insert(other.device_lists.begin(), other.device_lists.end());
  }
};

}  // namespace coop::room
