// Matrix event redaction and the content and reference hashes that event IDs and signatures cover.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace coop::matrix {

// The redacted form of a PDU under the room version's redaction algorithm (spec "Room
// Versions": "Redactions" of each version). Supports room versions "1" to "11"; the v11 rules
// drop top-level "origin", "membership" and "prev_state" and keep more content. Throws
// coop::Error(errc::kUnsupportedRoomVersion, ..., 400) for other versions and
// coop::Error(errc::kBadJson, ..., 400) if event is not an object.
nlohmann::json redact(const nlohmann::json& event, std::string_view room_version);

// Matrix spec, Server-Server API "Calculating the content hash for an event": sha256 over the
// canonical JSON of the event without "unsigned", "signatures" and "hashes", unpadded base64.
std::string content_hash(const nlohmann::json& event);

// The event with hashes.sha256 set to content_hash(event) (other hash algorithms are kept).
nlohmann::json with_content_hash(nlohmann::json event);

// Matrix spec, Server-Server API "Calculating the reference hash for an event": sha256 over the
// canonical JSON of the redacted event without "signatures" and "unsigned", as unpadded
// standard base64 (like content_hash). Room versions 3+ send PDUs without "event_id"; a caller
// that has added one must remove it first, since the redacted form keeps it.
std::string reference_hash(const nlohmann::json& event, std::string_view room_version);

// The event ID of a PDU: "$" + reference hash, in URL-safe unpadded base64 for room versions
// 4+ and standard unpadded base64 for version 3. Versions 1 and 2 have server-chosen IDs and
// throw coop::Error(errc::kUnsupportedRoomVersion).
std::string event_id_for(const nlohmann::json& event, std::string_view room_version);
// Room version 12: the room ID a create event makes, its event ID with "!" for "$".
std::string room_id_for(const nlohmann::json& create, std::string_view room_version);

}  // namespace coop::matrix
