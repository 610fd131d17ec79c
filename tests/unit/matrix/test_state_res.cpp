// State resolution v2 (Matrix spec, Server-Server API "Room State Resolution") on small forked
// histories: the scenarios the spec's algorithm was designed around (a ban racing a power level
// change, a join racing a join rule change, topics reset by a ban, power level chains), written
// here as DAGs whose every node's state is itself resolved from its parents'.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "workers/matrix/state_res.h"

using namespace coop::matrix;
using nlohmann::json;

namespace {

const std::string kAlice = "@alice:a.test", kBob = "@bob:b.test", kCharlie = "@charlie:c.test",
                  kEvelyn = "@evelyn:e.test", kZara = "@zara:z.test";
const std::string kRoom = "!room:a.test";

struct Def {
  std::string id, sender, type;
  std::optional<std::string> state_key;
  json content;
};

Def member(const std::string& id, const std::string& sender, const std::string& membership,
           std::optional<std::string> target = std::nullopt) {
  return {id, sender, "m.room.member", target.value_or(sender), {{"membership", membership}}};
}
Def power(const std::string& id, const std::string& sender, const json& users) {
  return {id, sender, "m.room.power_levels", "", {{"users", users}}};
}
Def topic(const std::string& id, const std::string& sender) { return {id, sender, "m.room.topic", "", {{"topic", id}}}; }
Def message(const std::string& id, const std::string& sender) { return {id, sender, "m.room.message", std::nullopt, json::object()}; }

bool nobody_elsewhere(const std::string&, const std::string&) { return false; }

// Room version 12's room: its ID is its create event's ("$V12" -> "!V12"); Bob is a creator
// beside Alice.
const std::string kCreate12 = "$V12", kRoom12 = "!V12";

// The room every scenario starts from: Alice made it (and holds 100), it is public, Bob,
// Charlie and Zara are in; START and END are Zara's messages that the branches hang between.
// In room version 12, Alice and Bob are its creators and hold no listed level.
std::vector<Def> initial_events(const std::string& version = "11") {
  const bool v12 = version == "12";
  json create = {{"room_version", version}};
  if (v12) create["additional_creators"] = {kBob};
  return {
      {v12 ? kCreate12 : "CREATE", kAlice, "m.room.create", "", create},
      member("IMA", kAlice, "join"),
      power("IPOWER", kAlice, v12 ? json{{kCharlie, 100}} : json{{kAlice, 100}}),
      {"IJR", kAlice, "m.room.join_rules", "", {{"join_rule", "public"}}},
      member("IMB", kBob, "join"),
      member("IMC", kCharlie, "join"),
      member("IMZ", kZara, "join"),
      message("START", kZara),
      message("END", kZara),
  };
}

// A history: definitions (their order is their origin_server_ts order) and chains of edges,
// each chain listing events from older to newer. Each event's state before it is the
// resolution of its parents' states after them; its auth events are what the auth rules
// select from that state.
class Dag {
 public:
  Dag(const std::vector<Def>& scenario, const std::vector<std::vector<std::string>>& chains, std::string version = "11")
      : version_(std::move(version)) {
    std::vector<Def> defs = initial_events(version_);
    defs.insert(defs.end() - 1, scenario.begin(), scenario.end());  // END stays the newest
    std::map<std::string, std::vector<std::string>> parents;
    const auto initial = initial_events(version_);
    for (std::size_t i = 1; i + 1 < initial.size(); ++i) parents[initial[i].id] = {initial[i - 1].id};  // CREATE..START
    for (const auto& chain : chains)
      for (std::size_t i = 1; i < chain.size(); ++i) {
        auto& p = parents[chain[i]];
        if (std::find(p.begin(), p.end(), chain[i - 1]) == p.end()) p.push_back(chain[i - 1]);
      }
    std::map<std::string, int64_t> stamp;
    int64_t ts = 1000;
    for (const auto& def : defs) stamp[def.id] = ts++;
    // Build in an order where parents come first.
    std::vector<Def> pending = defs;
    while (!pending.empty()) {
      bool progressed = false;
      for (auto it = pending.begin(); it != pending.end();) {
        const auto& p = parents[it->id];
        if (std::all_of(p.begin(), p.end(), [this](const std::string& id) { return after_.count(id) > 0; })) {
          build(*it, p, stamp[it->id]);
          it = pending.erase(it);
          progressed = true;
        } else {
          ++it;
        }
      }
      REQUIRE(progressed);  // the edges form no cycle and name only defined events
    }
  }

