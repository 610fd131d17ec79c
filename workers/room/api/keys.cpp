// Client-Server API "End-to-end encryption" (key distribution) and "Cross-signing": device
// keys, one-time and fallback keys, key queries and claims, device list changes, and the
// cross-signing keys and signatures that let members verify each other's devices.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "common/error.h"
#include "workers/matrix/ids.h"
#include "workers/matrix/signing.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/key_store.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

using http::Request;
using http::Response;
using nlohmann::json;

namespace {

// What one request may carry; a client uploads 50 one-time keys at a time, and Element asks
// for the keys of every member of its rooms at once.
constexpr std::size_t kMaxOneTimeKeysPerUpload = 1000;
constexpr int64_t kMaxUnclaimedOneTimeKeys = 10000;
constexpr std::size_t kMaxKeyIdBytes = 255;
constexpr std::size_t kMaxClaimsPerRequest = 10000;
const char* const kCrossSigningUsages[] = {"master", "self_signing", "user_signing"};

bool is_string_map(const json& value) {
  return value.is_object() && std::all_of(value.begin(), value.end(), [](const json& v) { return v.is_string(); });
}

// Client-Server API "Device keys": the object must name this session's user and device.
void check_device_keys(const json& keys, const Session& s) {
  if (!keys.is_object()) fail(400, errc::kMBadJson, "device_keys must be an object");
  if (keys.value("user_id", json()) != json(s.user_id) || keys.value("device_id", json()) != json(s.device_id))
    fail(400, errc::kMInvalidParam, "device_keys must be for this session's user and device");
  const auto algorithms = keys.value("algorithms", json());
  if (!algorithms.is_array() || !std::all_of(algorithms.begin(), algorithms.end(), [](const json& a) { return a.is_string(); }))
    fail(400, errc::kMBadJson, "device_keys.algorithms must be a list of strings");
  const auto key_map = keys.value("keys", json());
  if (!is_string_map(key_map) || key_map.empty()) fail(400, errc::kMBadJson, "device_keys.keys must map key IDs to keys");
  for (const auto& [id, key] : key_map.items())
    if (id.find(':') == std::string::npos || id.size() > kMaxKeyIdBytes) fail(400, errc::kMBadJson, "bad key ID " + id);
  if (!keys.value("signatures", json()).is_object()) fail(400, errc::kMBadJson, "device_keys must be signed");
}

// One-time and fallback keys: {"algorithm:id": key}, the key a string or a signed object.
void check_key_map(const json& keys, const char* what) {
  if (keys.is_null()) return;
  if (!keys.is_object()) fail(400, errc::kMBadJson, std::string(what) + " must be an object");
  for (const auto& [id, key] : keys.items()) {
    const auto colon = id.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == id.size() || id.size() > kMaxKeyIdBytes)
      fail(400, errc::kMBadJson, std::string(what) + ": bad key ID " + id);
    if (!key.is_string() && !key.is_object()) fail(400, errc::kMBadJson, std::string(what) + ": bad key " + id);
  }
}

json fallback_keys_of(const json& body) {
  if (body.contains("fallback_keys")) return body["fallback_keys"];
  if (body.contains("org.matrix.msc2732.fallback_keys")) return body["org.matrix.msc2732.fallback_keys"];
  return nullptr;
}

Response upload_keys(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  const json device_keys = body.value("device_keys", json());
  if (!device_keys.is_null()) check_device_keys(device_keys, s);
  const json one_time_keys = body.value("one_time_keys", json());
  const json fallback_keys = fallback_keys_of(body);
  check_key_map(one_time_keys, "one_time_keys");
  check_key_map(fallback_keys, "fallback_keys");
  if (one_time_keys.is_object()) {
    if (one_time_keys.size() > kMaxOneTimeKeysPerUpload) fail(400, errc::kMInvalidParam, "too many one-time keys at once");
    int64_t stored = 0;
    for (const auto& [algorithm, count] : api.keys.one_time_key_counts(s.user_id, s.device_id)) stored += count;
    if (stored + static_cast<int64_t>(one_time_keys.size()) > kMaxUnclaimedOneTimeKeys)
      fail(400, errc::kMInvalidParam, "this device already has enough unclaimed one-time keys");
  }
  api.keys.upload(s.user_id, s.device_id, device_keys, one_time_keys, fallback_keys);
  json counts = json::object();
  for (const auto& [algorithm, count] : api.keys.one_time_key_counts(s.user_id, s.device_id)) counts[algorithm] = count;
  return ok({{"one_time_key_counts", counts}});
}

