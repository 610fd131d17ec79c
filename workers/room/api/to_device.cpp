// Client-Server API "Send-to-Device messaging": PUT /sendToDevice, which is how clients hand
// each other Olm-encrypted room keys and run verifications. Delivery is in /sync (api/sync.cpp).
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/key_store.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

using http::Request;
using http::Response;
using nlohmann::json;

namespace {

// One request fans out to at most this many devices; a room key shared with the devices of a
// 1,000-member room fits.
constexpr std::size_t kMaxRecipientsPerRequest = 10000;
// The Client-Server API's event size limit, applied to each message's content.
constexpr std::size_t kMaxContentBytes = 65536;
constexpr std::size_t kMaxTypeBytes = 255;

Response send_to_device(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto type = q.param("eventType");
  const auto txn_id = q.param("txnId");
  if (type.empty() || type.size() > kMaxTypeBytes) fail(400, errc::kMInvalidParam, "bad event type");
  if (txn_id.empty() || txn_id.size() > kMaxTypeBytes) fail(400, errc::kMInvalidParam, "bad transaction ID");
  const auto body = q.json();
  const auto messages = body.value("messages", json());
  if (!messages.is_object()) fail(400, errc::kMBadJson, "messages must be an object");
  std::vector<KeyStore::ToDevice> queued;
  for (const auto& [user_id, devices] : messages.items()) {
    if (!devices.is_object()) fail(400, errc::kMBadJson, "messages must map users to devices");
    // Other servers' users are reached by federation, which coop does not do yet.
    if (!api.is_local_user(user_id)) continue;
    std::vector<std::string> known;
    for (const auto& d : api.store.devices(user_id)) known.push_back(d.value("device_id", ""));
    for (const auto& [device_id, content] : devices.items()) {
      if (!content.is_object()) fail(400, errc::kMBadJson, "each message must be an object");
      if (content.dump().size() > kMaxContentBytes) fail(413, errc::kMTooLarge, "a message is larger than 64 KiB");
      // "*" is every device of the user; a device that does not exist gets nothing.
      for (const auto& device : known)
        if (device_id == "*" || device_id == device) queued.push_back({user_id, device, content});
      if (queued.size() > kMaxRecipientsPerRequest) fail(400, errc::kMInvalidParam, "too many recipients at once");
    }
  }
  // A retried transaction answers the same and stores nothing twice.
  api.keys.send_to_device(s.user_id, s.device_id, txn_id, type, queued);
  return ok(json::object());
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kToDeviceTable[] = {
    {"PUT", "/sendToDevice/{eventType}/{txnId}", Mount::kV3AndR0, Run::kBlocking, send_to_device,
     "send messages to devices (idempotent per transaction)"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kToDeviceRoutes = kToDeviceTable;

}  // namespace coop::room
