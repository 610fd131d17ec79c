// Keeps the cooperative's Spaces in step with the registry: every active member is in the
// cooperative's Space, a working group's members are in its Space, and a suspended or
// removed member is out of all of them (issue #5, Spaces).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <mutex>
#include <string>

namespace coop {
class Home;
}

namespace coop::room {

class RoomStore;

class SpaceSync {
 public:
  SpaceSync(const Home& home, RoomStore& store, std::string space_name);

  // The system user that creates and administers coop's Spaces and rooms: @coop:domain
  // ("coop" is a handle the registry reserves).
  std::string system_user() const;
  // Creates the cooperative's Space when it does not exist yet; returns its room ID.
  std::string ensure_cooperative_space();
  // Creates a Space (for a group when group is not empty) or a room (in a Space when space
  // is not empty); returns the room ID.
  std::string create_space(const std::string& name, const std::string& group);
  std::string create_room(const std::string& name, const std::string& space, bool is_public);

  // Brings one member's Space memberships in line with the registry.
  void reconcile_member(const std::string& handle);
  // Every member (startup, group changes).
  void reconcile_all();
  // A member who left one of coop's Spaces asks to join it again: invited back when the
  // registry says they belong there (active, and in the group for a group's Space).
  void readmit(const std::string& room_id, const std::string& user_id);

 private:
  // Whether a registry member belongs in a Space of this kind and group.
  bool belongs(const nlohmann::json& member, const std::string& kind, const std::string& group);
  // The member's leave is their own (not coop's, not a moderator's).
  bool left_by_choice(const std::string& room_id, const std::string& user_id);
  void set_membership(const std::string& room_id, const std::string& user_id, bool should_be_in,
                      const std::string& display_name);
  const Home& home_;
  RoomStore& store_;
  std::string space_name_;
  std::mutex mutex_;  // one reconcile at a time
};

}  // namespace coop::room
