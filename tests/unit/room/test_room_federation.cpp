// room.db for federation: remote joins, events from other servers checked against the state
// before them and the current state, forks and their resolution; three stores standing for
// three shards exchange events in random order and end with the same state.
#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <random>
#include <set>

#include "../common/temp_dir.h"
#include "common/error.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/signing.h"
#include "workers/room/store/room_store.h"

using coop::room::RoomStore;
using Kind = RoomStore::Accepted::Kind;
using nlohmann::json;

namespace {

struct Shard {
  std::string name;
  coop::matrix::SigningKey key;
  std::unique_ptr<RoomStore> store;
  Shard(const coop::test::TempDir& dir, const std::string& name)
      : name(name), key(coop::matrix::SigningKey::generate("ed25519:" + name.substr(0, 1))),
        store(std::make_unique<RoomStore>(dir.path() / (name + ".db"), name, key)) {}
};

// A member of `joiner` joins `room` through `resident`, as make_join and send_join do.
void join_through(Shard& resident, Shard& joiner, const std::string& room, const std::string& user,
                  const std::string& version = "11") {
  auto event = resident.store->membership_template(room, user, "join");
  event["origin"] = joiner.name;
  event = coop::matrix::sign_event(coop::matrix::with_content_hash(std::move(event)), joiner.name, joiner.key, version);
  event["event_id"] = coop::matrix::event_id_for(event, version);
  REQUIRE(resident.store->accept_remote(event, true).kind == Kind::kStored);
  const auto state = resident.store->state_ids_before(event.value("event_id", "")).value();
  auto chain_from = state;
  chain_from.push_back(event.value("event_id", ""));
  auto events = resident.store->auth_chain(chain_from);
  for (auto& e : resident.store->events_by_id(state)) events.push_back(e);
  std::stable_sort(events.begin(), events.end(), [](const json& a, const json& b) { return a["depth"] < b["depth"]; });
  const auto create = std::find_if(events.begin(), events.end(), [](const json& e) { return e["type"] == "m.room.create"; });
  REQUIRE(create != events.end());
  joiner.store->add_remote_room(room, version, *create);
  for (const auto& e : events) {
    const auto kind = joiner.store->accept_outlier(e).kind;
    CHECK((kind == Kind::kStored || kind == Kind::kDuplicate));
  }
  REQUIRE(joiner.store->accept_join(event, state).kind == Kind::kStored);
}

std::map<std::pair<std::string, std::string>, std::string> state_of(RoomStore& store, const std::string& room) {
  std::map<std::pair<std::string, std::string>, std::string> out;
  for (const auto& e : store.current_state(room)) out[{e.value("type", ""), e.value("state_key", "")}] = e.value("event_id", "");
  return out;
}

}  // namespace

TEST_CASE("a member of another server joins, and both sides build on each other's events") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test"), b(dir, "b.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "public_chat"}, {"name", "Commons"}}).value("room_id", "");
  join_through(a, b, room, "@bob:b.test");
  CHECK(b.store->membership(room, "@bob:b.test") == "join");
  CHECK(a.store->membership(room, "@bob:b.test") == "join");
  CHECK(b.store->state_event(room, "m.room.name", "").value()["content"]["name"] == "Commons");
  CHECK(state_of(*a.store, room) == state_of(*b.store, room));
  // The join answer's events are outliers on b.test: not in its timeline, the join is.
  const auto timeline = b.store->events_between(room, 0, INT64_MAX, 100, false);
  REQUIRE(timeline.size() == 1);
  CHECK(timeline[0].event["type"] == "m.room.member");
  // a.test sends b.test what happened after b.test's first join; b.test's own events no.
  CHECK(a.store->remote_servers() == std::vector<std::string>{"b.test"});
  const auto from = a.store->first_join_stream("b.test");
  CHECK(a.store->events_for_server("b.test", from, 10).empty());
  const auto hello = a.store->send_event(room, "@alice:a.test", "m.room.message", {{"body", "hello"}}, std::nullopt);
  const auto queued = a.store->events_for_server("b.test", from, 10);
  REQUIRE(queued.size() == 1);
  CHECK(queued[0].event["event_id"] == hello["event_id"]);

  // Push rules are our own members' business: bob's server counts his notifications.
  CHECK(a.store->unread_counts(room, "@bob:b.test", false).main.first == 0);
  CHECK(b.store->accept_remote(hello).kind == Kind::kStored);
  CHECK(b.store->unread_counts(room, "@bob:b.test", false).main.first == 1);
  CHECK(b.store->accept_remote(hello).kind == Kind::kDuplicate);
  const auto reply = b.store->send_event(room, "@bob:b.test", "m.room.message", {{"body", "hi"}}, std::nullopt);
  CHECK(reply["prev_events"] == json::array({hello["event_id"]}));
  CHECK(b.store->events_for_server("a.test", b.store->first_join_stream("a.test"), 10).size() == 1);
  CHECK(a.store->accept_remote(reply).kind == Kind::kStored);
  CHECK(a.store->extremities(room) == std::vector<std::string>{reply.value("event_id", "")});
}

