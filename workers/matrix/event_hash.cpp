// Redaction algorithms (room versions 1-12; 12 redacts as 11 does), content hashes, reference
// hashes and event IDs.
#include "workers/matrix/event_hash.h"

#include <sodium.h>

#include <array>
#include <charconv>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/matrix/base64.h"
#include "workers/matrix/canonical_json.h"

namespace coop::matrix {

namespace {

// What differs between the redaction algorithms of the room versions we support.
struct RedactionRules {
  int version = 0;
  // v1-10 keep top-level "origin", "membership" and "prev_state"; v11 does not.
  bool keeps_origin_membership_prev_state = true;
  // v1-5: m.room.aliases keeps "aliases".
  bool keeps_aliases = false;
  // v8+: m.room.join_rules keeps "allow" (restricted rooms).
  bool keeps_join_rules_allow = false;
  // v9+: m.room.member keeps "join_authorised_via_users_server".
  bool keeps_join_authorised_via = false;
  // v11: m.room.create keeps all content (v1-10 only "creator"), m.room.power_levels keeps
  // "invite", m.room.redaction keeps "redacts", m.room.member keeps third_party_invite.signed.
  bool v11_content = false;
};

RedactionRules rules_for(std::string_view room_version) {
  int version = 0;
  const auto [end, ec] = std::from_chars(room_version.data(), room_version.data() + room_version.size(), version);
  if (ec != std::errc() || end != room_version.data() + room_version.size() || version < 1 || version > 12 ||
      room_version.front() == '0')
    throw coop::Error(errc::kUnsupportedRoomVersion,
                      "unsupported room version \"" + std::string(room_version) + "\"", 400);
  RedactionRules rules;
  rules.version = version;
  rules.keeps_origin_membership_prev_state = version <= 10;
  rules.keeps_aliases = version <= 5;
  rules.keeps_join_rules_allow = version >= 8;
  rules.keeps_join_authorised_via = version >= 9;
  rules.v11_content = version >= 11;
  return rules;
}

void keep_keys(const nlohmann::json& from, nlohmann::json& to, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    const auto found = from.find(key);
    if (found != from.end()) to[key] = *found;
  }
}

nlohmann::json redact_content(const std::string& type, const nlohmann::json& content, const RedactionRules& rules) {
  nlohmann::json kept = nlohmann::json::object();
  if (!content.is_object()) return kept;
  if (type == "m.room.member") {
    keep_keys(content, kept, {"membership"});
    if (rules.keeps_join_authorised_via) keep_keys(content, kept, {"join_authorised_via_users_server"});
    if (rules.v11_content) {
      // Only "signed" survives inside third_party_invite.
      const auto invite = content.find("third_party_invite");
      if (invite != content.end() && invite->is_object()) {
        const auto signed_part = invite->find("signed");
        if (signed_part != invite->end()) kept["third_party_invite"] = {{"signed", *signed_part}};
      }
    }
  } else if (type == "m.room.create") {
    if (rules.v11_content) return content;
    keep_keys(content, kept, {"creator"});
  } else if (type == "m.room.join_rules") {
    keep_keys(content, kept, {"join_rule"});
    if (rules.keeps_join_rules_allow) keep_keys(content, kept, {"allow"});
  } else if (type == "m.room.power_levels") {
    keep_keys(content, kept,
              {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"});
    if (rules.v11_content) keep_keys(content, kept, {"invite"});
  } else if (type == "m.room.history_visibility") {
    keep_keys(content, kept, {"history_visibility"});
  } else if (type == "m.room.redaction") {
    if (rules.v11_content) keep_keys(content, kept, {"redacts"});
  } else if (type == "m.room.aliases") {
    if (rules.keeps_aliases) keep_keys(content, kept, {"aliases"});
  }
  return kept;
}

std::string sha256(std::string_view bytes) {
  static const int sodium_ready = sodium_init();  // thread-safe once; idempotent anyway
  if (sodium_ready < 0) throw coop::Error(errc::kCryptoUnavailable, "libsodium failed to initialise", 500);
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

std::string reference_hash_bytes(const nlohmann::json& event, std::string_view room_version) {
  nlohmann::json redacted = redact(event, room_version);
  redacted.erase("signatures");
  redacted.erase("unsigned");
  return sha256(canonical_json(redacted));
}

}  // namespace

nlohmann::json redact(const nlohmann::json& event, std::string_view room_version) {
  const RedactionRules rules = rules_for(room_version);
  if (!event.is_object()) throw coop::Error(errc::kBadJson, "event is not an object", 400);
  nlohmann::json redacted = nlohmann::json::object();
  keep_keys(event, redacted,
            {"event_id", "type", "room_id", "sender", "state_key", "hashes", "signatures", "depth",
             "prev_events", "auth_events", "origin_server_ts"});
  if (rules.keeps_origin_membership_prev_state) keep_keys(event, redacted, {"origin", "membership", "prev_state"});

  const auto type = event.find("type");
  const auto content = event.find("content");
  const std::string type_name = type != event.end() && type->is_string() ? type->get<std::string>() : std::string();
  // An event with no content still gets an empty one, as the spec's algorithm produces.
  redacted["content"] =
      content != event.end() ? redact_content(type_name, *content, rules) : nlohmann::json::object();
  return redacted;
}

std::string content_hash(const nlohmann::json& event) {
  if (!event.is_object()) throw coop::Error(errc::kBadJson, "event is not an object", 400);
  nlohmann::json hashed = event;
  hashed.erase("unsigned");
  hashed.erase("signatures");
  hashed.erase("hashes");
  return unpadded_base64(sha256(canonical_json(hashed)));
}

nlohmann::json with_content_hash(nlohmann::json event) {
  const std::string hash = content_hash(event);
  if (!event["hashes"].is_object()) event["hashes"] = nlohmann::json::object();
  event["hashes"]["sha256"] = hash;
  return event;
}

std::string reference_hash(const nlohmann::json& event, std::string_view room_version) {
  return unpadded_base64(reference_hash_bytes(event, room_version));
}

std::string room_id_for(const nlohmann::json& create, std::string_view room_version) {
  // Room version 12 "Room IDs": the create event's ID with "!" for "$".
  return "!" + event_id_for(create, room_version).substr(1);
}

std::string event_id_for(const nlohmann::json& event, std::string_view room_version) {
  const RedactionRules rules = rules_for(room_version);
  if (rules.version < 3)
    throw coop::Error(errc::kUnsupportedRoomVersion,
                      "room version " + std::string(room_version) + " has server-chosen event IDs", 400);
  const std::string hash = reference_hash_bytes(event, room_version);
  // Room version 3 used standard base64; 4+ switched to the URL-safe alphabet.
  return "$" + (rules.version == 3 ? unpadded_base64(hash) : unpadded_base64_url(hash));
}

}  // namespace coop::matrix