// The client's `timeout` for asking other servers (Client-Server API POST /keys/query and
// /keys/claim: 10 s by default), kept between 1 and 20 s.
std::chrono::seconds remote_timeout(const json& body) {
  const auto it = body.find("timeout");
  const int64_t ms = it != body.end() && it->is_number_integer() ? it->get<int64_t>() : 10000;
  return std::chrono::seconds(std::clamp<int64_t>(ms / 1000, 1, 20));
}

void note_failure(json& failures, const std::string& server, const std::exception& e) {
  failures[server] = {{"errcode", errc::kMUnknown}, {"error", e.what()}};
}

// What one query or claim may ask of other servers: at most this many, one after another
// within the client's timeout as a whole; the rest are named in failures unasked.
constexpr std::size_t kMaxRemoteServers = 50;

struct RemoteBudget {
  std::chrono::steady_clock::time_point deadline;
  std::size_t asked = 0;
  explicit RemoteBudget(std::chrono::seconds timeout) : deadline(std::chrono::steady_clock::now() + timeout) {}
  // The time left for the next server, or nullopt (and a failure noted) when there is none.
  std::optional<std::chrono::seconds> next(json& failures, const std::string& server) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
    if (++asked > kMaxRemoteServers || left.count() < 1) {
      failures[server] = {{"errcode", errc::kMUnknown}, {"error", "not asked: too many servers, or no time left"}};
      return std::nullopt;
    }
    return left + std::chrono::seconds(2);
  }
  // One server asked through coop-federate: its answer, or nullopt with the reason in failures.
  std::optional<json> ask(ClientApi::Impl& api, const char* path, const std::string& server, const json& body, json& failures) {
    const auto timeout = next(failures, server);
    if (!timeout) return std::nullopt;
    try {
      return api.federate(path, body, *timeout);
    } catch (const std::exception& e) {
      note_failure(failures, server, e);
      return std::nullopt;
    }
  }
};

// What another server answered may only speak of the users we asked it about, and a key
// object must name the user (and device) it is filed under.
bool names(const json& key, const std::string& user_id, const std::string& device_id = "") {
  return key.is_object() && key.value("user_id", json()) == json(user_id) &&
         (device_id.empty() || key.value("device_id", json()) == json(device_id));
}

// Our users' keys, as a client's query and another server's (Server-Server API POST
// /user/keys/query) both get them. The user-signing key goes to its owner only.
struct KeyAnswer {
  json device_keys = json::object(), master = json::object(), self_signing = json::object(), user_signing = json::object();
  json failures = json::object();

  void add_local(ClientApi::Impl& api, const std::string& user_id, const std::vector<std::string>& devices,
                 const std::string& asker) {
    auto keys = api.keys.device_keys(user_id, devices);
    if (!keys.empty()) {
      // The device's display name rides along in unsigned, as the big servers send it.
      for (const auto& device : api.store.devices(user_id)) {
        const auto id = device.value("device_id", "");
        if (keys.contains(id) && !device.value("display_name", "").empty())
          keys[id]["unsigned"] = {{"device_display_name", device.value("display_name", "")}};
      }
    }
    device_keys[user_id] = std::move(keys);
    if (auto key = api.keys.cross_signing_key(user_id, "master")) master[user_id] = std::move(*key);
    if (auto key = api.keys.cross_signing_key(user_id, "self_signing")) self_signing[user_id] = std::move(*key);
    if (user_id == asker)
      if (auto key = api.keys.cross_signing_key(user_id, "user_signing")) user_signing[user_id] = std::move(*key);
  }

