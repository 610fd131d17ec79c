// room.db: events built, hashed and signed; auth rules; state after any event from deltas.
#include <catch2/catch.hpp>

#include "../common/temp_dir.h"
#include "common/error.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/signing.h"
#include "workers/room/store/room_store.h"

using coop::room::RoomStore;
using coop::room::StreamPosition;
using nlohmann::json;

namespace {
std::string errcode(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const coop::Error& e) {
    return e.code();
  }
  return "";
}

std::map<std::string, std::string> memberships(const std::vector<json>& state) {
  std::map<std::string, std::string> out;
  for (const auto& e : state)
    if (e.value("type", "") == "m.room.member") out[e.value("state_key", "")] = e["content"].value("membership", "");
  return out;
}
}  // namespace

TEST_CASE("events carry a content hash, a signature and an event ID from their reference hash") {
  coop::test::TempDir dir;
  const auto key = coop::matrix::SigningKey::generate("ed25519:t");
  RoomStore store(dir.path() / "room.db", "example.org", key);
  for (const std::string version : {"11", "12"}) {
    INFO("room version " << version);
    const auto room_id = store.create_room("@a:example.org", {{"name", "x"}, {"room_version", version}}).value("room_id", "");
    const auto sent = store.send_event(room_id, "@a:example.org", "m.room.message", {{"body", "hi"}}, std::nullopt);
    // In room versions 4+ the event ID is not part of the event as signed and hashed.
    auto pdu = sent;
    pdu.erase("event_id");
    CHECK(sent.value("event_id", "") == coop::matrix::event_id_for(pdu, version));
    CHECK(sent["hashes"]["sha256"] == coop::matrix::content_hash(pdu));
    CHECK(coop::matrix::verify_event_signature(pdu, "example.org", "ed25519:t", key.public_key_base64(), version));
    CHECK(sent["prev_events"].size() == 1);
    // Power levels and the sender's membership; and in version 11 the create event, which
    // a version 12 room ID implies instead.
    CHECK(sent["auth_events"].size() == (version == "11" ? 3u : 2u));
  }
  // Version 12 is what a room gets when it asks for none, unless the shard says otherwise
  // (`[workers.room] default_room_version`, for cooperatives whose peers run older servers).
  const auto room_id = store.create_room("@a:example.org", {{"name", "default"}}).value("room_id", "");
  CHECK(store.room_version(room_id) == "12");
  store.set_default_room_version("11");
  CHECK(store.room_version(store.create_room("@a:example.org", {{"name", "older"}}).value("room_id", "")) == "11");
  CHECK_THROWS_AS(store.set_default_room_version("9"), coop::Error);
  CHECK_THROWS_AS(store.create_room("@a:example.org", {{"room_version", 12}}), coop::Error);
}

TEST_CASE("the auth rules refuse outsiders, low power and invite-only joins") {
  coop::test::TempDir dir;
  const auto key = coop::matrix::SigningKey::generate("ed25519:t");
  RoomStore store(dir.path() / "room.db", "example.org", key);
  const auto room_id = store.create_room("@a:example.org", {{"preset", "private_chat"}}).value("room_id", "");
  CHECK(errcode([&] { store.send_event(room_id, "@b:example.org", "m.room.message", {{"body", "x"}}, std::nullopt); }) == "M_FORBIDDEN");
  CHECK(errcode([&] { store.send_event(room_id, "@b:example.org", "m.room.member", {{"membership", "join"}}, "@b:example.org"); }) == "M_FORBIDDEN");
  store.send_event(room_id, "@a:example.org", "m.room.member", {{"membership", "invite"}}, "@b:example.org");
  store.send_event(room_id, "@b:example.org", "m.room.member", {{"membership", "join"}}, "@b:example.org");
  CHECK(errcode([&] { store.send_event(room_id, "@b:example.org", "m.room.name", {{"name", "mine"}}, ""); }) == "M_FORBIDDEN");
  CHECK(errcode([&] { store.send_event(room_id, "@b:example.org", "m.room.power_levels", {{"users", {{"@b:example.org", 100}}}}, ""); }) == "M_FORBIDDEN");
  CHECK(errcode([&] { store.send_event(room_id, "@b:example.org", "m.room.member", {{"membership", "leave"}}, "@a:example.org"); }) == "M_FORBIDDEN");
  store.send_event(room_id, "@a:example.org", "m.room.member", {{"membership", "ban"}}, "@b:example.org");
  CHECK(errcode([&] { store.send_event(room_id, "@b:example.org", "m.room.member", {{"membership", "join"}}, "@b:example.org"); }) == "M_FORBIDDEN");
}

TEST_CASE("the state after any event is rebuilt from deltas and snapshots") {
  coop::test::TempDir dir;
  const auto key = coop::matrix::SigningKey::generate("ed25519:t");
  RoomStore store(dir.path() / "room.db", "example.org", key);
  const auto room_id = store.create_room("@a:example.org", {{"preset", "public_chat"}}).value("room_id", "");
  std::vector<std::string> after_join;
  // More than one snapshot interval of joins, with messages in between.
  for (int i = 0; i < 250; ++i) {
    const std::string user = "@u" + std::to_string(i) + ":example.org";
    store.send_event(room_id, user, "m.room.member", {{"membership", "join"}}, user);
    after_join.push_back(store.send_event(room_id, user, "m.room.message", {{"body", "hi"}}, std::nullopt).value("event_id", ""));
  }
  store.send_event(room_id, "@u7:example.org", "m.room.member", {{"membership", "leave"}}, "@u7:example.org");
  for (int i : {0, 7, 99, 100, 101, 249}) {
    const auto state = store.state_after(after_join[static_cast<std::size_t>(i)]);
    REQUIRE(state);
    const auto members = memberships(*state);
    CHECK(members.size() == static_cast<std::size_t>(i + 2));  // the creator and u0..ui
    CHECK(members.at("@u" + std::to_string(i) + ":example.org") == "join");
    CHECK(members.count("@u" + std::to_string(i + 1) + ":example.org") == 0);
  }
  CHECK(memberships(store.current_state(room_id)).at("@u7:example.org") == "leave");
  CHECK(memberships(*store.state_after(after_join[100])).at("@u7:example.org") == "join");
}

TEST_CASE("sync tokens carry three streams and old two-part tokens still read") {
  const auto three = StreamPosition::parse("s12_3_45");
  REQUIRE(three);
  CHECK(three->events == 12);
  CHECK(three->other == 3);
  CHECK(three->keys == 45);
  CHECK(three->token() == "s12_3_45");
  const auto two = StreamPosition::parse("s12_3");
  REQUIRE(two);
  CHECK(two->keys == 0);
  for (const char* bad : {"", "s", "s1", "s1_", "s_1", "sx_1", "s1_x", "s1_2_x", "s1_2_3_4", "s-1_2", "s1_2_-3",
                          "s99999999999999999999_1", "t1_2", "s1 _2"})
    CHECK_FALSE(StreamPosition::parse(bad));
}
