// libFuzzer target: requests through coop-room's real Matrix client-server handlers, logged
// in as a member who has a room, on a throwaway shard. The first line of the input is
// "METHOD /target" ("$ROOM" stands for the member's room id), the rest the body. Checked:
// exactly one reply, UTF-8 JSON with an errcode when it is an error, and never a 500: what a
// client sends is the client's error (503 is allowed: the member registry is not running here).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/http/router.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "tests/fuzz/handler_harness.h"
#include "workers/matrix/signing.h"
#include "workers/room/client_api.h"
#include "workers/room/store/key_store.h"
#include "workers/room/store/room_store.h"

namespace {

struct Homeserver {
  Homeserver() {
    runtime = std::make_unique<coop::WorkerRuntime>(coop::RuntimeOptions{"room", home.path(), true, 1});
    spdlog::set_level(spdlog::level::off);
    key = std::make_unique<coop::matrix::SigningKey>(coop::matrix::SigningKey::generate("ed25519:fuzz"));
    store = std::make_unique<coop::room::RoomStore>(runtime->home().database("room"), "fuzz.example", *key);
    keys = std::make_unique<coop::room::KeyStore>(runtime->home().database("e2ee"));
    router = std::make_unique<coop::http::Router>();
    api = std::make_unique<coop::room::ClientApi>(*runtime, *store, *keys, *router);
    token = store->create_session("@alice:fuzz.example", "FUZZ", "fuzzer").first;
    room = store->create_room("@alice:fuzz.example", {{"name", "fuzz"}}).value("room_id", "");
  }
  ~Homeserver() {
    api->close();
    api.reset();
    router.reset();
    keys.reset();
    store.reset();
    runtime.reset();
  }
  coop::fuzz::ThrowawayHome home{"coop-fuzz-matrix-"};
  std::unique_ptr<coop::WorkerRuntime> runtime;
  std::unique_ptr<coop::matrix::SigningKey> key;
  std::unique_ptr<coop::room::RoomStore> store;
  std::unique_ptr<coop::room::KeyStore> keys;
  std::unique_ptr<coop::http::Router> router;
  std::unique_ptr<coop::room::ClientApi> api;
  std::string token, room;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Homeserver server;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string first = coop::fuzz::first_line_of(input);
  for (auto at = first.find("$ROOM"); at != std::string::npos; at = first.find("$ROOM", at))
    first.replace(at, 5, coop::percent_encode(server.room));
  auto request = coop::fuzz::request_of(input, first);
  if (!request) return 0;
  // A long poll would wait for its timeout: ask for an answer now.
  if (request->path.find("/sync") != std::string::npos) request->query["timeout"] = "0";
  request->headers["authorization"] = "Bearer " + server.token;
  request->remote_address = "127.0.0.1";
  const auto response = coop::fuzz::dispatch_once(*server.router, *request);
  if (response.status == 500) std::abort();
  if (response.content_type == "application/json") {
    if (!coop::is_valid_utf8(response.body) || !nlohmann::json::accept(response.body)) std::abort();
    // Every error names its errcode, except the 401 of user-interactive authentication, which
    // by the spec carries only the flows when no credentials were tried.
    const auto body = nlohmann::json::parse(response.body);
    if (response.status >= 400 && !body.contains("errcode") && !(response.status == 401 && body.contains("flows")))
      std::abort();
  }
  return 0;
}
