// Client-Server API "Send-to-Device messaging": PUT /sendToDevice, which is how clients hand
// each other Olm-encrypted room keys and run verifications. Delivery is in /sync (api/sync.cpp);
// other servers' users get theirs over federation, and theirs come to ours through
// apply_remote_edus (api/events.cpp).
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>

#include "common/digest.h"
#include "common/error.h"
#include "workers/matrix/ids.h"
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
// What one m.direct_to_device EDU to another server carries at most, so that a transaction of
// them stays well inside what servers take in one request.
constexpr std::size_t kMaxEduBytes = 256 * 1024;

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
  std::map<std::string, json> remote;  // server -> {user: {device: content}}
  std::size_t remote_count = 0;
  for (const auto& [user_id, devices] : messages.items()) {
    if (!devices.is_object()) fail(400, errc::kMBadJson, "messages must map users to devices");
    if (!api.is_local_user(user_id)) {
      const auto server = matrix::user_server(user_id);
      if (server.empty()) continue;  // not a user of any server: no one to deliver to
      for (const auto& [device_id, content] : devices.items()) {
        if (!content.is_object()) fail(400, errc::kMBadJson, "each message must be an object");
        if (content.dump().size() > kMaxContentBytes) fail(413, errc::kMTooLarge, "a message is larger than 64 KiB");
        if (++remote_count > kMaxRecipientsPerRequest) fail(400, errc::kMInvalidParam, "too many recipients at once");
        remote[server][user_id][device_id] = content;
      }
      continue;
    }
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
  // A retried transaction answers the same and stores nothing twice. Ours first: when the
  // hand-over to other servers below fails, the client's retry finds them done.
  api.keys.send_to_device(s.user_id, s.device_id, txn_id, type, queued);
  // Server-Server API "Send-to-device messaging": other servers' users get an
  // m.direct_to_device EDU each, queued durably by coop-federate before we answer. The
  // message ID follows from the client's transaction, so a retry repeats it and the receiving
  // server drops the copy. Large fan-outs go in parts that keep a transaction small.
  const auto message_id = sha256_hex(s.user_id + "\n" + s.device_id + "\n" + txn_id).substr(0, 32);
  for (const auto& [server, users] : remote) {
    int part = 0;
    json batch = json::object();
    std::size_t bytes = 0;
    const auto flush = [&, server = server] {
      if (batch.empty()) return;
      const json edu = {{"edu_type", "m.direct_to_device"},
                        {"content", {{"sender", s.user_id},
                                     {"type", type},
                                     {"message_id", message_id + (part ? "-" + std::to_string(part) : "")},
                                     {"messages", batch}}}};
      api.federate("/v1/outbound/edu", {{"servers", {server}}, {"edu", edu}, {"durable", true}}, std::chrono::seconds(10));
      ++part;
      batch = json::object();
      bytes = 0;
    };
    for (const auto& [user_id, devices] : users.items())
      for (const auto& [device_id, content] : devices.items()) {
        const auto size = content.dump().size();
        if (bytes + size > kMaxEduBytes) flush();
        batch[user_id][device_id] = content;
        bytes += size;
      }
    flush();
  }
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
