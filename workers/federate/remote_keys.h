// Other homeservers: where they are and their signing keys (Server-Server API "Server
// discovery" and "Retrieving server keys"), fetched when a request or event names a key we
// have not seen and remembered until its valid_until_ts.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::federate {

struct Peer {
  std::string server_name;
  std::string base_url;  // where its federation API answers
  std::map<std::string, std::string> keys;  // key id -> public key (unpadded base64)
  int64_t valid_until_ts = 0;               // ms since the epoch
  int64_t fetched_ts = 0;
  std::string last_error;
  uint64_t requests_in = 0;       // authenticated requests it sent us
  uint64_t refused_in = 0;        // requests from it refused (bad signature, unknown key)
};

class RemoteKeys {
 public:
  // resolve: server name -> base URL, from [workers.federate.resolve] (tests, private
  // federations); every other name is reached at https://<name>:8448 or its explicit port.
  explicit RemoteKeys(std::map<std::string, std::string> resolve);

  std::string base_url(const std::string& server_name) const;

  // The public key of server_name's key_id: from memory while valid, else fetched from the
  // server (GET /_matrix/key/v2/server) and checked: the answer must name the server, be
  // signed by the key it publishes, and be valid now. nullopt when none of that holds; the
  // reason is kept as the peer's last_error.
  std::optional<std::string> public_key(const std::string& server_name, const std::string& key_id);

  // Counts a request a peer's signature admitted or refused.
  void count(const std::string& server_name, bool admitted);

  // The server's own answer to /_matrix/key/v2/server as fetched last, for a notary query;
  // nullopt when it cannot be had.
  std::optional<nlohmann::json> server_keys(const std::string& server_name);

  std::vector<Peer> peers() const;

 private:
  std::optional<nlohmann::json> fetch_keys(Peer& peer);

  std::map<std::string, std::string> resolve_;
  mutable std::mutex mutex_;  // guards peers_ and answers_
  std::map<std::string, Peer> peers_;
  std::map<std::string, nlohmann::json> answers_;  // server -> its last verified key answer
};

// Server names (spec "Server names"): a DNS name, IPv4 literal or bracketed IPv6 literal, with
// an optional port; at most 255 characters.
bool valid_server_name(const std::string& name);

}  // namespace coop::federate
