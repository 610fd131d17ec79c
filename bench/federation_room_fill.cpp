// Fills a shard's room.db, before its first start, with one public room of many members and
// many events (bench-federate's room to join from another shard): the room is created and
// written by RoomStore with the shard's own signing key, as coop-room would write it.
//
//   federation_room_fill HOME DOMAIN MEMBERS EVENTS   -> prints {"room_id": ...}
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "common/paths.h"
#include "workers/matrix/server_key.h"
#include "workers/matrix/signing.h"
#include "workers/room/store/room_store.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: federation_room_fill HOME DOMAIN MEMBERS EVENTS\n";
    return 2;
  }
  const coop::Home home(argv[1]);
  const std::string domain = argv[2];
  const int members = std::stoi(argv[3]), events = std::stoi(argv[4]);
  const auto key = coop::matrix::load_or_make_server_key(home);
  coop::room::RoomStore store(home.database("room"), domain, key);
  const std::string creator = "@alice:" + domain;
  const auto room = store.create_room(creator, {{"preset", "public_chat"}, {"name", "Big room"}}).value("room_id", "");
  // The history first, then the members: every message is evaluated against the push rules
  // of every member joined at the time, and the join cost being measured is the same either
  // way (state and auth chain, not the messages).
  int written = static_cast<int>(store.current_state(room).size());
  for (int i = 0; written < events - (members - 1); ++i, ++written)
    store.send_event(room, creator, "m.room.message", {{"msgtype", "m.text"}, {"body", "message " + std::to_string(i)}},
                     std::nullopt);
  for (int i = 0; i < members - 1; ++i, ++written)
    store.send_event(room, "@m" + std::to_string(i) + ":" + domain, "m.room.member",
                     {{"membership", "join"}, {"displayname", "Member " + std::to_string(i)}}, "@m" + std::to_string(i) + ":" + domain);
  std::cout << nlohmann::json{{"room_id", room}, {"events", written}}.dump() << "\n";
}