TEST_CASE("an event whose prev events are unknown waits; one the auth rules refuse is rejected for good") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test"), b(dir, "b.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "public_chat"}}).value("room_id", "");
  join_through(a, b, room, "@bob:b.test");
  const auto first = a.store->send_event(room, "@alice:a.test", "m.room.message", {{"body", "1"}}, std::nullopt);
  const auto second = a.store->send_event(room, "@alice:a.test", "m.room.message", {{"body", "2"}}, std::nullopt);
  auto missing = b.store->accept_remote(second);
  CHECK(missing.kind == Kind::kMissing);
  CHECK(missing.missing == std::vector<std::string>{first.value("event_id", "")});
  CHECK(b.store->accept_remote(first).kind == Kind::kStored);
  CHECK(b.store->accept_remote(second).kind == Kind::kStored);

  // Bob may not set the power levels: rejected, and its copies too; built on, also rejected.
  auto forged = b.store->membership_template(room, "@bob:b.test", "join");
  forged["type"] = "m.room.power_levels";
  forged["state_key"] = "";
  forged["content"] = {{"users", {{"@bob:b.test", 100}}}};
  forged["event_id"] = "$forged";
  const auto rejected = a.store->accept_remote(forged);
  CHECK(rejected.kind == Kind::kRejected);
  CHECK(a.store->accept_remote(forged).kind == Kind::kRejected);
  CHECK(a.store->rejection("$forged").has_value());
  auto after = forged;
  after["type"] = "m.room.message";
  after.erase("state_key");
  after["content"] = {{"body", "x"}};
  after["auth_events"].push_back("$forged");
  after["event_id"] = "$after";
  CHECK(a.store->accept_remote(after).kind == Kind::kRejected);

  // What a gap's state must still fetch: neither stored nor rejected, in the order asked.
  CHECK(a.store->unknown_event_ids({"$nowhere", first.value("event_id", ""), "$forged", "$also-nowhere"}) ==
        std::vector<std::string>{"$nowhere", "$also-nowhere"});
  // Servers with a member here, ever: b.test (bob joined); not one never heard of.
  CHECK(a.store->server_has_memberships("b.test"));
  CHECK_FALSE(a.store->server_has_memberships("c.test"));
}

