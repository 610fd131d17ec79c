// State resolution v2 and v2.1 of a large fork: a room of MEMBERS members whose history splits into two
// branches of BRANCH state events each (members renaming themselves and leaving and coming
// back, topics, power level changes, kicks), resolved as a server does when the branches
// meet. Prints one JSON line: the sizes, the wall time and the peak RSS.
//
//   state_res_bench [--members 1000] [--branch 5000] [--rounds 3]
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "workers/matrix/state_res.h"

using namespace coop::matrix;
using nlohmann::json;

namespace {

bool nobody_elsewhere(const std::string&, const std::string&) { return false; }

struct Builder {
  EventMap& events;
  int64_t counter = 0;

  std::string add(StateIds& state, const std::string& sender, const std::string& type, const std::string& state_key,
                  json content) {
    const std::string id = "$e" + std::to_string(++counter);
    json event{{"event_id", id},    {"room_id", "!bench:a.test"}, {"sender", sender},
               {"type", type},      {"state_key", state_key},     {"content", std::move(content)},
               {"origin_server_ts", 1700000000000 + counter}};
    json auth = json::array();
    for (const auto& key : auth_types_for(event))
      if (const auto it = state.find(key); it != state.end()) auth.push_back(it->second);
    event["auth_events"] = auth;
    events.add(event);
    state[{type, state_key}] = id;
    return id;
  }
};

std::string user(int i) { return "@u" + std::to_string(i) + ":a.test"; }

long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  int members = 1000, branch = 5000, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--members")) members = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--branch")) branch = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::stoi(argv[i + 1]);
  }
  EventMap events;
  Builder b{events};
  StateIds trunk;
  const std::string alice = user(0);
  b.add(trunk, alice, "m.room.create", "", {{"room_version", "11"}});
  b.add(trunk, alice, "m.room.member", alice, {{"membership", "join"}});
  json users{{alice, 100}};
  for (int i = 1; i <= 20; ++i) users[user(i)] = 50;  // moderators
  b.add(trunk, alice, "m.room.power_levels", "", {{"users", users}});
  b.add(trunk, alice, "m.room.join_rules", "", {{"join_rule", "public"}});
  for (int i = 1; i < members; ++i) b.add(trunk, user(i), "m.room.member", user(i), {{"membership", "join"}});

  // Two branches from the same point, each its own stream of state changes.
  std::vector<StateIds> sides{trunk, trunk};
  std::mt19937 random(42);
  for (int n = 0; n < branch; ++n)
    for (int side = 0; side < 2; ++side) {
      auto& state = sides[side];
      const int who = 1 + static_cast<int>(random() % (members - 1));
      const auto roll = random() % 100;
      if (roll < 60) {
        // A member renames themselves (a join over a join), or leaves and comes back.
        const auto current = state.find({"m.room.member", user(who)});
        const bool in = current != state.end() && events.event(current->second)->at("content").value("membership", "") == "join";
        b.add(state, user(who), "m.room.member", user(who),
              in && roll < 50 ? json{{"membership", "join"}, {"displayname", "m" + std::to_string(n) + "s" + std::to_string(side)}}
                              : json{{"membership", in ? "leave" : "join"}});
      } else if (roll < 90) {
        b.add(state, user(1 + static_cast<int>(random() % 20)), "m.room.topic", "", {{"topic", "t" + std::to_string(n)}});
      } else if (roll < 95) {
        users[user(20 + static_cast<int>(random() % (members - 20)))] = static_cast<int>(random() % 50);
        b.add(state, alice, "m.room.power_levels", "", {{"users", users}});
      } else {
        b.add(state, user(1 + static_cast<int>(random() % 20)), "m.room.member", user(21 + static_cast<int>(random() % (members - 21))),
              {{"membership", "leave"}});
      }
    }

  // v2 (room versions 2-11) and v2.1 (room version 12) on the same fork.
  const auto time_it = [&](StateResVersion version, std::size_t& resolved_size) {
    double best = 1e18;
    for (int round = 0; round < rounds; ++round) {
      // A fresh source each round: no auth chain remembered from the one before.
      EventMap fresh = events;
      const auto t0 = std::chrono::steady_clock::now();
      const auto resolved = resolve_state_v2(sides, fresh, nobody_elsewhere, version);
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      resolved_size = resolved.size();
    }
    return best;
  };
  std::size_t resolved_size = 0, resolved_v2_1 = 0;
  const double best_ms = time_it(StateResVersion::kV2, resolved_size);
  const double best_ms_v2_1 = time_it(StateResVersion::kV2_1, resolved_v2_1);
  std::cout << json{{"members", members},
                    {"events", b.counter},
                    {"fork_events", 2 * branch},
                    {"state_a", sides[0].size()},
                    {"state_b", sides[1].size()},
                    {"resolved", resolved_size},
                    {"best_ms", best_ms},
                    {"resolved_v2_1", resolved_v2_1},
                    {"best_ms_v2_1", best_ms_v2_1},
                    {"peak_rss_kib", peak_rss_kib()}}
                   .dump()
            << "\n";
}