  // Server-Server API "End-to-End Encryption": other servers' users are asked of their
  // servers through coop-federate, one request per server; one that does not answer is named
  // in failures and the others' keys still come back.
  void add_remote(ClientApi::Impl& api, const std::string& server, const json& wanted, RemoteBudget& budget) {
    const auto found = budget.ask(api, "/v1/user/keys/query", server, {{"server", server}, {"device_keys", wanted}}, failures);
    if (!found) return;
    const json& answer = *found;
    const auto section = [&answer](const char* name) {
      return answer.contains(name) && answer[name].is_object() ? answer[name] : json::object();
    };
    const auto devices = section("device_keys"), masters = section("master_keys"), self = section("self_signing_keys");
    for (const auto& [user_id, asked] : wanted.items()) {
      json kept = json::object();
      if (devices.contains(user_id) && devices[user_id].is_object())
        for (const auto& [device_id, keys] : devices[user_id].items())
          if (names(keys, user_id, device_id) &&
              (asked.empty() || std::find(asked.begin(), asked.end(), json(device_id)) != asked.end()))
            kept[device_id] = keys;
      device_keys[user_id] = std::move(kept);
      if (masters.contains(user_id) && names(masters[user_id], user_id)) master[user_id] = masters[user_id];
      if (self.contains(user_id) && names(self[user_id], user_id)) self_signing[user_id] = self[user_id];
    }
  }

  json body(bool with_user_signing) const {
    json out = {{"device_keys", device_keys}, {"master_keys", master}, {"self_signing_keys", self_signing}};
    if (with_user_signing) {
      out["user_signing_keys"] = user_signing;
      out["failures"] = failures;
    }
    return out;
  }
};

// {user: [device IDs]} as the Client-Server and Server-Server APIs both send it.
void check_device_lists(const json& wanted) {
  if (!wanted.is_object()) fail(400, errc::kMBadJson, "device_keys must be an object");
  if (wanted.size() > kMaxClaimsPerRequest) fail(400, errc::kMInvalidParam, "too many users at once");
  for (const auto& [user_id, list] : wanted.items())
    if (!list.is_array() || !std::all_of(list.begin(), list.end(), [](const json& d) { return d.is_string(); }))
      fail(400, errc::kMBadJson, "device_keys values must be lists of device IDs");
}

Response query_keys(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  const auto wanted = body.value("device_keys", json());
  check_device_lists(wanted);
  KeyAnswer answer;
  std::map<std::string, json> remote;  // server -> {user: [devices]}
  for (const auto& [user_id, list] : wanted.items()) {
    if (api.is_local_user(user_id)) {
      answer.add_local(api, user_id, list.get<std::vector<std::string>>(), s.user_id);
      continue;
    }
    // Not a user of any server (a careless client): nobody to ask, so no keys.
    if (const auto server = matrix::user_server(user_id); !server.empty()) remote[server][user_id] = list;
  }
  RemoteBudget budget(remote_timeout(body));
  for (const auto& [server, users] : remote) answer.add_remote(api, server, users, budget);
  return ok(answer.body(true));
}

// {user: {device: algorithm}}; counts the claims against the per-request limit.
void check_claims(const json& wanted) {
  if (!wanted.is_object()) fail(400, errc::kMBadJson, "one_time_keys must be an object");
  std::size_t claims = 0;
  for (const auto& [user_id, devices] : wanted.items()) {
    if (!is_string_map(devices)) fail(400, errc::kMBadJson, "one_time_keys values must map device IDs to algorithms");
    if ((claims += devices.size()) > kMaxClaimsPerRequest) fail(400, errc::kMInvalidParam, "too many keys claimed at once");
  }
}

void claim_local(ClientApi::Impl& api, const std::string& user_id, const json& devices, json& claimed) {
  for (const auto& [device_id, algorithm] : devices.items())
    if (auto key = api.keys.claim(user_id, device_id, algorithm.get<std::string>())) claimed[user_id][device_id] = std::move(*key);
}

