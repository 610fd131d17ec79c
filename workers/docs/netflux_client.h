// A small blocking Netflux client for the coop CLI: connect, JOIN a channel, read its history
// from the history keeper, send messages and wait for their ACK.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coop::docs {

class NetfluxClient {
 public:
  // ws://HOST:PORT/PATH. Throws coop::Error(errc::kNotRunning, 503) when nothing answers.
  explicit NetfluxClient(const std::string& ws_url, std::chrono::seconds timeout = std::chrono::seconds(30));
  ~NetfluxClient();

  void join(const std::string& channel);
  struct History {
    std::optional<nlohmann::json> metadata;
    std::vector<std::string> messages;  // message contents (ciphertext), in log order
  };
  // GET_HISTORY: everything (from_start) or from the relevant checkpoint. metadata is what a
  // new channel is created with ({"validateKey": ...}).
  History history(const std::string& channel, const nlohmann::json& metadata, bool from_start);
  // Sends a message to the channel; returns when the server has stored it (ACK).
  void send(const std::string& channel, const std::string& content);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::docs
