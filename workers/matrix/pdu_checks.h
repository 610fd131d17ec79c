// Server-Server API "Checks performed on receipt of a PDU", the first four: a valid event in
// its room version's format, signed by the servers that must sign it, its content hash
// (else it is redacted), and the authorization rules against its own auth events. The last
// two (the state before it, the current state) need the room's store and come with /send.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "workers/matrix/auth_rules.h"

namespace coop::matrix {

enum class PduVerdict {
  kAccepted,  // passes format, signatures and hashes
  kRedacted,  // the content hash does not match: it goes on redacted, as the spec says
  kDropped,   // not a valid event or not signed as it must be: as if it never came
};

struct PduCheck {
  PduVerdict verdict = PduVerdict::kDropped;
  std::string event_id;  // computed from the reference hash (room versions 3+)
  nlohmann::json event;  // the PDU (redacted when the hash failed), with "event_id" added
  std::string reason;    // why it was redacted or dropped
};

// A server's public key for a key ID (unpadded base64), nullopt when it cannot be had.
using KeyLookup = std::function<std::optional<std::string>(const std::string& server, const std::string& key_id)>;

// Steps 1-3 for room versions 10 to 12. Limits (spec "Size limits"): 65,536 bytes of canonical
// JSON; sender, room_id, type and state_key at most 255 bytes (codepoints before room version
// 11, see oversized_key); at most 10 auth_events and 20 prev_events.
PduCheck check_pdu(const nlohmann::json& pdu, std::string_view room_version, const KeyLookup& keys);

// Which of sender, room_id, type and state_key is over 255 bytes ("" when none is). Before
// room version 11 servers counted codepoints, so such an event passes check_pdu there (it is
// part of some rooms' history) and the store keeps it rejected instead: events may build on
// it, but it never enters the state (as Synapse has done since 1.75).
std::string oversized_key(const nlohmann::json& event);

// Step 4: the auth events are exactly the ones the auth events selection asks for (no
// duplicates, nothing else, a create event among them, none of them rejected), and the event
// passes the authorization rules against them. Throws coop::Error(errc::kMForbidden) naming
// the rule that rejects it.
// In room version 12, room_create is the create event the room ID implies (with its
// event_id), which the auth events do not list.
void check_against_auth_events(const nlohmann::json& event, const std::vector<nlohmann::json>& auth_events,
                               const MembershipLookup& joined_elsewhere, const nlohmann::json* room_create = nullptr);

}  // namespace coop::matrix
