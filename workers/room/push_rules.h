// Client-Server API "Push Notifications": the predefined push rules and the evaluation of a
// member's rules against an event, which decides what counts as a notification and what
// highlights. Pure: the caller brings the member's rules and the room's facts.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "workers/matrix/glob.h"

namespace coop::room {

// The server-default rules ("Predefined Rules"), in the shape GET /pushrules answers.
nlohmann::json default_push_rules(const std::string& user_id);

// A member's stored rules with the server-default rules they lack added back in the spec's
// order (a member's edits to a default rule are kept), so that rules stored before a new
// default appeared still evaluate as the spec says.
nlohmann::json complete_push_rules(const nlohmann::json& stored_global, const std::string& user_id);

struct PushContext {
  std::string user_id;       // whose rules these are
  std::string display_name;  // for contains_display_name
  int64_t member_count = 0;  // joined members, for room_member_count
  // sender_notification_permission: may the event's sender notify the room with this key
  // ("room")? From the room's power levels.
  std::function<bool(const std::string& key)> sender_may_notify;
};

struct PushActions {
  bool notify = false;
  bool highlight = false;
  std::string sound;  // "" when the rule sets no sound tweak
  nlohmann::json actions() const;  // the actions array as /notifications shows it
};

// The first enabled rule that matches, in the spec's order (override, content, room, sender,
// underride), decides; no match means no notification.
PushActions evaluate_push_rules(const nlohmann::json& global, const nlohmann::json& event, const PushContext& context);

// event_match's glob (workers/matrix/glob.h).
using matrix::glob_matches;

}  // namespace coop::room
