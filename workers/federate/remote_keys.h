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

#include "workers/federate/discovery.h"
#include "workers/matrix/ids.h"

namespace coop::federate {

struct Peer {
  std::string server_name;
  std::string base_url;    // where its federation API answers (as discovered last)
  std::string connect_to;  // and the SRV target or port its connections go to, if any
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
  // federations); every other name is found by server discovery (discovery.h).
  explicit RemoteKeys(std::map<std::string, std::string> resolve,
                      Discovery::Lookups lookups = Discovery::system_lookups());

  // Where a server answers (blocking: it may look up .well-known and SRV records).
  Route route(const std::string& server_name) { return discovery_.route(server_name); }

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

  Discovery discovery_;
  mutable std::mutex mutex_;  // guards peers_ and answers_
  std::map<std::string, Peer> peers_;
  std::map<std::string, nlohmann::json> answers_;  // server -> its last verified key answer
};

using matrix::valid_server_name;

}  // namespace coop::federate