TEST_CASE("in a version 10 room an event with a key over 255 bytes is kept rejected, and what builds on it is taken") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test"), b(dir, "b.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "10"}, {"preset", "public_chat"},
                                                          {"power_level_content_override", {{"state_default", 0}}}})
                        .value("room_id", "");
  join_through(a, b, room, "@bob:b.test", "10");
  std::string emoji;
  for (int i = 0; i < 70; ++i) emoji += "\xF0\x9F\x92\xA5";  // 280 bytes, 70 codepoints: check_pdu lets it through in v10
  const auto join_rules = a.store->state_event(room, "m.room.join_rules", "")->value("event_id", "");
  auto base = b.store->membership_template(room, "@bob:b.test", "join");
  json auth = json::array();
  for (const auto& id : base["auth_events"])
    if (id != join_rules) auth.push_back(id);
  auto breaker = base;
  breaker["type"] = "my.room.breaker";
  breaker["state_key"] = emoji;
  breaker["content"] = json::object();
  breaker["auth_events"] = auth;
  breaker["event_id"] = "$breaker";
  const auto rejected = a.store->accept_remote(breaker);
  CHECK(rejected.kind == Kind::kRejected);
  CHECK(rejected.reason == "state_key is longer than 255 bytes");
  CHECK_FALSE(a.store->state_event(room, "my.room.breaker", emoji));
  auto next = base;
  next["type"] = "m.room.message";
  next.erase("state_key");
  next["content"] = {{"body", "after the breaker"}};
  next["auth_events"] = auth;
  next["prev_events"] = {"$breaker"};
  next["depth"] = breaker["depth"].get<int64_t>() + 1;
  next["event_id"] = "$next";
  CHECK(a.store->accept_remote(next).kind == Kind::kStored);

  // One the auth rules refuse (bob may not change the power levels) is rejected too, and
  // what builds on it also takes the state before it (Server-Server API "Rejection").
  auto refused = base;
  refused["type"] = "m.room.power_levels";
  refused["state_key"] = "";
  refused["content"] = {{"users", {{"@bob:b.test", 100}}}};
  refused["auth_events"] = auth;
  refused["prev_events"] = {"$next"};
  refused["depth"] = next["depth"].get<int64_t>() + 1;
  refused["event_id"] = "$refused";
  CHECK(a.store->accept_remote(refused).kind == Kind::kRejected);
  auto after_refused = next;
  after_refused["content"] = {{"body", "after the refused one"}};
  after_refused["prev_events"] = {"$refused"};
  after_refused["depth"] = refused["depth"].get<int64_t>() + 1;
  after_refused["event_id"] = "$after-refused";
  CHECK(a.store->accept_remote(after_refused).kind == Kind::kStored);
  CHECK(a.store->state_event(room, "m.room.power_levels", "")->value("event_id", "") != "$refused");
}

TEST_CASE("an event that passes against the state before it but not the current state is soft-failed") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test"), b(dir, "b.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "public_chat"}}).value("room_id", "");
  join_through(a, b, room, "@bob:b.test");
  // Alice bans bob on a.test; bob, not knowing, talks on b.test.
  a.store->send_event(room, "@alice:a.test", "m.room.member", {{"membership", "ban"}}, "@bob:b.test");
  const auto late = b.store->send_event(room, "@bob:b.test", "m.room.message", {{"body", "still here"}}, std::nullopt);
  const auto result = a.store->accept_remote(late);
  CHECK(result.kind == Kind::kSoftFailed);
  for (const auto& e : a.store->events_between(room, 0, INT64_MAX, 100, false)) CHECK(e.event["event_id"] != late["event_id"]);
  CHECK(a.store->extremities(room) != std::vector<std::string>{late.value("event_id", "")});
}

