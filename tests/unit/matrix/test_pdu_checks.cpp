// Server-Server API "Checks performed on receipt of a PDU", steps 1-4: what a remote server's
// events go through before coop takes them. The one named after a Complement test covers the
// part of it these checks can (its auth events; the state parts come with /send).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>


#include "common/error.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/pdu_checks.h"
#include "workers/matrix/signing.h"

using namespace coop::matrix;
using nlohmann::json;

namespace {

// The spec's example key, as the remote server "b.test".
const SigningKey& remote_key() {
  static const auto key = SigningKey::from_seed("ed25519:1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");
  return key;
}
const std::string kRemotePublic = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";

KeyLookup keys() {
  return [](const std::string& server, const std::string& key_id) -> std::optional<std::string> {
    if (server == "b.test" && key_id == "ed25519:1") return kRemotePublic;
    return std::nullopt;
  };
}

json pdu(json fields = json::object()) {
  json event{{"room_id", "!r:a.test"},         {"sender", "@bob:b.test"}, {"type", "m.room.message"},
             {"content", {{"body", "hello"}}}, {"origin_server_ts", 1000}, {"depth", 5},
             {"prev_events", {"$p"}},           {"auth_events", {"$c", "$pl", "$m"}}};
  for (const auto& [key, value] : fields.items()) event[key] = value;
  return sign_event(with_content_hash(std::move(event)), "b.test", remote_key(), "11");
}

bool nobody_elsewhere(const std::string&, const std::string&) { return false; }

json state_event(const std::string& id, const std::string& type, const std::string& key, const std::string& sender, json content) {
  return {{"event_id", id}, {"type", type}, {"state_key", key}, {"sender", sender}, {"content", std::move(content)}};
}

}  // namespace

TEST_CASE("a well-formed PDU signed by its sender's server is accepted, with its event ID") {
  const auto event = pdu();
  const auto checked = check_pdu(event, "11", keys());
  CHECK(checked.verdict == PduVerdict::kAccepted);
  CHECK(checked.event_id == event_id_for(event, "11"));
  CHECK(checked.event["event_id"] == checked.event_id);
  CHECK(checked.event["content"]["body"] == "hello");
  // An event_id the sender put in is never believed.
  auto lying = event;
  lying["event_id"] = "$chosen-by-the-sender";
  CHECK(check_pdu(lying, "11", keys()).event_id == checked.event_id);
}

