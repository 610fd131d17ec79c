// Client-Server API "Server-side key backups": a member's room keys, encrypted on their
// devices to a backup key the server never sees, kept in versions so a new device can read
// old messages.
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

constexpr std::size_t kMaxAlgorithmBytes = 255;

json version_body(const KeyStore::BackupVersion& v) {
  return {{"algorithm", v.algorithm}, {"auth_data", v.auth_data}, {"version", std::to_string(v.version)},
          {"count", v.count}, {"etag", v.etag}};
}

// Version numbers are ours; anything else names no backup.
std::optional<int64_t> version_number(const std::string& text) {
  try {
    return page_token(text, "version", 18);
  } catch (const Error&) {
    return std::nullopt;
  }
}

Response create_version(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  const auto algorithm = body.value("algorithm", json());
  const auto auth_data = body.value("auth_data", json());
  if (!algorithm.is_string() || algorithm.get<std::string>().empty() || algorithm.get<std::string>().size() > kMaxAlgorithmBytes)
    fail(400, errc::kMBadJson, "algorithm must be a string");
  if (!auth_data.is_object()) fail(400, errc::kMBadJson, "auth_data must be an object");
  const auto version = api.keys.create_backup_version(s.user_id, algorithm.get<std::string>(), auth_data);
  return ok({{"version", std::to_string(version)}});
}

Response current_version(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto v = api.keys.backup_version(s.user_id);
  if (!v) fail(404, errc::kMNotFound, "no current backup version");
  return ok(version_body(*v));
}

// The backup version named in the path, or 404.
KeyStore::BackupVersion named_version(ClientApi::Impl& api, const Request& q, const std::string& user_id) {
  const auto number = version_number(q.param("version"));
  auto v = number ? api.keys.backup_version(user_id, number) : std::nullopt;
  if (!v) fail(404, errc::kMNotFound, "no such backup version");
  return std::move(*v);
}

Response get_version(ClientApi::Impl& api, const Request& q) {
  return ok(version_body(named_version(api, q, api.authenticate(q).user_id)));
}

Response update_version(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto v = named_version(api, q, s.user_id);
  const auto body = q.json();
  if (body.contains("version") && body["version"] != json(q.param("version")))
    fail(400, errc::kMInvalidParam, "the version in the body differs from the one in the path");
  if (body.value("algorithm", json()) != json(v.algorithm))
    fail(400, errc::kMInvalidParam, "a backup version's algorithm cannot change");
  const auto auth_data = body.value("auth_data", json());
  if (!auth_data.is_object()) fail(400, errc::kMBadJson, "auth_data must be an object");
  api.keys.update_backup_version(s.user_id, v.version, auth_data);
  return ok(json::object());
}

Response delete_version(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto number = version_number(q.param("version"));
  if (!number || !api.keys.delete_backup_version(s.user_id, *number)) fail(404, errc::kMNotFound, "no such backup version");
  return ok(json::object());
}

// The version a keys request names: it must exist, and writes go to the current one only
// (403 M_WRONG_ROOM_KEYS_VERSION with the current version, so a stale client can recover).
std::variant<int64_t, Response> keys_version(ClientApi::Impl& api, const Request& q, const std::string& user_id, bool write) {
  const auto text = q.query_value("version");
  if (text.empty()) fail(400, errc::kMMissingParam, "the version parameter is required");
  const auto current = api.keys.backup_version(user_id);
  const auto number = version_number(text);
  if (write) {
    if (!current) fail(404, errc::kMNotFound, "no backup version exists");
    if (!number || *number != current->version)
      return cors(Response::json({{"errcode", errc::kMWrongRoomKeysVersion},
                                  {"error", "that is not the current backup version"},
                                  {"current_version", std::to_string(current->version)}},
                                 403));
    return *number;
  }
  if (!number || !api.keys.backup_version(user_id, number)) fail(404, errc::kMNotFound, "no such backup version");
  return *number;
}

KeyStore::BackedUpKey checked_key(const std::string& room_id, const std::string& session_id, const json& data) {
  if (!data.is_object() || !data.value("first_message_index", json()).is_number_integer() ||
      !data.value("forwarded_count", json()).is_number_integer() || !data.value("is_verified", json()).is_boolean() ||
      !data.value("session_data", json()).is_object())
    fail(400, errc::kMBadJson, "key data needs first_message_index, forwarded_count, is_verified and session_data");
  if (room_id.empty() || session_id.empty()) fail(400, errc::kMInvalidParam, "empty room or session ID");
  return {room_id, session_id, data};
}