TEST_CASE("three servers forking and merging in random order end with the same state") {
  // Room version 11 (state resolution v2) and 12 (v2.1, creators, domain-less room IDs).
  for (const std::string version : {"11", "12"})
  for (const unsigned seed : {1u, 7u, 42u, 2026u, 31337u, 99u}) {
    INFO("room version " << version << ", seed " << seed);
    coop::test::TempDir dir;
    Shard a(dir, "a.test"), b(dir, "b.test"), c(dir, "c.test");
    Shard* shards[] = {&a, &b, &c};
    const std::string users[] = {"@alice:a.test", "@bob:b.test", "@carol:c.test"};
    const auto room =
        a.store->create_room(users[0], {{"preset", "public_chat"}, {"topic", "start"}, {"room_version", version}}).value("room_id", "");
    join_through(a, b, room, users[1], version);
    join_through(a, c, room, users[2], version);
    // Bob may change the topic; carol may not. b.test and c.test learn of each other's join.
    // (In version 12 alice, the creator, is above every level and is not listed.)
    json listed = {{users[1], 50}};
    if (version == "11") listed[users[0]] = 100;
    const auto levels = a.store->send_event(room, users[0], "m.room.power_levels", {{"users", listed}, {"state_default", 50}}, "");
    std::deque<json> pending[3];  // what each server has yet to receive, in sending order
    const auto join_b = b.store->state_event(room, "m.room.member", users[1]).value();
    const auto join_c = c.store->state_event(room, "m.room.member", users[2]).value();
    pending[1].push_back(levels);
    pending[2].push_back(levels);
    pending[1].push_back(join_c);
    pending[2].push_back(join_b);

    const auto fill_gap = [&](RoomStore& store, const std::string& id) {
      for (auto* from : shards) {
        const auto state = from->store->state_ids_before(id);
        if (!state || &store == from->store.get()) continue;
        auto events = from->store->auth_chain(*state);
        for (auto& e : from->store->events_by_id(*state)) events.push_back(e);
        for (auto& e : from->store->events_by_id({id})) events.push_back(e);
        std::stable_sort(events.begin(), events.end(), [](const json& x, const json& y) { return x["depth"] < y["depth"]; });
        for (const auto& e : events) store.accept_outlier(e);
        store.accept_outlier_state(id, *state);
        return;
      }
    };
    std::mt19937 random(seed);
    const auto deliver_some = [&](int to, bool all) {
      // Deliver in a random order; what lacks its prev events waits for the next round.
      std::shuffle(pending[to].begin(), pending[to].end(), random);
      bool moved = true;
      while (moved) {
        moved = false;
        std::deque<json> left;
        for (auto& e : pending[to]) {
          if (!all && random() % 2) {
            left.push_back(std::move(e));
            continue;
          }
          auto result = shards[to]->store->accept_remote(e);
          if (result.kind == Kind::kMissing && all) {
            // What coop-federate does when get_missing_events cannot reach back far enough:
            // the prev event and the state before it, from a server that has them.
            for (const auto& id : result.missing) fill_gap(*shards[to]->store, id);
            result = shards[to]->store->accept_remote(e);
          }
          if (result.kind == Kind::kMissing)
            left.push_back(std::move(e));
          else
            moved = true;
        }
        pending[to] = std::move(left);
        if (!all) break;
      }
    };
    for (int step = 0; step < 60; ++step) {
      const int who = static_cast<int>(random() % 3);
      const int action = static_cast<int>(random() % 4);
      json sent;
      try {
        if (action == 0)
          sent = shards[who]->store->send_event(room, users[who], "m.room.topic", {{"topic", "topic " + std::to_string(step)}}, "");
        else
          sent = shards[who]->store->send_event(room, users[who], "m.room.message", {{"body", std::to_string(step)}}, std::nullopt);
      } catch (const coop::Error&) {
        continue;  // carol's topic: refused where she is, never sent
      }
      for (int other = 0; other < 3; ++other)
        if (other != who) pending[other].push_back(sent);
      deliver_some(static_cast<int>(random() % 3), false);
    }
    for (int round = 0; round < 3; ++round)
      for (int to = 0; to < 3; ++to) deliver_some(to, true);
    for (int to = 0; to < 3; ++to) CHECK(pending[to].empty());
    auto extremities = [&](Shard& s) {
      auto x = s.store->extremities(room);
      std::sort(x.begin(), x.end());
      return x;
    };
    CHECK(extremities(a) == extremities(b));
    CHECK(extremities(b) == extremities(c));
    CHECK(state_of(*a.store, room) == state_of(*b.store, room));
    CHECK(state_of(*b.store, room) == state_of(*c.store, room));
    // And the next event from any of them is accepted by the others as it stands.
    const auto last = c.store->send_event(room, users[2], "m.room.message", {{"body", "end"}}, std::nullopt);
    CHECK(a.store->accept_remote(last).kind == Kind::kStored);
    CHECK(b.store->accept_remote(last).kind == Kind::kStored);
    CHECK(state_of(*a.store, room) == state_of(*c.store, room));
  }
}

TEST_CASE("a join template after an invitation cites the member's invite once") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "private_chat"}}).value("room_id", "");
  const auto invite = a.store->membership_template(room, "@bob:b.test", "invite", "@alice:a.test");
  CHECK(invite["sender"] == "@alice:a.test");
  CHECK(invite["state_key"] == "@bob:b.test");
  a.store->send_event(room, "@alice:a.test", "m.room.member", {{"membership", "invite"}}, "@bob:b.test");
  const auto join = a.store->membership_template(room, "@bob:b.test", "join");
  std::set<std::string> unique;
  for (const auto& id : join["auth_events"]) unique.insert(id.get<std::string>());
  CHECK(unique.size() == join["auth_events"].size());
  CHECK(join["auth_events"].size() == 4);  // create, power levels, join rules, bob's invite
}