TEST_CASE("forged or missing signatures drop the event") {
  auto forged = pdu();
  forged["type"] = "m.room.topic";  // covered by the signature (it survives redaction)
  CHECK(check_pdu(forged, "11", keys()).verdict == PduVerdict::kDropped);

  auto unsigned_event = pdu();
  unsigned_event["signatures"] = json::object();
  CHECK(check_pdu(unsigned_event, "11", keys()).reason == "not signed by b.test");

  // Signed by a key nobody can fetch, or by another server than the sender's.
  const auto other = SigningKey::generate("ed25519:2");
  json event{{"room_id", "!r:a.test"}, {"sender", "@bob:b.test"}, {"type", "m.room.message"}, {"content", json::object()},
             {"origin_server_ts", 1}, {"depth", 1}, {"prev_events", json::array()}, {"auth_events", json::array()}};
  CHECK(check_pdu(sign_event(with_content_hash(event), "b.test", other, "11"), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(sign_event(with_content_hash(event), "c.test", remote_key(), "11"), "11", keys()).verdict ==
        PduVerdict::kDropped);

  // A restricted join must be signed by the server of the member who authorised it as well.
  auto join = pdu({{"type", "m.room.member"}, {"state_key", "@bob:b.test"},
                   {"content", {{"membership", "join"}, {"join_authorised_via_users_server", "@alice:a.test"}}}});
  CHECK(check_pdu(join, "11", keys()).reason == "not signed by a.test");
}

TEST_CASE("a wrong content hash redacts the event") {
  auto edited = pdu();
  edited["content"]["body"] = "something else";  // not covered by the signature, only by the hash
  const auto checked = check_pdu(edited, "11", keys());
  CHECK(checked.verdict == PduVerdict::kRedacted);
  CHECK(checked.event["content"] == json::object());
  CHECK(checked.event_id == event_id_for(edited, "11"));  // the reference hash covers the redacted form only
}

TEST_CASE("PDUs outside the room version's format or size limits are dropped") {
  auto without = [](const char* key) {
    auto event = pdu();
    event.erase(key);
    return event;
  };
  for (const char* key : {"room_id", "sender", "type", "content", "depth", "prev_events", "auth_events", "hashes",
                          "signatures", "origin_server_ts"})
    CHECK(check_pdu(without(key), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(pdu({{"depth", -1}}), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(pdu({{"sender", "bob"}}), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(pdu({{"state_key", 5}}), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(pdu({{"type", std::string(256, 't')}}), "11", keys()).verdict == PduVerdict::kDropped);
  json many = json::array();
  for (int i = 0; i < 21; ++i) many.push_back("$e" + std::to_string(i));
  CHECK(check_pdu(pdu({{"prev_events", many}}), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(pdu({{"auth_events", many}}), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(pdu({{"content", {{"body", std::string(70000, 'x')}}}}), "11", keys()).reason == "larger than 65536 bytes");
  auto with_float = pdu();
  with_float["content"]["n"] = 1.5;  // no floats in canonical JSON
  CHECK(check_pdu(with_float, "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(json::array(), "11", keys()).verdict == PduVerdict::kDropped);
  CHECK(check_pdu(pdu(), "1", keys()).verdict == PduVerdict::kDropped);  // versions this server does not take
}

TEST_CASE("TestOutboundFederationEventSizeGetMissingEvents: before room version 11 the key limits count codepoints") {
  // (the store then keeps such an event rejected: oversized_key, test_room_federation)
  std::string emoji;
  for (int i = 0; i < 70; ++i) emoji += "\xF0\x9F\x92\xA5";  // U+1F4A5: 280 bytes, 70 codepoints
  for (const std::string version : {"10", "11", "12"}) {
    INFO("room version " << version);
    json event{{"room_id", version == "12" ? "!" + std::string(43, 'r') : "!r:a.test"},
               {"sender", "@bob:b.test"},
               {"type", "my.room.breaker"},
               {"state_key", emoji},
               {"content", json::object()},
               {"origin_server_ts", 1000},
               {"depth", 5},
               {"prev_events", {"$p"}},
               {"auth_events", {"$pl", "$m"}}};
    const auto signed_event = sign_event(with_content_hash(std::move(event)), "b.test", remote_key(), version);
    const auto check = check_pdu(signed_event, version, keys());
    if (version == "10") {
      CHECK(check.verdict == PduVerdict::kAccepted);
      CHECK(oversized_key(check.event) == "state_key");
    } else {
      CHECK(check.verdict == PduVerdict::kDropped);
      CHECK(check.reason == "state_key is not a string of at most 255 bytes");
    }
  }
  // 256 codepoints are too many in any version.
  json event{{"room_id", "!r:a.test"}, {"sender", "@bob:b.test"}, {"type", "my.room.breaker"}, {"state_key", std::string(256, 'k')},
             {"content", json::object()}, {"origin_server_ts", 1000}, {"depth", 5}, {"prev_events", {"$p"}}, {"auth_events", {"$pl"}}};
  CHECK(check_pdu(sign_event(with_content_hash(std::move(event)), "b.test", remote_key(), "10"), "10", keys()).reason ==
        "state_key is not a string of at most 255 codepoints");
}

TEST_CASE("TestInboundFederationRejectsEventsWithRejectedAuthEvents: auth events must be exactly the right ones") {
  const auto create = state_event("$c", "m.room.create", "", "@alice:a.test", {{"room_version", "11"}});
  const auto levels = state_event("$pl", "m.room.power_levels", "", "@alice:a.test", {{"users", {{"@alice:a.test", 100}}}});
  const auto alice = state_event("$ma", "m.room.member", "@alice:a.test", "@alice:a.test", {{"membership", "join"}});
  const auto bob = state_event("$mb", "m.room.member", "@bob:b.test", "@bob:b.test", {{"membership", "join"}});
  const auto rules = state_event("$jr", "m.room.join_rules", "", "@alice:a.test", {{"join_rule", "public"}});
  const auto topic = state_event("$t", "m.room.topic", "", "@alice:a.test", {{"topic", "x"}});
  const json message{{"type", "m.room.message"}, {"sender", "@bob:b.test"}, {"content", {{"body", "hi"}}}};

  CHECK_NOTHROW(check_against_auth_events(message, {create, levels, bob}, nobody_elsewhere));
  // Without the sender's membership the rules refuse; with duplicates or extras the event is malformed.
  CHECK_THROWS_AS(check_against_auth_events(message, {create, levels}, nobody_elsewhere), coop::Error);
  CHECK_THROWS_AS(check_against_auth_events(message, {create, levels, bob, bob}, nobody_elsewhere), coop::Error);
  CHECK_THROWS_AS(check_against_auth_events(message, {create, levels, bob, topic}, nobody_elsewhere), coop::Error);
  CHECK_THROWS_AS(check_against_auth_events(message, {create, levels, bob, alice}, nobody_elsewhere), coop::Error);
  CHECK_THROWS_AS(check_against_auth_events(message, {levels, bob}, nobody_elsewhere), coop::Error);

  // A join cites the join rules; a ban needs the power to ban.
  const json join{{"type", "m.room.member"}, {"state_key", "@carol:b.test"}, {"sender", "@carol:b.test"},
                  {"content", {{"membership", "join"}}}};
  CHECK_NOTHROW(check_against_auth_events(join, {create, levels, rules}, nobody_elsewhere));
  CHECK_THROWS_AS(check_against_auth_events(join, {create, levels}, nobody_elsewhere), coop::Error);  // invite-only by default
  const json ban{{"type", "m.room.member"}, {"state_key", "@alice:a.test"}, {"sender", "@bob:b.test"},
                 {"content", {{"membership", "ban"}}}};
  CHECK_THROWS_AS(check_against_auth_events(ban, {create, levels, bob, alice}, nobody_elsewhere), coop::Error);
}

TEST_CASE("auth events from another room, and a create event for another server's room ID, are refused") {
  auto in_room = [](json e, const std::string& room) {
    e["room_id"] = room;
    return e;
  };
  const auto create = in_room(state_event("$c", "m.room.create", "", "@alice:a.test", {{"room_version", "11"}}), "!r:a.test");
  const auto levels = in_room(state_event("$pl", "m.room.power_levels", "", "@alice:a.test", {{"users", {{"@alice:a.test", 100}}}}), "!r:a.test");
  const auto bob = in_room(state_event("$mb", "m.room.member", "@bob:b.test", "@bob:b.test", {{"membership", "join"}}), "!r:a.test");
  const json message{{"type", "m.room.message"}, {"room_id", "!r:a.test"}, {"sender", "@bob:b.test"}, {"content", {{"body", "hi"}}}};
  CHECK_NOTHROW(check_against_auth_events(message, {create, levels, bob}, nobody_elsewhere));
  CHECK_THROWS_AS(check_against_auth_events(message, {create, levels, in_room(bob, "!other:a.test")}, nobody_elsewhere), coop::Error);
  // A room ID names the server whose user created the room.
  const json forged_create{{"type", "m.room.create"}, {"room_id", "!victim:a.test"}, {"sender", "@eve:evil.test"},
                           {"state_key", ""}, {"content", {{"room_version", "11"}}}};
  CHECK_THROWS_AS(check_against_auth_events(forged_create, {}, nobody_elsewhere), coop::Error);
  auto own = forged_create;
  own["room_id"] = "!mine:evil.test";
  CHECK_NOTHROW(check_against_auth_events(own, {}, nobody_elsewhere));
}

TEST_CASE("room version 12: the create event has no room ID, the others carry its hash, and it is never an auth event") {
  json create{{"sender", "@bob:b.test"}, {"type", "m.room.create"}, {"state_key", ""},
              {"content", {{"room_version", "12"}}}, {"origin_server_ts", 1000}, {"depth", 1},
              {"prev_events", json::array()}, {"auth_events", json::array()}};
  create = sign_event(with_content_hash(create), "b.test", remote_key(), "12");
  const auto checked_create = check_pdu(create, "12", keys());
  REQUIRE(checked_create.verdict == PduVerdict::kAccepted);
  const std::string room_id = room_id_for(create, "12");
  CHECK(room_id == "!" + checked_create.event_id.substr(1));
  CHECK(room_id.size() == 44);
  CHECK(room_id.find(':') == std::string::npos);
  auto with_room = create;
  with_room["room_id"] = room_id;
  CHECK(check_pdu(sign_event(with_content_hash(with_room), "b.test", remote_key(), "12"), "12", keys()).verdict == PduVerdict::kDropped);

  const json member_content{{"membership", "join"}};
  json join{{"room_id", room_id}, {"sender", "@bob:b.test"}, {"type", "m.room.member"}, {"state_key", "@bob:b.test"},
            {"content", member_content}, {"origin_server_ts", 1001}, {"depth", 2},
            {"prev_events", {checked_create.event_id}}, {"auth_events", json::array()}};
  join = sign_event(with_content_hash(join), "b.test", remote_key(), "12");
  const auto checked_join = check_pdu(join, "12", keys());
  REQUIRE(checked_join.verdict == PduVerdict::kAccepted);
  // A room ID with a server part is not a version 12 room ID.
  auto old_style = pdu({{"room_id", "!r:a.test"}});
  CHECK(check_pdu(old_style, "12", keys()).verdict == PduVerdict::kDropped);

  // Step 4: the creator's first join passes with the create event the room ID implies...
  const auto room_create = checked_create.event;
  CHECK_NOTHROW(check_against_auth_events(checked_join.event, {}, nobody_elsewhere, &room_create));
  // ...not without it, nor with another room's...
  CHECK_THROWS_AS(check_against_auth_events(checked_join.event, {}, nobody_elsewhere), coop::Error);
  auto other_create = room_create;
  other_create["event_id"] = "$another";
  CHECK_THROWS_AS(check_against_auth_events(checked_join.event, {}, nobody_elsewhere, &other_create), coop::Error);
  // ...and listing it among the auth events is refused (rule 3.2).
  CHECK_THROWS_AS(check_against_auth_events(checked_join.event, {room_create}, nobody_elsewhere, &room_create), coop::Error);
}