  const StateIds& final_state() const { return after_.at("END"); }
  const StateIds& after(const std::string& id) const { return after_.at(id); }
  EventMap& events() { return events_; }

 private:
  void build(const Def& def, const std::vector<std::string>& parents, int64_t ts) {
    StateIds before;
    if (parents.size() == 1) before = after_.at(parents.front());
    if (parents.size() > 1) {
      std::vector<StateIds> sets;
      for (const auto& parent : parents) sets.push_back(after_.at(parent));
      before = resolve_state_v2(sets, events_, nobody_elsewhere, state_res_for(version_));
    }
    json event{{"event_id", def.id},   {"room_id", version_ == "12" ? kRoom12 : kRoom}, {"sender", def.sender},
               {"type", def.type},     {"content", def.content}, {"origin_server_ts", ts}, {"prev_events", parents}};
    if (version_ == "12" && def.type == "m.room.create") event.erase("room_id");
    if (def.state_key) event["state_key"] = *def.state_key;
    json auth = json::array();
    for (const auto& key : auth_types_for(event))
      if (const auto it = before.find(key); it != before.end()) auth.push_back(it->second);
    event["auth_events"] = auth;
    events_.add(event);
    StateIds state = before;
    if (def.state_key) state[{def.type, *def.state_key}] = def.id;
    after_[def.id] = state;
  }

  std::string version_;
  EventMap events_;
  std::map<std::string, StateIds> after_;
};

std::string at(const StateIds& state, const std::string& type, const std::string& key = "") {
  const auto it = state.find({type, key});
  return it == state.end() ? "" : it->second;
}

}  // namespace

TEST_CASE("state res v2: a ban beats a concurrent power level change by the banned") {
  // Alice bans Bob while Bob changes the power levels: Alice has more power, so her ban is
  // applied first and Bob's change, made by someone no longer in the room, fails.
  Dag dag({power("PA", kAlice, {{kAlice, 100}, {kBob, 50}}), member("MA", kAlice, "join"),
           member("MB", kAlice, "ban", kBob), power("PB", kBob, {{kAlice, 100}, {kBob, 50}})},
          {{"START", "PA", "MA", "MB", "END"}, {"PA", "PB", "END"}});
  const auto& state = dag.final_state();
  CHECK(at(state, "m.room.power_levels") == "PA");
  CHECK(at(state, "m.room.member", kBob) == "MB");
  CHECK(at(state, "m.room.member", kAlice) == "MA");
}

TEST_CASE("state res v2: a join racing a change to invite-only does not get in") {
  Dag dag({{"JR", kAlice, "m.room.join_rules", "", {{"join_rule", "invite"}}}, member("ME", kEvelyn, "join")},
          {{"START", "JR", "END"}, {"START", "ME", "END"}});
  const auto& state = dag.final_state();
  CHECK(at(state, "m.room.join_rules") == "JR");
  CHECK(at(state, "m.room.member", kEvelyn).empty());
}

TEST_CASE("state res v2: power level changes along a chain of grants resolve to the last") {
  Dag dag({power("PA", kAlice, {{kAlice, 100}, {kBob, 50}}), power("PB", kBob, {{kAlice, 100}, {kBob, 50}, {kCharlie, 50}}),
           power("PC", kCharlie, {{kAlice, 100}, {kBob, 50}, {kCharlie, 0}})},
          {{"START", "PA", "PB", "PC", "END"}, {"PA", "END"}});
  CHECK(at(dag.final_state(), "m.room.power_levels") == "PC");
}