Response claim_keys(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  const auto body = q.json();
  const auto wanted = body.value("one_time_keys", json());
  check_claims(wanted);
  json claimed = json::object(), failures = json::object();
  std::map<std::string, json> remote;  // server -> {user: {device: algorithm}}
  for (const auto& [user_id, devices] : wanted.items()) {
    if (api.is_local_user(user_id)) {
      claim_local(api, user_id, devices, claimed);
      continue;
    }
    if (const auto server = matrix::user_server(user_id); !server.empty()) remote[server][user_id] = devices;
  }
  // Server-Server API POST /user/keys/claim, through coop-federate, one request per server.
  RemoteBudget budget(remote_timeout(body));
  for (const auto& [server, users] : remote) {
    const auto answer = budget.ask(api, "/v1/user/keys/claim", server, {{"server", server}, {"one_time_keys", users}}, failures);
    if (!answer) continue;
    const auto keys = answer->contains("one_time_keys") && (*answer)["one_time_keys"].is_object() ? (*answer)["one_time_keys"] : json::object();
    for (const auto& [user_id, devices] : users.items()) {
      if (!keys.contains(user_id) || !keys[user_id].is_object()) continue;
      for (const auto& [device_id, key] : keys[user_id].items())
        if (devices.contains(device_id) && key.is_object() && key.size() == 1) claimed[user_id][device_id] = key;
    }
  }
  return ok({{"one_time_keys", claimed}, {"failures", failures}});
}

Response key_changes(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto from = StreamPosition::parse(q.query_value("from"));
  const auto to = StreamPosition::parse(q.query_value("to"));
  if (!from || !to) fail(400, errc::kMInvalidParam, "from and to must be sync tokens of this server");
  const auto [changed, left] = api.device_list_delta(s.user_id, *from, *to);
  return ok({{"changed", changed}, {"left", left}});
}

// The one Ed25519 public key of a cross-signing key, or "" when it does not have exactly one.
std::string public_key_of(const json& key) {
  const auto keys = key.value("keys", json());
  if (!is_string_map(keys) || keys.size() != 1) return "";
  const auto only = keys.begin();  // an object iterator: no items() proxy to outlive
  const auto value = only.value().get<std::string>();
  if (only.key() != "ed25519:" + value) return "";
  return value;
}

json without_signatures(json key) {
  if (key.is_object()) {
    key.erase("signatures");
    key.erase("unsigned");
  }
  return key;
}

// Client-Server API POST /keys/device_signing/upload. The first upload needs no password
// (a new account sets up cross-signing at once); replacing a key does.
Response upload_cross_signing(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  std::map<std::string, json> uploaded;
  for (const char* usage : kCrossSigningUsages) {
    const auto field = std::string(usage) + "_key";
    if (!body.contains(field)) continue;
    const auto& key = body[field];
    if (!key.is_object() || key.value("user_id", json()) != json(s.user_id))
      fail(400, errc::kMInvalidParam, field + " must be an object for this user");
    const auto usages = key.value("usage", json());
    if (!usages.is_array() || std::find(usages.begin(), usages.end(), json(usage)) == usages.end())
      fail(400, errc::kMInvalidParam, field + " must list the usage " + usage);
    if (public_key_of(key).empty()) fail(400, errc::kMInvalidParam, field + " must hold one ed25519 key named by itself");
    uploaded[usage] = key;
  }
  if (uploaded.empty()) fail(400, errc::kMMissingParam, "no cross-signing key was sent");

  bool replaces = false;
  for (const auto& [usage, key] : uploaded) {
    const auto stored = api.keys.cross_signing_key(s.user_id, usage);
    if (stored && without_signatures(*stored).value("keys", json()) != key["keys"]) replaces = true;
  }
  const auto stored_master = api.keys.cross_signing_key(s.user_id, "master");
  if (stored_master && replaces)
    if (auto ask = api.password_again(q, s, "device-signing")) return std::move(*ask);

  const json master = uploaded.count("master") ? uploaded["master"] : stored_master.value_or(json());
  if (master.is_null()) fail(400, errc::kMInvalidParam, "upload a master key first");
  const auto master_public = public_key_of(master);
  for (const char* usage : {"self_signing", "user_signing"}) {
    if (!uploaded.count(usage)) continue;
    if (!matrix::verify_json_signature(uploaded[usage], s.user_id, "ed25519:" + master_public, master_public))
      fail(400, errc::kMInvalidSignature, std::string(usage) + " key is not signed by the master key");
  }
  api.keys.set_cross_signing_keys(s.user_id, uploaded);
  return ok(json::object());
}

