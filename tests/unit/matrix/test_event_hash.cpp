// Redaction rules of room versions 10 and 11, content hashes, reference hashes and event IDs.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/matrix/canonical_json.h"
#include "workers/matrix/event_hash.h"

namespace mx = coop::matrix;
using nlohmann::json;

namespace {

// Matrix spec, Appendices: Signing Events — the minimal and redactable example events.
const char* const kMinimalEvent =
    R"({"room_id":"!x:domain","sender":"@a:domain","origin":"domain","origin_server_ts":1000000,"signatures":{},"hashes":{},"type":"X","content":{},"prev_events":[],"auth_events":[],"depth":3,"unsigned":{"age_ts":1000000}})";
const char* const kRedactableEvent =
    R"({"content":{"body":"Here is the message content"},"event_id":"$0:domain","origin":"domain","origin_server_ts":1000000,"type":"m.room.message","room_id":"!r:domain","sender":"@u:domain","signatures":{},"unsigned":{"age_ts":1000000}})";

// A v11 membership event whose event ID and redacted form were computed independently with
// Debian's python3-canonicaljson: hashlib.sha256(encode_canonical_json(redacted)), then
// base64.urlsafe_b64encode without padding.
const char* const kMemberEventV11 =
    R"({"type":"m.room.member","state_key":"@alice:coop.example","sender":"@alice:coop.example","room_id":"!room:coop.example","origin":"coop.example","origin_server_ts":1700000000000,"depth":2,"prev_events":["$prev"],"auth_events":["$create"],"content":{"membership":"join","displayname":"Alice","join_authorised_via_users_server":"@bob:coop.example","third_party_invite":{"display_name":"A","signed":{"mxid":"@alice:coop.example","token":"t"}}},"unsigned":{"age":5},"signatures":{"coop.example":{"ed25519:1":"x"}}})";

json event_of(std::string type, json content) {
  return json{{"type", std::move(type)}, {"content", std::move(content)}, {"room_id", "!r:d"}, {"sender", "@u:d"},
              {"origin", "d"}, {"membership", "join"}, {"prev_state", json::array()}, {"unsigned", {{"age", 1}}},
              {"redacts", "$x"}, {"depth", 1}};
}

}  // namespace

TEST_CASE("content hash of the spec's minimal and redactable events") {
  // Matrix spec, Appendices: Signing Events.
  CHECK(mx::content_hash(json::parse(kMinimalEvent)) == "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos");
  CHECK(mx::content_hash(json::parse(kRedactableEvent)) == "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g");
  const json hashed = mx::with_content_hash(json::parse(kMinimalEvent));
  CHECK(hashed["hashes"] == json{{"sha256", "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"}});
  CHECK(mx::content_hash(hashed) == "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos");  // hashes excluded
}

TEST_CASE("content hash covers content but not unsigned or signatures") {
  json event = json::parse(kRedactableEvent);
  const std::string original = mx::content_hash(event);
  event["unsigned"]["age"] = 99;
  event["signatures"]["x"] = {{"ed25519:1", "sig"}};
  event["hashes"] = {{"sha256", "whatever"}};
  CHECK(mx::content_hash(event) == original);
  event["content"]["body"] = "edited";
  CHECK(mx::content_hash(event) != original);
}

TEST_CASE("room version 10 redaction keeps origin, membership and prev_state") {
  const json redacted = mx::redact(json::parse(kRedactableEvent), "10");
  CHECK(mx::canonical_json(redacted) ==
        R"({"content":{},"event_id":"$0:domain","origin":"domain","origin_server_ts":1000000,"room_id":"!r:domain","sender":"@u:domain","signatures":{},"type":"m.room.message"})");
  const json member = mx::redact(event_of("m.room.message", {{"body", "x"}}), "10");
  CHECK(member["origin"] == "d");
  CHECK(member["membership"] == "join");
  CHECK(member["prev_state"] == json::array());
  CHECK_FALSE(member.contains("unsigned"));
  CHECK_FALSE(member.contains("redacts"));
}

TEST_CASE("room version 11 redaction drops origin, membership and prev_state") {
  const json redacted = mx::redact(json::parse(kRedactableEvent), "11");
  CHECK(mx::canonical_json(redacted) ==
        R"({"content":{},"event_id":"$0:domain","origin_server_ts":1000000,"room_id":"!r:domain","sender":"@u:domain","signatures":{},"type":"m.room.message"})");
  const json other = mx::redact(event_of("m.room.message", {{"body", "x"}}), "11");
  CHECK(other == json{{"type", "m.room.message"}, {"content", json::object()}, {"room_id", "!r:d"},
                      {"sender", "@u:d"}, {"depth", 1}});
}