TEST_CASE("state res v2: a topic set by someone whose power was taken away loses") {
  Dag dag({topic("T1", kAlice), power("PA1", kAlice, {{kAlice, 100}, {kBob, 50}}), topic("T2", kAlice),
           power("PA2", kAlice, {{kAlice, 100}, {kBob, 0}}), power("PB", kBob, {{kAlice, 100}, {kBob, 50}}),
           topic("T3", kBob)},
          {{"START", "T1", "PA1", "T2", "PA2", "END"}, {"PA1", "PB", "T3", "END"}});
  const auto& state = dag.final_state();
  CHECK(at(state, "m.room.power_levels") == "PA2");
  CHECK(at(state, "m.room.topic") == "T2");
}

TEST_CASE("state res v2: a ban resets the topic the banned set on the other branch") {
  Dag dag({topic("T1", kAlice), power("PA", kAlice, {{kAlice, 100}, {kBob, 50}}), topic("T2", kBob),
           member("MB", kAlice, "ban", kBob)},
          {{"START", "T1", "PA", "T2", "MB", "END"}, {"T1", "END"}});
  const auto& state = dag.final_state();
  CHECK(at(state, "m.room.topic") == "T1");
  CHECK(at(state, "m.room.member", kBob) == "MB");
  CHECK(at(state, "m.room.power_levels") == "PA");
}

TEST_CASE("state res v2: topics on two branches order by the power levels they were sent under") {
  // Alice's power level changes PA1 then PA2 form the mainline. T2 (under PA1, on one branch)
  // and T4 (under PA2, on the other) conflict: the one sent under the newer power levels
  // comes later and wins.
  Dag dag({topic("T1", kAlice), power("PA1", kAlice, {{kAlice, 100}, {kBob, 50}}), topic("T2", kAlice),
           power("PA2", kAlice, {{kAlice, 100}, {kBob, 50}, {kCharlie, 50}}), topic("T3", kBob), topic("T4", kAlice)},
          {{"START", "T1", "PA1", "T2", "END"}, {"PA1", "PA2", "T3", "T4", "END"}});
  const auto& state = dag.final_state();
  CHECK(at(state, "m.room.power_levels") == "PA2");
  CHECK(at(state, "m.room.topic") == "T4");

  // The ordering itself: the older the power levels an event was sent under, the earlier;
  // then origin_server_ts.
  CHECK(mainline_order({"T2", "T3", "T4", "T1"}, "PA2", dag.events()) == std::vector<std::string>{"T1", "T2", "T3", "T4"});
}

TEST_CASE("state res v2: reverse topological power order puts auth events first, then power") {
  Dag dag({power("PA", kAlice, {{kAlice, 100}, {kBob, 50}}), member("MB", kAlice, "ban", kCharlie),
           power("PB", kBob, {{kAlice, 100}, {kBob, 50}})},
          {{"START", "PA", "MB", "END"}, {"PA", "PB", "END"}});
  // PA is in both others' auth events; then Alice (100) before Bob (50).
  CHECK(reverse_topological_power_order({"PB", "MB", "PA"}, dag.events()) == std::vector<std::string>{"PA", "MB", "PB"});
}

TEST_CASE("state res v2: unconflicted state passes through; order of the state sets does not matter") {
  Dag dag({topic("T1", kAlice), power("PA", kAlice, {{kAlice, 100}, {kBob, 50}}), topic("T2", kBob),
           member("MB", kAlice, "ban", kBob), member("ME", kEvelyn, "join")},
          {{"START", "T1", "PA", "T2", "MB", "END"}, {"T1", "ME", "END"}});
  const auto first = dag.after("MB"), second = dag.after("ME");
  CHECK(resolve_state_v2({first}, dag.events(), nobody_elsewhere) == first);
  CHECK(resolve_state_v2({first, first}, dag.events(), nobody_elsewhere) == first);
  const auto forward = resolve_state_v2({first, second}, dag.events(), nobody_elsewhere);
  CHECK(resolve_state_v2({second, first}, dag.events(), nobody_elsewhere) == forward);
  CHECK(at(forward, "m.room.member", kEvelyn) == "ME");  // nobody contested her join
  CHECK(at(forward, "m.room.create") == "CREATE");

  // Many sets in random orders always give the same answer.
  std::vector<StateIds> sets{first, second, dag.after("T2"), dag.after("PA"), dag.after("T1")};
  const auto reference = resolve_state_v2(sets, dag.events(), nobody_elsewhere);
  std::mt19937 random(7);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(sets.begin(), sets.end(), random);
    CHECK(resolve_state_v2(sets, dag.events(), nobody_elsewhere) == reference);
  }
}

