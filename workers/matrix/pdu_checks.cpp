// Server-Server API "Checks performed on receipt of a PDU", "Validating hashes and signatures
// on received events" and the room versions' "Event format" and "Authorization rules".
#include "workers/matrix/pdu_checks.h"

#include <algorithm>
#include <set>

#include "common/error.h"
#include "workers/matrix/canonical_json.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/ids.h"
#include "workers/matrix/signing.h"
#include "workers/matrix/state_res.h"

namespace coop::matrix {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxPduBytes = 65536;
constexpr std::size_t kMaxIdBytes = 255;
constexpr std::size_t kMaxAuthEvents = 10;
constexpr std::size_t kMaxPrevEvents = 20;

// The size limits count bytes from room version 11 on. Before it, the servers that made
// those rooms counted codepoints, so a 70-emoji (280-byte) state key is part of some rooms'
// history and must not break them (Complement TestOutboundFederationEventSizeGetMissingEvents):
// check_pdu lets it through and the store keeps it rejected (oversized_key).
bool strict_byte_limits(std::string_view room_version) {
  int number = 0;
  for (const char ch : room_version) {
    if (ch < '0' || ch > '9') return true;
    number = number * 10 + (ch - '0');
  }
  return number >= 11;
}

std::size_t length_of(const std::string& text, bool bytes) {
  if (bytes) return text.size();
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char ch) { return (ch & 0xC0) != 0x80; }));
}

bool is_string(const json& pdu, const char* key, bool bytes, std::size_t max = kMaxIdBytes) {
  const auto it = pdu.find(key);
  return it != pdu.end() && it->is_string() && length_of(it->get_ref<const std::string&>(), bytes) <= max;
}

bool is_id_list(const json& pdu, const char* key, std::size_t max) {
  const auto it = pdu.find(key);
  if (it == pdu.end() || !it->is_array() || it->size() > max) return false;
  for (const auto& id : *it)
    if (!id.is_string() || id.get_ref<const std::string&>().empty() || id.get_ref<const std::string&>()[0] != '$')
      return false;
  return true;
}

// Step 1: the room version's event format (versions 3+: no event_id in the PDU, IDs of
// events it cites as strings; version 12: no room_id on the create event, a room ID without
// a server part on the others) and the size limits. "" when it is valid, else why not.
std::string format_error(const json& pdu, std::string_view room_version) {
  if (!pdu.is_object()) return "not a JSON object";
  std::string canonical;
  try {
    canonical = canonical_json(pdu);
  } catch (const Error& e) {
    return std::string("not canonical JSON: ") + e.what();
  }
  if (canonical.size() > kMaxPduBytes) return "larger than 65536 bytes";
  const bool bytes = strict_byte_limits(room_version);
  for (const char* key : {"sender", "type"})
    if (!is_string(pdu, key, bytes) || pdu[key].get_ref<const std::string&>().empty()) return std::string(key) + " is missing or too long";
  const std::string sender = pdu["sender"];
  if (sender[0] != '@' || server_of(sender).empty()) return "sender is not a user ID";
  const bool v12 = has_room_creators(std::string(room_version));
  if (v12 && pdu["type"] == "m.room.create") {
    if (pdu.contains("room_id")) return "a room version 12 create event has no room_id";
  } else {
    if (!is_string(pdu, "room_id", bytes) || pdu["room_id"].get_ref<const std::string&>().empty()) return "room_id is missing or too long";
    const auto& room_id = pdu["room_id"].get_ref<const std::string&>();
    if (room_id[0] != '!') return "room_id is not a room ID";
    // Version 12: "!" and the 43 characters of the create event's URL-safe base64 hash.
    if (v12 && (room_id.size() != 44 || room_id.find_first_not_of(
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 1) != std::string::npos))
      return "room_id is not a room version 12 room ID";
  }
  if (pdu.contains("state_key") && !is_string(pdu, "state_key", bytes))
    return std::string("state_key is not a string of at most 255 ") + (bytes ? "bytes" : "codepoints");
  if (!pdu.contains("content") || !pdu["content"].is_object()) return "content is not an object";
  if (!is_id_list(pdu, "auth_events", kMaxAuthEvents)) return "auth_events is not a list of at most 10 event IDs";
  if (!is_id_list(pdu, "prev_events", kMaxPrevEvents)) return "prev_events is not a list of at most 20 event IDs";
  const auto depth = pdu.find("depth");
  if (depth == pdu.end() || !depth->is_number_integer() || depth->get<int64_t>() < 0) return "depth is not a non-negative integer";
  const auto ts = pdu.find("origin_server_ts");
  if (ts == pdu.end() || !ts->is_number_integer()) return "origin_server_ts is not an integer";
  const auto hashes = pdu.find("hashes");
  if (hashes == pdu.end() || !hashes->is_object() || !is_string(*hashes, "sha256", true, 64)) return "hashes.sha256 is missing";
  const auto signatures = pdu.find("signatures");
  if (signatures == pdu.end() || !signatures->is_object()) return "signatures is not an object";
  return "";
}

