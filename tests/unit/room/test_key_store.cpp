// KeyStore's device list changes as other servers hear of them (Server-Server API "Device
// Management"): which device each change was of, the user's change before it, the cursor the
// federation follows, and changes other servers report.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "../common/temp_dir.h"
#include "workers/room/store/key_store.h"

using coop::room::KeyStore;
using nlohmann::json;

namespace {

json device(const std::string& user, const std::string& id, const std::string& key) {
  return {{"user_id", user},
          {"device_id", id},
          {"algorithms", {"m.olm.v1.curve25519-aes-sha2"}},
          {"keys", {{"ed25519:" + id, key}}},
          {"signatures", json::object()}};
}

const std::string kAlice = "@alice:a.test";

}  // namespace

TEST_CASE("device list changes name their device and the user's change before") {
  coop::test::TempDir dir;
  KeyStore keys(dir.path() / "e2ee.db");
  const auto start = keys.cursor("federation.device_lists");
  CHECK(start == keys.position());  // a new store starts the federation at its head

  keys.upload(kAlice, "PHONE", device(kAlice, "PHONE", "k1"), nullptr, nullptr);
  keys.upload(kAlice, "PHONE", device(kAlice, "PHONE", "k1"), nullptr, nullptr);  // the same keys: no change
  keys.upload(kAlice, "LAPTOP", device(kAlice, "LAPTOP", "k2"), nullptr, nullptr);
  keys.set_cross_signing_keys(kAlice, {{"master", {{"user_id", kAlice}, {"usage", {"master"}}, {"keys", {{"ed25519:m", "m"}}}}}});
  keys.delete_devices(kAlice, {"PHONE"});
  keys.remote_device_list_changed("@bob:b.test");

  const auto changes = keys.device_changes_after(start, 100);
  REQUIRE(changes.size() == 5);
  CHECK(changes[0].device_id == "PHONE");
  CHECK(changes[0].previous == 0);
  CHECK(changes[1].device_id == "LAPTOP");
  CHECK(changes[1].previous == changes[0].position);
  CHECK(changes[2].device_id == "");  // the cross-signing keys
  CHECK(changes[3].device_id == "PHONE");
  CHECK(changes[3].previous == changes[2].position);
  CHECK(changes[4].user_id == "@bob:b.test");
  CHECK(keys.last_device_change(kAlice) == changes[3].position);
  CHECK(keys.changed_users(start, keys.position()) == std::set<std::string>{kAlice, "@bob:b.test"});

  // Paging, and the cursor kept where it is set.
  CHECK(keys.device_changes_after(changes[1].position, 2).size() == 2);
  keys.set_cursor("federation.device_lists", changes[2].position);
  CHECK(keys.cursor("federation.device_lists") == changes[2].position);
  CHECK(keys.device_changes_after(keys.cursor("federation.device_lists"), 100).size() == 2);
}

TEST_CASE("a user's removal is one change per device it had") {
  coop::test::TempDir dir;
  KeyStore keys(dir.path() / "e2ee.db");
  keys.upload(kAlice, "A", device(kAlice, "A", "k1"), nullptr, nullptr);
  keys.upload(kAlice, "B", device(kAlice, "B", "k2"), nullptr, nullptr);
  const auto before = keys.position();
  keys.delete_user(kAlice);
  const auto changes = keys.device_changes_after(before, 100);
  REQUIRE(changes.size() == 2);
  std::set<std::string> devices{changes[0].device_id, changes[1].device_id};
  CHECK(devices == std::set<std::string>{"A", "B"});
  CHECK(keys.device_keys(kAlice, {}).empty());
}

TEST_CASE("to-device messages from another server are kept once per message ID") {
  coop::test::TempDir dir;
  KeyStore keys(dir.path() / "e2ee.db");
  const std::vector<KeyStore::ToDevice> one{{kAlice, "PHONE", {{"ciphertext", "x"}}}};
  CHECK(keys.send_to_device("@bob:b.test", "", "m1", "m.room.encrypted", one));
  CHECK_FALSE(keys.send_to_device("@bob:b.test", "", "m1", "m.room.encrypted", one));
  const auto [messages, last] = keys.to_device(kAlice, "PHONE", 0, keys.position(), 100);
  REQUIRE(messages.size() == 1);
  CHECK(messages[0]["sender"] == "@bob:b.test");
}

TEST_CASE("another server has a bounded share of a device's inbox, in messages and bytes") {
  coop::test::TempDir dir;
  KeyStore keys(dir.path() / "e2ee.db");
  const auto count = [&keys] { return keys.to_device(kAlice, "PHONE", 0, keys.position(), 100000).first.size(); };
  // 1,200 small messages from made-up users of one server: 1,000 are kept.
  for (int i = 0; i < 1200; ++i)
    keys.send_to_device("@u" + std::to_string(i) + ":evil.test", "", "m" + std::to_string(i), "m.room.encrypted",
                        {{kAlice, "PHONE", {{"ciphertext", "x"}}}});
  CHECK(count() == 1000);
  // Big messages from another server stop at 4 MiB.
  const std::string big(60000, 'y');
  for (int i = 0; i < 100; ++i)
    keys.send_to_device("@a:other.test", "", "b" + std::to_string(i), "m.room.encrypted", {{kAlice, "PHONE", {{"ciphertext", big}}}});
  const auto from_other = count() - 1000;
  CHECK(from_other >= 60);
  CHECK(from_other <= 70);
  // Our own members' messages are not held to that share.
  for (int i = 0; i < 50; ++i)
    keys.send_to_device("@bob:a.test", "LAPTOP", "t" + std::to_string(i), "m.room.encrypted", {{kAlice, "PHONE", {{"ciphertext", big}}}});
  CHECK(count() == 1000 + from_other + 50);
}