TEST_CASE("state res v2: an event nobody has drops out") {
  Dag dag({topic("T1", kAlice)}, {{"START", "T1", "END"}});
  const auto with_topic = dag.after("T1");
  auto lost = with_topic;
  lost[{"m.room.topic", ""}] = "$nobody-has-this";
  CHECK(at(resolve_state_v2({with_topic, lost}, dag.events(), nobody_elsewhere), "m.room.topic") == "T1");
}

TEST_CASE("state res v2: auth chains are walked without recursion and remembered") {
  // A long chain of power level changes, each citing the one before: the auth chain of the
  // last is everything before it, however long.
  EventMap events;
  events.add({{"event_id", "C"}, {"type", "m.room.create"}, {"state_key", ""}, {"sender", kAlice}, {"auth_events", json::array()}});
  std::string previous = "C";
  for (int i = 0; i < 20000; ++i) {
    const std::string id = "P" + std::to_string(i);
    events.add({{"event_id", id}, {"type", "m.room.power_levels"}, {"state_key", ""}, {"sender", kAlice},
                {"auth_events", {"C", previous}}});
    previous = id;
  }
  CHECK(events.auth_chain(previous).size() == 20000);
  CHECK(events.auth_chain("P10").size() == 11);
}

// ---- room version 12: creators with infinite power, domain-less room IDs, v2.1 ----

TEST_CASE("room version 12 auth rules: the create event, creators and power levels") {
  const json create = {{"event_id", kCreate12}, {"type", "m.room.create"}, {"state_key", ""}, {"sender", kAlice},
                       {"content", {{"room_version", "12"}, {"additional_creators", {kBob}}}}};
  // Rule 1.2 and 1.4: no room_id, additional creators that are user IDs.
  CHECK_NOTHROW(authorize(create, {}, nobody_elsewhere));
  auto with_room = create;
  with_room["room_id"] = kRoom12;
  CHECK_THROWS(authorize(with_room, {}, nobody_elsewhere));
  auto bad_creators = create;
  bad_creators["content"]["additional_creators"] = {"not a user"};
  CHECK_THROWS(authorize(bad_creators, {}, nobody_elsewhere));
  bad_creators["content"]["additional_creators"] = "@x:y.test";
  CHECK_THROWS(authorize(bad_creators, {}, nobody_elsewhere));

  const auto joined = [](const std::string& user) {
    return json{{"type", "m.room.member"}, {"state_key", user}, {"sender", user}, {"content", {{"membership", "join"}}}};
  };
  StateMap state{{{"m.room.create", ""}, create},
                 {{"m.room.member", kAlice}, joined(kAlice)},
                 {{"m.room.member", kBob}, joined(kBob)},
                 {{"m.room.member", kCharlie}, joined(kCharlie)},
                 {{"m.room.power_levels", ""},
                  {{"type", "m.room.power_levels"}, {"state_key", ""}, {"sender", kAlice}, {"content", {{"users", {{kCharlie, 100}}}}}}}};
  const auto event = [](const std::string& sender, const std::string& type, json content, std::optional<std::string> key) {
    json e = {{"room_id", kRoom12}, {"sender", sender}, {"type", type}, {"content", std::move(content)}};
    if (key) e["state_key"] = *key;
    return e;
  };
  // Rule 2: the room ID must be the create event's.
  auto elsewhere = event(kAlice, "m.room.topic", {{"topic", "x"}}, "");
  elsewhere["room_id"] = "!other";
  CHECK_THROWS(authorize(elsewhere, state, nobody_elsewhere));
  CHECK_NOTHROW(authorize(event(kAlice, "m.room.topic", {{"topic", "x"}}, ""), state, nobody_elsewhere));
  // Rule 10.4: a power levels event may not list a creator, not even to raise them.
  CHECK_THROWS(authorize(event(kAlice, "m.room.power_levels", {{"users", {{kBob, 100}}}}, ""), state, nobody_elsewhere));
  CHECK_NOTHROW(authorize(event(kBob, "m.room.power_levels", {{"users", {{kCharlie, 50}}}}, ""), state, nobody_elsewhere));
  // Creators are above 100: Charlie (100) can neither ban nor kick a creator; a creator can
  // ban Charlie, and one creator cannot ban the other.
  CHECK_THROWS(authorize(event(kCharlie, "m.room.member", {{"membership", "ban"}}, kBob), state, nobody_elsewhere));
  CHECK_THROWS(authorize(event(kCharlie, "m.room.member", {{"membership", "leave"}}, kAlice), state, nobody_elsewhere));
  CHECK_NOTHROW(authorize(event(kBob, "m.room.member", {{"membership", "ban"}}, kCharlie), state, nobody_elsewhere));
  CHECK_THROWS(authorize(event(kAlice, "m.room.member", {{"membership", "ban"}}, kBob), state, nobody_elsewhere));
}