// Step 2 ("Validating signatures"): the servers whose signatures the event must carry: the
// sender's, and for a restricted join the server of the member who authorised it.
std::set<std::string> required_signers(const json& pdu) {
  std::set<std::string> servers{server_of(pdu["sender"])};
  if (pdu["type"] == "m.room.member") {
    const auto& content = pdu["content"];
    if (content.value("membership", json()) == "join" && content.contains("join_authorised_via_users_server") &&
        content["join_authorised_via_users_server"].is_string())
      servers.insert(server_of(content["join_authorised_via_users_server"]));
  }
  return servers;
}

bool signed_by(const json& pdu, const std::string& server, std::string_view room_version, const KeyLookup& keys) {
  const auto& signatures = pdu["signatures"];
  const auto mine = signatures.find(server);
  if (mine == signatures.end() || !mine->is_object()) return false;
  for (const auto& [key_id, signature] : mine->items()) {
    if (key_id.rfind("ed25519:", 0) != 0 || !signature.is_string()) continue;
    const auto public_key = keys(server, key_id);
    if (public_key && verify_event_signature(pdu, server, key_id, *public_key, room_version)) return true;
  }
  return false;
}

}  // namespace

std::string oversized_key(const json& event) {
  for (const char* key : {"sender", "room_id", "type", "state_key"})
    if (event.contains(key) && event[key].is_string() && event[key].get_ref<const std::string&>().size() > kMaxIdBytes)
      return key;
  return "";
}

PduCheck check_pdu(const json& pdu, std::string_view room_version, const KeyLookup& keys) {
  PduCheck result;
  if (room_version != "10" && room_version != "11" && room_version != "12") {
    result.reason = "room version " + std::string(room_version) + " is not supported for federation";
    return result;
  }
  if (auto error = format_error(pdu, room_version); !error.empty()) {
    result.reason = error;
    return result;
  }
  json event = pdu;
  event.erase("event_id");  // not part of a version 3+ PDU; never trusted when present
  for (const auto& server : required_signers(event))
    if (!signed_by(event, server, room_version, keys)) {
      result.reason = "not signed by " + server;
      return result;
    }
  result.event_id = event_id_for(event, room_version);
  if (event["hashes"]["sha256"] != content_hash(event)) {
    result.verdict = PduVerdict::kRedacted;
    result.reason = "the content hash does not match";
    event = redact(event, room_version);
  } else {
    result.verdict = PduVerdict::kAccepted;
  }
  event["event_id"] = result.event_id;
  result.event = std::move(event);
  return result;
}

void check_against_auth_events(const json& event, const std::vector<json>& auth_events,
                               const MembershipLookup& joined_elsewhere, const json* room_create) {
  auto reject = [](const std::string& why) { throw Error(errc::kMForbidden, why, 403); };
  const auto wanted = auth_types_for(event);
  const std::set<std::pair<std::string, std::string>> allowed(wanted.begin(), wanted.end());
  StateMap state;
  for (const auto& auth : auth_events) {
    if (!auth.is_object() || !auth.contains("state_key") || !auth["state_key"].is_string() || !auth["type"].is_string())
      reject("an auth event is not a state event");
    if (auth.value("room_id", json()) != event.value("room_id", json())) reject("an auth event is from another room");
    std::pair<std::string, std::string> key{auth["type"], auth["state_key"]};
    if (!allowed.count(key)) reject("auth event " + key.first + " (" + key.second + ") is not one the rules read");
    if (!state.emplace(key, auth).second) reject("two auth events for " + key.first + " (" + key.second + ")");
  }
  // Room version 12: the create event is never among the auth events (the selection does not
  // ask for it, so listing it was refused above); the room ID names it.
  if (const auto implied = implied_create_id(event); !implied.empty()) {
    if (!room_create || room_create->value("event_id", "") != implied) reject("the room's create event is not known here");
    state[{"m.room.create", ""}] = *room_create;
  }
  if (event.value("type", "") != "m.room.create" && !state.count({"m.room.create", ""}))
    reject("no m.room.create among the auth events");
  authorize(event, state, joined_elsewhere);
}

}  // namespace coop::matrix
