// Delivers notifications to push gateways (Push Gateway API, POST /_matrix/push/v1/notify, as
// Sygnal implements it) for members' HTTP pushers: phones hear of a message while their app
// is not running. Only gateways named in [workers.room.push] gateways are ever contacted, so
// nothing leaves the shard unless the cooperative says so and no member can make the server
// call an address of their choosing.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace coop::room {

class RoomStore;

struct PushSettings {
  std::vector<std::string> gateways;  // URL prefixes a pusher's data.url must start with
  int max_attempts = 8;               // then a notification is dropped for that pusher
};

class PushSender {
 public:
  PushSender(RoomStore& store, PushSettings settings);
  ~PushSender();  // stops the delivery thread
  PushSender(const PushSender&) = delete;
  PushSender& operator=(const PushSender&) = delete;

  // New notifications may be waiting.
  void poke();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::room
