// Client-Server API "Voice over IP": TURN credentials for calls, time-limited, made with the
// shared secret of coturn's REST API (`use-auth-secret` / `static-auth-secret`).
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include <chrono>

#include "common/base64.h"
#include "common/config.h"
#include "common/error.h"
#include "common/secret_file.h"
#include "common/worker_runtime.h"
#include "workers/room/client_impl.h"

namespace coop::room {

using http::Request;
using http::Response;
using nlohmann::json;

namespace {

// [workers.room.turn]: uris (turn:/turns: URIs of the TURN server), secret_file (coturn's
// static-auth-secret, one line), ttl_s (how long credentials last, a day by default). Without
// uris the answer is {}, as the big servers answer when they have no TURN server.
Response turn_server(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto& config = api.runtime.config();
  const auto uris = config.get_strings("workers.room.turn.uris", {});
  if (uris.empty()) return ok(json::object());
  const auto secret = read_secret_file(api.runtime.home(), config.get_string("workers.room.turn.secret_file", ""),
                                       "workers.room.turn.secret_file");
  const auto ttl = static_cast<int64_t>(config.get_count("workers.room.turn.ttl_s", 86400, 60));
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  // The TURN REST API: the username is "<expiry>:<user>", the password base64(HMAC-SHA1(secret, username)).
  const std::string username = std::to_string(now + ttl) + ":" + s.user_id;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(username.data()),
       username.size(), mac, &mac_length);
  const std::string password = base64_encode(std::string_view(reinterpret_cast<const char*>(mac), mac_length));
  return ok({{"username", username}, {"password", password}, {"uris", uris}, {"ttl", ttl}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kVoipTable[] = {
    {"GET", "/voip/turnServer", Mount::kV3AndR0, Run::kBlocking, turn_server, "time-limited TURN credentials"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kVoipRoutes = kVoipTable;

}  // namespace coop::room
