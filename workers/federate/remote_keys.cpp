#include "workers/federate/remote_keys.h"

#include <spdlog/spdlog.h>

#include <cctype>

#include "common/json.h"
#include "common/clock.h"
#include "workers/federate/http_fetch.h"
#include "workers/matrix/signing.h"

namespace coop::federate {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxKeyAnswer = 64 * 1024;
constexpr std::size_t kMaxPeers = 10000;

}  // namespace

RemoteKeys::RemoteKeys(std::map<std::string, std::string> resolve, Discovery::Lookups lookups)
    : discovery_(std::move(resolve), std::move(lookups)) {}

std::optional<json> RemoteKeys::fetch_keys(Peer& peer) {
  const auto fetched = http_fetch("GET", peer.base_url + "/_matrix/key/v2/server", {}, "", kMaxKeyAnswer, 10000, peer.connect_to);
  const auto& [status, body, error] = fetched;
  peer.fetched_ts = unix_millis();
  if (status != 200) {
    peer.last_error = status ? "its keys answered HTTP " + std::to_string(status) : error;
    return std::nullopt;
  }
  json answer;
  try {
    answer = parse_json_object(body);
  } catch (const std::exception&) {
    peer.last_error = "its keys are not a JSON object";
    return std::nullopt;
  }
  // "Retrieving server keys": the answer names the server, lists its keys, is signed by each
  // of them, and is valid now.
  const auto keys = answer.value("verify_keys", json::object());
  if (answer.value("server_name", json()) != peer.server_name || !keys.is_object() || keys.empty()) {
    peer.last_error = "its keys answer names another server or no keys";
    return std::nullopt;
  }
  std::map<std::string, std::string> verified;
  for (const auto& [key_id, entry] : keys.items()) {
    if (!entry.is_object() || !entry.contains("key") || !entry["key"].is_string()) continue;
    const std::string public_key = entry["key"];
    if (!matrix::verify_json_signature(answer, peer.server_name, key_id, public_key)) {
      peer.last_error = "its keys answer is not signed by " + key_id;
      return std::nullopt;
    }
    verified[key_id] = public_key;
  }
  const auto valid_until = answer.value("valid_until_ts", json(0));
  if (verified.empty() || !valid_until.is_number_integer() || valid_until.get<int64_t>() < unix_millis()) {
    peer.last_error = "its keys have expired or none could be read";
    return std::nullopt;
  }
  peer.keys = std::move(verified);
  peer.valid_until_ts = valid_until.get<int64_t>();
  peer.last_error.clear();
  return answer;
}

std::optional<std::string> RemoteKeys::public_key(const std::string& server_name, const std::string& key_id) {
  if (!valid_server_name(server_name)) return std::nullopt;
  Peer snapshot;
  {
    std::lock_guard lock(mutex_);
    // Anyone may name any server in a request: the peers remembered are bounded.
    if (!peers_.count(server_name) && peers_.size() >= kMaxPeers) return std::nullopt;
    auto& peer = peers_[server_name];
    peer.server_name = server_name;
    if (const auto it = peer.keys.find(key_id); it != peer.keys.end() && peer.valid_until_ts >= unix_millis()) return it->second;
    // A key we do not know is looked up at most every 30 s, so that a stream of requests with
    // made-up key IDs does not become a stream of fetches.
    if (peer.fetched_ts > unix_millis() - 30000 && peer.valid_until_ts >= unix_millis()) return std::nullopt;
    snapshot = peer;
  }
  // Without the lock: discovery and a slow peer must not stall the others.
  const auto where = discovery_.route(server_name);
  snapshot.base_url = where.base_url;
  snapshot.connect_to = where.connect_to;
  auto answer = fetch_keys(snapshot);
  std::lock_guard lock(mutex_);
  auto& peer = peers_[server_name];
  peer.base_url = snapshot.base_url;
  peer.connect_to = snapshot.connect_to;
  peer.keys = snapshot.keys;
  peer.valid_until_ts = snapshot.valid_until_ts;
  peer.fetched_ts = snapshot.fetched_ts;
  peer.last_error = snapshot.last_error;
  if (!peer.last_error.empty()) spdlog::warn("keys of {}: {}", server_name, peer.last_error);
  if (answer) answers_[server_name] = *answer;
  const auto it = peer.keys.find(key_id);
  return it == peer.keys.end() ? std::nullopt : std::optional<std::string>(it->second);
}

std::optional<json> RemoteKeys::server_keys(const std::string& server_name) {
  {
    std::lock_guard lock(mutex_);
    const auto it = answers_.find(server_name);
    const auto peer = peers_.find(server_name);
    if (it != answers_.end() && peer != peers_.end() && peer->second.valid_until_ts >= unix_millis()) return it->second;
  }
  // Any key ID makes it fetch; the answer is what a notary passes on.
  public_key(server_name, "");
  std::lock_guard lock(mutex_);
  const auto it = answers_.find(server_name);
  return it == answers_.end() ? std::nullopt : std::optional<json>(it->second);
}

void RemoteKeys::count(const std::string& server_name, bool admitted) {
  std::lock_guard lock(mutex_);
  const auto it = peers_.find(server_name);
  if (it == peers_.end()) return;
  ++(admitted ? it->second.requests_in : it->second.refused_in);
}

std::vector<Peer> RemoteKeys::peers() const {
  std::lock_guard lock(mutex_);
  std::vector<Peer> out;
  for (const auto& [name, peer] : peers_) out.push_back(peer);
  return out;
}

}  // namespace coop::federate