// The public Ed25519 key behind a signer's key ID: a device key ("ed25519:DEVICE") or one of
// the user's cross-signing keys ("ed25519:<public key>"); "" when there is none.
std::string signer_public_key(ClientApi::Impl& api, const std::string& user_id, const std::string& key_id) {
  if (key_id.rfind("ed25519:", 0) != 0) return "";
  const auto name = key_id.substr(8);
  for (const char* usage : kCrossSigningUsages)
    if (auto key = api.keys.cross_signing_key(user_id, usage); key && public_key_of(without_signatures(*key)) == name)
      return name;
  const auto devices = api.keys.device_keys(user_id, {name});
  if (devices.contains(name)) {
    const auto keys = devices[name].value("keys", json::object());
    if (keys.contains(key_id) && keys[key_id].is_string()) return keys[key_id].get<std::string>();
  }
  return "";
}

// Client-Server API POST /keys/signatures/upload: signatures the member made, with their own
// device key on their master key, with their self-signing key on their devices, and with
// their user-signing key on other members' master keys. Each is checked before it is kept.
Response upload_signatures(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  json failures = json::object();
  std::vector<KeyStore::Signature> accepted;
  for (const auto& [user_id, targets] : body.items()) {
    if (!targets.is_object()) fail(400, errc::kMBadJson, "signatures must be grouped by user and key");
    const auto master = api.keys.cross_signing_key(user_id, "master");  // once per user, not per key
    const auto master_public = master ? public_key_of(without_signatures(*master)) : std::string();
    for (const auto& [target_key, signed_object] : targets.items()) {
      // Structured bindings cannot be captured before C++20's later rules (clang): name them.
      auto refuse = [&failures, user = user_id, key = target_key](const char* code, const std::string& why) {
        failures[user][key] = {{"errcode", code}, {"error", why}};
      };
      if (!signed_object.is_object()) {
        refuse(errc::kMBadJson, "not an object");
        continue;
      }
      // The stored key the signature is on: a device of the member's own, or a master key.
      std::optional<json> stored;
      if (master && master_public == target_key) stored = master;
      else if (user_id == s.user_id) {
        const auto devices = api.keys.device_keys(user_id, {target_key});
        if (devices.contains(target_key)) stored = devices[target_key];
      }
      if (!stored) {
        refuse(errc::kMNotFound, "no such key");
        continue;
      }
      if (without_signatures(*stored) != without_signatures(signed_object)) {
        refuse(errc::kMInvalidParam, "the signed object differs from the stored key");
        continue;
      }
      const auto mine = signed_object.value("signatures", json::object()).value(s.user_id, json::object());
      if (!mine.is_object()) {
        refuse(errc::kMBadJson, "bad signatures");
        continue;
      }
      const auto already = stored->value("signatures", json::object()).value(s.user_id, json::object());
      for (const auto& [signer_key_id, signature] : mine.items()) {
        if (!signature.is_string()) continue;
        if (already.is_object() && already.contains(signer_key_id) && already[signer_key_id] == signature) continue;
        const auto public_key = signer_public_key(api, s.user_id, signer_key_id);
        if (public_key.empty() || !matrix::verify_json_signature(signed_object, s.user_id, signer_key_id, public_key)) {
          refuse(errc::kMInvalidSignature, "signature by " + signer_key_id + " does not verify");
          continue;
        }
        accepted.push_back({user_id, target_key, s.user_id, signer_key_id, signature.get<std::string>()});
      }
    }
  }
  api.keys.add_signatures(accepted);
  return ok({{"failures", failures}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kKeyTable[] = {
    {"POST", "/keys/upload", Mount::kV3AndR0, Run::kBlocking, upload_keys, "upload device, one-time and fallback keys"},
    {"POST", "/keys/query", Mount::kV3AndR0, Run::kBlocking, query_keys, "device and cross-signing keys of users"},
    {"POST", "/keys/claim", Mount::kV3AndR0, Run::kBlocking, claim_keys, "claim one-time keys (then fallback keys)"},
    {"GET", "/keys/changes", Mount::kV3AndR0, Run::kBlocking, key_changes, "users whose devices changed between tokens"},
    {"POST", "/keys/device_signing/upload", Mount::kV3AndR0, Run::kBlocking, upload_cross_signing,
     "upload cross-signing keys (replacing them asks for the password)"},
    {"POST", "/keys/signatures/upload", Mount::kV3AndR0, Run::kBlocking, upload_signatures, "upload checked key signatures"},
};

}  // namespace

// ---- what other servers ask of and hear from us (Server-Server API "End-to-End Encryption",
// "Device Management"), through coop-federate, which has checked who is asking ----

json ClientApi::Impl::keys_for_server(const json& wanted) {
  check_device_lists(wanted);
  KeyAnswer answer;
  for (const auto& [user_id, list] : wanted.items())
    if (is_local_user(user_id)) answer.add_local(*this, user_id, list.get<std::vector<std::string>>(), "");
  return answer.body(false);
}

json ClientApi::Impl::claims_for_server(const json& wanted) {
  check_claims(wanted);
  json claimed = json::object();
  for (const auto& [user_id, devices] : wanted.items())
    if (is_local_user(user_id)) claim_local(*this, user_id, devices, claimed);
  return {{"one_time_keys", claimed}};
}

namespace {

std::string display_name_of(ClientApi::Impl& api, const std::string& user_id, const std::string& device_id) {
  for (const auto& device : api.store.devices(user_id))
    if (device.value("device_id", "") == device_id) return device.value("display_name", "");
  return "";
}

json signing_key_update(ClientApi::Impl& api, const std::string& user_id) {
  json content = {{"user_id", user_id}};
  if (auto key = api.keys.cross_signing_key(user_id, "master")) content["master_key"] = std::move(*key);
  if (auto key = api.keys.cross_signing_key(user_id, "self_signing")) content["self_signing_key"] = std::move(*key);
  return {{"edu_type", "m.signing_key_update"}, {"content", content}};
}

// One change of our member's devices as the EDU other servers expect: m.device_list_update
// for a device (its keys, or deleted), m.signing_key_update for the cross-signing keys.
json device_change_edu(ClientApi::Impl& api, const KeyStore::DeviceChange& change) {
  if (change.device_id.empty()) return signing_key_update(api, change.user_id);
  const auto keys = api.keys.device_keys(change.user_id, {change.device_id});
  json content = {{"user_id", change.user_id},
                  {"device_id", change.device_id},
                  {"stream_id", change.position},
                  {"prev_id", change.previous ? json::array({change.previous}) : json::array()}};
  if (keys.contains(change.device_id)) {
    content["deleted"] = false;
    content["keys"] = keys[change.device_id];
    if (const auto name = display_name_of(api, change.user_id, change.device_id); !name.empty())
      content["device_display_name"] = name;
  } else if (const auto master = api.keys.cross_signing_key(change.user_id, "master");
             master && public_key_of(without_signatures(*master)) == change.device_id) {
    return signing_key_update(api, change.user_id);  // a signature on the master key
  } else {
    content["deleted"] = true;
  }
  return {{"edu_type", "m.device_list_update"}, {"content", content}};
}

constexpr char kDeviceListCursor[] = "federation.device_lists";

}  // namespace

json ClientApi::Impl::devices_for_server(const std::string& user_id) {
  if (!is_local_user(user_id)) fail(404, errc::kMNotFound, user_id + " is not a user of this server");
  const auto keys = this->keys.device_keys(user_id, {});
  json devices = json::array();
  for (const auto& device : store.devices(user_id)) {
    const auto id = device.value("device_id", "");
    if (!keys.contains(id)) continue;  // a device without keys cannot take part in encryption
    json entry = {{"device_id", id}, {"keys", keys[id]}};
    if (!device.value("display_name", "").empty()) entry["device_display_name"] = device.value("display_name", "");
    devices.push_back(std::move(entry));
  }
  json answer = {{"user_id", user_id}, {"stream_id", this->keys.last_device_change(user_id)}, {"devices", devices}};
  if (auto key = this->keys.cross_signing_key(user_id, "master")) answer["master_key"] = std::move(*key);
  if (auto key = this->keys.cross_signing_key(user_id, "self_signing")) answer["self_signing_key"] = std::move(*key);
  return answer;
}

void ClientApi::Impl::announce_devices(const std::string& user_id, const std::string& room_id) {
  run([self = shared_from_this(), user_id, room_id] {
    try {
      const auto servers = self->store.remote_servers_in(room_id);
      if (servers.empty()) return;
      const auto position = self->keys.last_device_change(user_id);
      const auto devices = self->keys.device_keys(user_id, {});  // items() must not run over a temporary
      for (const auto& [device_id, keys] : devices.items())
        self->federate("/v1/outbound/edu",
                       {{"servers", servers},
                        {"edu", device_change_edu(*self, {position, user_id, device_id, 0})},
                        {"durable", true}},
                       std::chrono::seconds(10));
    } catch (const std::exception& e) {
      spdlog::debug("the devices of {} wait for their next change to reach {}: {}", user_id, room_id, e.what());
    }
  });
}

void ClientApi::Impl::federate_device_changes() {
  while (true) {
    const auto changes = keys.device_changes_after(keys.cursor(kDeviceListCursor), 200);
    if (changes.empty()) return;
    for (const auto& change : changes) {
      if (is_local_user(change.user_id)) {
        std::set<std::string> servers;
        for (const auto& user : store.users_sharing_rooms(change.user_id))
          if (const auto server = matrix::user_server(user); !server.empty() && !is_local_user(user)) servers.insert(server);
        // Queued durably by coop-federate before the cursor moves on: when it is not running,
        // this stops and the next change (or coop-federate's start) tries again.
        if (!servers.empty())
          federate("/v1/outbound/edu", {{"servers", servers}, {"edu", device_change_edu(*this, change)}, {"durable", true}},
                   std::chrono::seconds(10));
      }
      keys.set_cursor(kDeviceListCursor, change.position);
    }
  }
}

std::pair<std::set<std::string>, std::set<std::string>> ClientApi::Impl::device_list_delta(const std::string& user_id,
                                                                                         const StreamPosition& from,
                                                                                         const StreamPosition& to) {
  std::set<std::string> changed, left;
  const auto key_changes = keys.changed_users(from.keys, to.keys);
  const auto memberships = store.membership_changes(user_id, from.events, to.events);
  if (key_changes.empty() && memberships.empty()) return {changed, left};
  const auto sharing = store.users_sharing_rooms(user_id);
  for (const auto& user : key_changes)
    if (sharing.count(user)) changed.insert(user);
  for (const auto& m : memberships) {
    const bool in = m.membership == "join" || m.membership == "invite";
    if (m.user_id == user_id) {
      // The user joined a room: its members may be new to them. The user left one: those they
      // no longer share any room with are gone from their list.
      for (const auto& member : store.room_members(m.room_id)) {
        if (member == user_id) continue;
        if (in && m.membership == "join") changed.insert(member);
        else if (!sharing.count(member)) left.insert(member);
      }
    } else if (sharing.count(m.user_id)) {
      if (in) changed.insert(m.user_id);
    } else {
      left.insert(m.user_id);
    }
  }
  for (const auto& user : changed) left.erase(user);
  return {changed, left};
}

constinit const std::span<const ClientRoute> api::kKeyRoutes = kKeyTable;

}  // namespace coop::room
