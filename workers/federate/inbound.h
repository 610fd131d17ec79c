// Inbound federation: the PDUs other servers send (in /send transactions and join answers)
// checked and stored, with what is missing fetched from the sender; and the room endpoints
// other servers call (make_join and send_join, state, events, auth chains, missing events,
// backfill).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "common/http/router.h"

namespace coop::federate {

struct Context;

// Steps 1 to 3 of "Checks performed on receipt of a PDU" with the signing servers' keys:
// the event with its event_id (redacted when its content hash fails), or coop::Error
// M_BAD_JSON saying why it is dropped.
nlohmann::json verified_pdu(Context& c, const nlohmann::json& pdu, const std::string& room_version);

// One PDU from `origin` for the timeline: checked, what it lacks fetched from origin, then
// stored. Missing auth events always come from /event_auth; missing prev events from
// get_missing_events and then, for what that cannot reach, the state at them (kAll: an event
// of /send), only the state (kState: the oldest events get_missing_events gave), or not at all
// (kNone). The event ID, and "" or why it was not taken (the per-PDU result of /send).
struct Taken {
  std::string event_id;
  std::string error;
};
enum class Fetch { kNone, kState, kAll };
Taken take_pdu(Context& c, const std::string& origin, const nlohmann::json& pdu, Fetch fetch);

void add_inbound_routes(http::Router& r, Context& c, const http::Runner& run);

}  // namespace coop::federate
