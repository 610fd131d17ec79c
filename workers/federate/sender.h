// Outbound federation (Server-Server API "Transactions"): every event this server must send
// goes to each server in its room, in stream order, as PUT /send transactions of up to 50
// PDUs. Each destination's position in room.db's stream is kept in federate.db, so nothing is
// lost while a server is down or this one restarts: the events it has not acknowledged are
// sent again when it is back (catch-up). A failing destination backs off, doubling from one
// second to max_backoff; a request from it ends the wait at once.
#pragma once

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <deque>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace coop::sqlite {
class Database;
}

namespace coop::federate {

struct Context;

struct SenderSettings {
  int64_t max_backoff_ms = 10 * 60 * 1000;
  int batch = 50;  // PDUs per transaction (the spec's limit)
};

class Sender {
 public:
  using Runner = std::function<void(std::function<void()>)>;
  Sender(Context& c, const std::filesystem::path& db_file, SenderSettings settings, Runner run);
  ~Sender();

  void wake();                                  // new events may be waiting
  void stop();                                  // shutdown: no new transaction starts
  // An EDU for these servers, sent with the next transaction. Typing and receipts are kept in
  // memory only (at most kMaxQueuedEdus per server, the oldest dropped first); a durable one
  // (a to-device message, a device list update) is in federate.db before this returns and
  // stays there until the server has acknowledged it, across restarts.
  void queue_edu(const std::vector<std::string>& servers, const nlohmann::json& edu, bool durable = false);
  void peer_is_up(const std::string& server);   // it talked to us: retry it now

  struct Destination {
    std::string server;
    int64_t position = 0, retry_at = 0, backoff_ms = 0, last_sent_ts = 0, sent = 0;
    int64_t pending = 0;  // events waiting for it (counted up to 1,000)
    int64_t pending_edus = 0;  // durable EDUs waiting for it
    std::string last_error;
    bool sending = false;
  };
  std::vector<Destination> destinations();

 private:
  void loop();
  void round();
  void send_to(const std::string& server);
  bool durable_waiting(const std::string& server);  // under mutex_
  void prune_outbox();  // under mutex_: durable EDUs older than a week go
  std::set<std::string> room_peers_;  // round()'s own: servers known to have had a member here

  Context& c_;
  SenderSettings settings_;
  Runner run_;
  std::unique_ptr<sqlite::Database> db_;
  std::mutex mutex_;  // guards db_, sending_, edus_, woken_, stop_
  std::condition_variable cv_;
  std::set<std::string> sending_;
  std::map<std::string, std::deque<nlohmann::json>> edus_;  // server -> EDUs not yet sent
  uint64_t edu_txns_ = 0;
  int64_t last_outbox_prune_ms_ = 0;  // durable EDUs older than a week go, looked for hourly
  bool woken_ = true, stop_ = false;
  int running_jobs_ = 0;
  std::thread thread_;
};

}  // namespace coop::federate