void add_sessions(std::vector<KeyStore::BackedUpKey>& keys, const std::string& room_id, const json& room) {
  const auto sessions = room.is_object() ? room.value("sessions", json()) : json();
  if (!sessions.is_object()) fail(400, errc::kMBadJson, "sessions must be an object");
  for (const auto& [session_id, data] : sessions.items()) keys.push_back(checked_key(room_id, session_id, data));
}

Response put_keys(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto version = keys_version(api, q, s.user_id, true);
  if (auto* refused = std::get_if<Response>(&version)) return std::move(*refused);
  const auto body = q.json();
  std::vector<KeyStore::BackedUpKey> keys;
  const auto room_id = q.param("roomId"), session_id = q.param("sessionId");
  if (!session_id.empty()) {
    keys.push_back(checked_key(room_id, session_id, body));
  } else if (!room_id.empty()) {
    add_sessions(keys, room_id, body);
  } else {
    const auto rooms = body.value("rooms", json());
    if (!rooms.is_object()) fail(400, errc::kMBadJson, "rooms must be an object");
    for (const auto& [id, room] : rooms.items()) add_sessions(keys, id, room);
  }
  const auto [etag, count] = api.keys.put_backup_keys(s.user_id, std::get<int64_t>(version), keys);
  return ok({{"etag", etag}, {"count", count}});
}

Response get_keys(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto version = std::get<int64_t>(keys_version(api, q, s.user_id, false));
  const auto room_id = q.param("roomId"), session_id = q.param("sessionId");
  const auto keys = api.keys.backup_keys(s.user_id, version, room_id, session_id);
  if (!session_id.empty()) {
    if (keys.empty()) fail(404, errc::kMNotFound, "no such key in the backup");
    return ok(keys.front().key_data);
  }
  json rooms = json::object();
  for (const auto& key : keys) rooms[key.room_id]["sessions"][key.session_id] = key.key_data;
  if (!room_id.empty()) return ok(rooms.contains(room_id) ? rooms[room_id] : json{{"sessions", json::object()}});
  return ok({{"rooms", rooms}});
}

Response delete_keys(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto version = keys_version(api, q, s.user_id, true);
  if (auto* refused = std::get_if<Response>(&version)) return std::move(*refused);
  const auto [etag, count] =
      api.keys.delete_backup_keys(s.user_id, std::get<int64_t>(version), q.param("roomId"), q.param("sessionId"));
  return ok({{"etag", etag}, {"count", count}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kKeyBackupTable[] = {
    {"POST", "/room_keys/version", Mount::kV3AndR0, Run::kBlocking, create_version, "start a new key backup version"},
    {"GET", "/room_keys/version", Mount::kV3AndR0, Run::kBlocking, current_version, "the current key backup version"},
    {"GET", "/room_keys/version/{version}", Mount::kV3AndR0, Run::kBlocking, get_version, "one key backup version"},
    {"PUT", "/room_keys/version/{version}", Mount::kV3AndR0, Run::kBlocking, update_version, "update a backup's auth_data"},
    {"DELETE", "/room_keys/version/{version}", Mount::kV3AndR0, Run::kBlocking, delete_version, "delete a backup version"},
    {"PUT", "/room_keys/keys", Mount::kV3AndR0, Run::kBlocking, put_keys, "back up room keys"},
    {"PUT", "/room_keys/keys/{roomId}", Mount::kV3AndR0, Run::kBlocking, put_keys, "back up one room's keys"},
    {"PUT", "/room_keys/keys/{roomId}/{sessionId}", Mount::kV3AndR0, Run::kBlocking, put_keys, "back up one key"},
    {"GET", "/room_keys/keys", Mount::kV3AndR0, Run::kBlocking, get_keys, "backed-up room keys"},
    {"GET", "/room_keys/keys/{roomId}", Mount::kV3AndR0, Run::kBlocking, get_keys, "one room's backed-up keys"},
    {"GET", "/room_keys/keys/{roomId}/{sessionId}", Mount::kV3AndR0, Run::kBlocking, get_keys, "one backed-up key"},
    {"DELETE", "/room_keys/keys", Mount::kV3AndR0, Run::kBlocking, delete_keys, "delete backed-up keys"},
    {"DELETE", "/room_keys/keys/{roomId}", Mount::kV3AndR0, Run::kBlocking, delete_keys, "delete one room's keys"},
    {"DELETE", "/room_keys/keys/{roomId}/{sessionId}", Mount::kV3AndR0, Run::kBlocking, delete_keys, "delete one key"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kKeyBackupRoutes = kKeyBackupTable;

}  // namespace coop::room