TEST_CASE("room version 12: the room ID implies the create event in every auth chain") {
  Dag dag({topic("T1", kCharlie)}, {{"START", "T1", "END"}}, "12");
  const auto* t1 = dag.events().event("T1");
  REQUIRE(t1);
  const auto& auth = (*t1)["auth_events"];
  CHECK(std::find(auth.begin(), auth.end(), json(kCreate12)) == auth.end());  // never selected
  CHECK(dag.events().auth_chain("T1").count(kCreate12) == 1);                 // yet implied
  CHECK(at(dag.final_state(), "m.room.create") == kCreate12);
  CHECK(at(dag.final_state(), "m.room.topic") == "T1");
}

TEST_CASE("state res v2.1: a creator's ban of a moderator beats the moderator's ban of the other creator") {
  // Charlie (100) bans Bob, a creator, on one branch (refused by the auth rules when
  // replayed: a creator's level is infinite); Bob bans Charlie on the other. Bob stays, and
  // Charlie is out.
  Dag dag({member("BB", kCharlie, "ban", kBob), member("BC", kBob, "ban", kCharlie)},
          {{"START", "BB", "END"}, {"START", "BC", "END"}}, "12");
  const auto& state = dag.final_state();
  CHECK(at(state, "m.room.member", kBob) == "IMB");
  CHECK(at(state, "m.room.member", kCharlie) == "BC");
  // Creators sort first: their power is infinite.
  CHECK(reverse_topological_power_order({"BB", "BC"}, dag.events()) == std::vector<std::string>{"BC", "BB"});
}

TEST_CASE("state res v2.1 agrees with v2 where they should: the classic scenarios in a v12 room") {
  // The ban-versus-power-levels race with a moderator instead of the creator.
  Dag dag({power("PA", kAlice, {{kCharlie, 100}, {kZara, 50}}), member("MZ", kCharlie, "ban", kZara),
           power("PZ", kZara, {{kCharlie, 100}, {kZara, 50}})},
          {{"START", "PA", "MZ", "END"}, {"PA", "PZ", "END"}}, "12");
  CHECK(at(dag.final_state(), "m.room.power_levels") == "PA");
  CHECK(at(dag.final_state(), "m.room.member", kZara) == "MZ");
}

TEST_CASE("state res v2.1: the conflicted state subgraph is every auth path between conflicted events") {
  // A <- X <- Y <- B (B's auth events lead through Y and X to A), Z below A, W beside.
  EventMap events;
  const auto add = [&events](const std::string& id, std::vector<std::string> auth) {
    events.add({{"event_id", id}, {"type", "m.room.topic"}, {"state_key", ""}, {"sender", kAlice}, {"auth_events", auth}});
  };
  add("Z", {});
  add("A", {"Z"});
  add("X", {"A"});
  add("Y", {"X"});
  add("W", {"Z"});
  add("B", {"Y", "W"});
  add("V", {"B"});  // above both: not on a path between them
  CHECK(conflicted_subgraph({"A", "B"}, events) == std::set<std::string>{"A", "X", "Y", "B"});
  CHECK(conflicted_subgraph({"Z", "Y"}, events) == std::set<std::string>{"Z", "A", "X", "Y"});
  CHECK(conflicted_subgraph({"A", "W"}, events) == std::set<std::string>{"A", "W"});
}