TEST_CASE("another server's user redacts only what their power or their own server allows") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test"), b(dir, "b.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "public_chat"}}).value("room_id", "");
  join_through(a, b, room, "@bob:b.test");
  const auto mine = a.store->send_event(room, "@alice:a.test", "m.room.message", {{"body", "keep me"}}, std::nullopt);
  CHECK(b.store->accept_remote(mine).kind == Kind::kStored);
  const auto theirs = b.store->send_event(room, "@bob:b.test", "m.room.message", {{"body", "oops"}}, std::nullopt);
  CHECK(a.store->accept_remote(theirs).kind == Kind::kStored);
  // Bob (power 0) redacts alice's message and his own: a.test applies only the second.
  for (const auto& target : {mine, theirs}) {
    const auto redaction = b.store->send_event(room, "@bob:b.test", "m.room.redaction", {{"redacts", target["event_id"]}}, std::nullopt);
    CHECK(a.store->accept_remote(redaction).kind == Kind::kStored);
  }
  CHECK(a.store->event(mine.value("event_id", ""))->event["content"]["body"] == "keep me");
  CHECK(!a.store->event(theirs.value("event_id", ""))->event["content"].contains("body"));
}

TEST_CASE("a server that joins later is sent what happens from its join on, not the history before") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test"), b(dir, "b.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "public_chat"}}).value("room_id", "");
  for (int i = 0; i < 5; ++i) a.store->send_event(room, "@alice:a.test", "m.room.message", {{"body", "before"}}, std::nullopt);
  join_through(a, b, room, "@bob:b.test");
  CHECK(a.store->events_for_server("b.test", 0, 100).empty());
  a.store->send_event(room, "@alice:a.test", "m.room.message", {{"body", "after"}}, std::nullopt);
  const auto sent = a.store->events_for_server("b.test", 0, 100);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].event["content"]["body"] == "after");
}

TEST_CASE("an invitation from another server into a room whose state we hold is refused") {
  coop::test::TempDir dir;
  Shard a(dir, "a.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "public_chat"}}).value("room_id", "");
  json invite = {{"type", "m.room.member"}, {"room_id", room}, {"sender", "@eve:evil.test"}, {"state_key", "@alice:a.test"},
                 {"content", {{"membership", "invite"}}}, {"event_id", "$invite"}, {"depth", 1}};
  CHECK_FALSE(a.store->add_remote_invite(invite, json::array()));
  CHECK(a.store->membership(room, "@alice:a.test") == "join");
}

TEST_CASE("the memberships we make cite exactly the auth events the selection names, so other servers take them") {
  // A ban, an unban, a kick and a leave cite no join rules (Server-Server API "Auth events
  // selection": the join rules only for join, invite and knock); an invitation does.
  coop::test::TempDir dir;
  Shard a(dir, "a.test"), b(dir, "b.test");
  const auto room = a.store->create_room("@alice:a.test", {{"room_version", "11"}, {"preset", "public_chat"}}).value("room_id", "");
  join_through(a, b, room, "@bob:b.test");
  const auto rules = a.store->state_event(room, "m.room.join_rules", "").value().value("event_id", "");
  const auto cites_rules = [&rules](const json& event) {
    const auto& auth = event["auth_events"];
    return std::find(auth.begin(), auth.end(), json(rules)) != auth.end();
  };
  for (const auto& [membership, target] : std::vector<std::pair<std::string, std::string>>{
           {"ban", "@bob:b.test"}, {"leave", "@bob:b.test"}, {"invite", "@bob:b.test"}, {"leave", "@bob:b.test"}}) {
    INFO(membership);
    const auto event = a.store->send_event(room, "@alice:a.test", "m.room.member", {{"membership", membership}}, target);
    CHECK(cites_rules(event) == (membership == "invite"));
    CHECK(b.store->accept_remote(event).kind == Kind::kStored);
  }
}
