// Client-Server API "Client Config" (account data, global and per room) and "Room Tagging".
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

Response put_account_data(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "not your account data");
  api.store.set_account_data(s.user_id, "", q.param("type"), q.json());
  return ok(json::object());
}

Response get_account_data(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "not your account data");
  auto content = api.store.account_data(s.user_id, "", q.param("type"));
  if (!content) fail(404, errc::kMNotFound, "no account data of that type");
  return ok(*content);
}

Response put_room_account_data(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "not your account data");
  api.store.set_account_data(s.user_id, q.param("roomId"), q.param("type"), q.json());
  return ok(json::object());
}

Response get_room_account_data(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "not your account data");
  auto content = api.store.account_data(s.user_id, q.param("roomId"), q.param("type"));
  if (!content) fail(404, errc::kMNotFound, "no account data of that type in this room");
  return ok(*content);
}

// Tags are room account data of type m.tag (Client-Server API "Room Tagging").
Response get_tags(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto tags = api.store.account_data(s.user_id, q.param("roomId"), "m.tag").value_or(json{{"tags", json::object()}});
  return ok(tags);
}

Response put_tag(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto tags = api.store.account_data(s.user_id, q.param("roomId"), "m.tag").value_or(json{{"tags", json::object()}});
  tags["tags"][q.param("tag")] = q.json();
  api.store.set_account_data(s.user_id, q.param("roomId"), "m.tag", tags);
  return ok(json::object());
}

Response delete_tag(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto tags = api.store.account_data(s.user_id, q.param("roomId"), "m.tag").value_or(json{{"tags", json::object()}});
  tags["tags"].erase(q.param("tag"));
  api.store.set_account_data(s.user_id, q.param("roomId"), "m.tag", tags);
  return ok(json::object());
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kAccountDataTable[] = {
    {"PUT", "/user/{userId}/account_data/{type}", Mount::kV3AndR0, Run::kBlocking, put_account_data, "set global account data"},
    {"GET", "/user/{userId}/account_data/{type}", Mount::kV3AndR0, Run::kBlocking, get_account_data, "read global account data"},
    {"PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", Mount::kV3AndR0, Run::kBlocking, put_room_account_data, "set a room's account data"},
    {"GET", "/user/{userId}/rooms/{roomId}/account_data/{type}", Mount::kV3AndR0, Run::kBlocking, get_room_account_data, "read a room's account data"},
    {"GET", "/user/{userId}/rooms/{roomId}/tags", Mount::kV3AndR0, Run::kBlocking, get_tags, "a room's tags"},
    {"PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", Mount::kV3AndR0, Run::kBlocking, put_tag, "tag a room"},
    {"DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", Mount::kV3AndR0, Run::kBlocking, delete_tag, "untag a room"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kAccountDataRoutes = kAccountDataTable;

}  // namespace coop::room