TEST_CASE("redaction keeps content keys per event type and room version") {
  const json member_content = {{"membership", "join"},
                               {"displayname", "A"},
                               {"join_authorised_via_users_server", "@s:d"},
                               {"third_party_invite", {{"display_name", "A"}, {"signed", {{"token", "t"}}}}}};
  CHECK(mx::redact(event_of("m.room.member", member_content), "10")["content"] ==
        json{{"membership", "join"}, {"join_authorised_via_users_server", "@s:d"}});
  CHECK(mx::redact(event_of("m.room.member", member_content), "8")["content"] == json{{"membership", "join"}});
  CHECK(mx::redact(event_of("m.room.member", member_content), "11")["content"] ==
        json{{"membership", "join"},
             {"join_authorised_via_users_server", "@s:d"},
             {"third_party_invite", {{"signed", {{"token", "t"}}}}}});
  CHECK(mx::redact(event_of("m.room.member", {{"membership", "invite"}, {"third_party_invite", "x"}}), "11")["content"] ==
        json{{"membership", "invite"}});

  const json create_content = {{"creator", "@u:d"}, {"room_version", "11"}, {"m.federate", false}};
  CHECK(mx::redact(event_of("m.room.create", create_content), "10")["content"] == json{{"creator", "@u:d"}});
  CHECK(mx::redact(event_of("m.room.create", create_content), "11")["content"] == create_content);

  const json join_rules = {{"join_rule", "restricted"}, {"allow", json::array()}, {"extra", 1}};
  CHECK(mx::redact(event_of("m.room.join_rules", join_rules), "10")["content"] ==
        json{{"join_rule", "restricted"}, {"allow", json::array()}});
  CHECK(mx::redact(event_of("m.room.join_rules", join_rules), "11")["content"] ==
        json{{"join_rule", "restricted"}, {"allow", json::array()}});
  CHECK(mx::redact(event_of("m.room.join_rules", join_rules), "7")["content"] == json{{"join_rule", "restricted"}});

  const json power_levels = {{"ban", 50},           {"events", json::object()}, {"events_default", 0},
                             {"invite", 0},         {"kick", 50},               {"redact", 50},
                             {"state_default", 50}, {"users", {{"@u:d", 100}}}, {"users_default", 0},
                             {"notifications", {{"room", 50}}}};
  json power_levels_v10 = power_levels;
  power_levels_v10.erase("invite");
  power_levels_v10.erase("notifications");
  json power_levels_v11 = power_levels;
  power_levels_v11.erase("notifications");
  CHECK(mx::redact(event_of("m.room.power_levels", power_levels), "10")["content"] == power_levels_v10);
  CHECK(mx::redact(event_of("m.room.power_levels", power_levels), "11")["content"] == power_levels_v11);

  const json visibility = {{"history_visibility", "shared"}, {"other", 1}};
  CHECK(mx::redact(event_of("m.room.history_visibility", visibility), "10")["content"] ==
        json{{"history_visibility", "shared"}});
  CHECK(mx::redact(event_of("m.room.history_visibility", visibility), "11")["content"] ==
        json{{"history_visibility", "shared"}});

  const json redaction = {{"redacts", "$e"}, {"reason", "spam"}};
  CHECK(mx::redact(event_of("m.room.redaction", redaction), "10")["content"] == json::object());
  CHECK(mx::redact(event_of("m.room.redaction", redaction), "11")["content"] == json{{"redacts", "$e"}});

  const json aliases = {{"aliases", {"#a:d"}}};
  CHECK(mx::redact(event_of("m.room.aliases", aliases), "5")["content"] == aliases);
  CHECK(mx::redact(event_of("m.room.aliases", aliases), "6")["content"] == json::object());
}

TEST_CASE("redaction copes with odd events and refuses unknown room versions") {
  CHECK(mx::redact(json{{"type", 5}, {"content", "x"}}, "11") == json{{"type", 5}, {"content", json::object()}});
  CHECK(mx::redact(json::object(), "11") == json{{"content", json::object()}});
  for (const char* version : {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"})
    CHECK_NOTHROW(mx::redact(event_of("m.room.create", {{"creator", "@u:d"}}), version));
  for (const char* version : {"", "0", "13", "011", "1a", "org.matrix.msc2176", "-1"}) {
    INFO(version);
    CHECK_THROWS_AS(mx::redact(json::object(), version), coop::Error);
  }
  CHECK_THROWS_AS(mx::redact(json::array(), "11"), coop::Error);
}

TEST_CASE("event ID of a room version 11 event matches python3-canonicaljson") {
  json event = mx::with_content_hash(json::parse(kMemberEventV11));
  CHECK(event["hashes"]["sha256"] == "aNHv5B6d5VM4fpFI5enlapIouTAvWZklKdtzaJF4/3o");
  CHECK(mx::canonical_json(mx::redact(event, "11")).find(R"("auth_events":["$create"],"content":{"join_authorised_via_users_server":"@bob:coop.example","membership":"join","third_party_invite":{"signed":{"mxid":"@alice:coop.example","token":"t"}}},"depth":2,"hashes")") != std::string::npos);
  CHECK(mx::event_id_for(event, "11") == "$SeunJf6Eu9U1upBieWc4YSYH8EeDNdsYvV_RXQu-B7w");
  // Same digest in standard base64; signatures and unsigned never change it.
  CHECK(mx::reference_hash(event, "11") == "SeunJf6Eu9U1upBieWc4YSYH8EeDNdsYvV/RXQu+B7w");
  event["signatures"]["other.example"] = {{"ed25519:2", "y"}};
  event["unsigned"]["age"] = 1000;
  event["content"]["displayname"] = "Renamed";  // redacted away, so the ID stays
  CHECK(mx::event_id_for(event, "11") == "$SeunJf6Eu9U1upBieWc4YSYH8EeDNdsYvV_RXQu-B7w");
  CHECK(mx::event_id_for(event, "10") != mx::event_id_for(event, "11"));  // v10 keeps "origin"
  CHECK(mx::event_id_for(event, "3") == "$" + mx::reference_hash(event, "3"));  // v3: standard alphabet
  CHECK_THROWS_AS(mx::event_id_for(event, "2"), coop::Error);
}
