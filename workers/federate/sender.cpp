// See sender.h.
#include "workers/federate/sender.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/clock.h"
#include "common/sqlite.h"
#include "common/text.h"
#include "workers/federate/context.h"
#include "workers/federate/federate_db.h"
#include "workers/federate/server_policy.h"
#include "workers/room/store/room_store.h"

namespace coop::federate {

using nlohmann::json;

namespace {

// However quiet it is, the loop looks again this often (a missed wake-up costs no more).
constexpr int64_t kIdleRoundMs = 5000;
constexpr int64_t kFirstBackoffMs = 1000;
// The spec's limit per transaction, and what one server may have waiting.
constexpr std::size_t kMaxEdusPerTxn = 100;
constexpr std::size_t kMaxQueuedEdus = 1000;
constexpr int64_t kMaxDurableEdus = 100000;
constexpr int64_t kOutboxKeptMs = 7LL * 24 * 3600 * 1000;
constexpr int64_t kOutboxPruneEveryMs = 3600LL * 1000;
// A transaction's EDUs stop growing past this many bytes (one EDU may be larger), so that it
// stays well inside what the other side takes in one request.
constexpr std::size_t kMaxEduBytesPerTxn = 2 << 20;

}  // namespace

Sender::Sender(Context& c, const std::filesystem::path& db_file, SenderSettings settings, Runner run)
    : c_(c), settings_(settings), run_(std::move(run)), db_(open_federate_db(db_file)) {
  thread_ = std::thread([this] { loop(); });
}

Sender::~Sender() {
  {
    std::unique_lock lock(mutex_);
    stop_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return running_jobs_ == 0; });
  }
  thread_.join();
}

void Sender::stop() {
  std::lock_guard lock(mutex_);
  stop_ = true;
  cv_.notify_all();
}

void Sender::wake() {
  std::lock_guard lock(mutex_);
  woken_ = true;
  cv_.notify_all();
}

void Sender::queue_edu(const std::vector<std::string>& servers, const json& edu, bool durable) {
  if (servers.empty()) return;
  // A server we share no room with yet (a to-device message to someone met elsewhere) becomes
  // a destination from the stream's head: it has no events of ours to catch up on.
  const int64_t head = durable ? c_.store.position().events : 0;
  std::lock_guard lock(mutex_);
  if (durable) {
    const auto text = edu.dump();
    sqlite::Transaction txn(*db_);
    for (const auto& server : servers) {
      db_->prepare("INSERT OR IGNORE INTO destinations (server, position) VALUES (?1, ?2)").bind(1, server).bind(2, head).run();
      db_->prepare("INSERT INTO edu_outbox (server, edu, at) VALUES (?1, ?2, ?3)").bind(1, server).bind(2, text).bind(3, unix_millis()).run();
      // A server gone for good cannot make us keep its mail forever: past the limit, or a
      // week old, the oldest goes (its clients ask again for keys they lack).
      db_->prepare("DELETE FROM edu_outbox WHERE server = ?1 AND id <= (SELECT max(id) FROM edu_outbox WHERE server = ?1) - ?2")
          .bind(1, server)
          .bind(2, kMaxDurableEdus)
          .run();
    }
    prune_outbox();
    txn.commit();
  } else {
    for (const auto& server : servers) {
      auto& queue = edus_[server];
      queue.push_back(edu);
      while (queue.size() > kMaxQueuedEdus) queue.pop_front();
    }
  }
  woken_ = true;
  cv_.notify_all();
}

void Sender::prune_outbox() {
  if (unix_millis() - last_outbox_prune_ms_ <= kOutboxPruneEveryMs) return;
  last_outbox_prune_ms_ = unix_millis();
  db_->prepare("DELETE FROM edu_outbox WHERE at < ?1").bind(1, unix_millis() - kOutboxKeptMs).run();
}

bool Sender::durable_waiting(const std::string& server) {
  auto& stmt = db_->prepare("SELECT 1 FROM edu_outbox WHERE server = ?1 LIMIT 1");
  stmt.bind(1, server);
  const bool waiting = stmt.step();
  stmt.reset();
  return waiting;
}

void Sender::peer_is_up(const std::string& server) {
  std::lock_guard lock(mutex_);
  auto& stmt = db_->prepare("UPDATE destinations SET retry_at = 0 WHERE server = ?1 AND retry_at > ?2");
  stmt.bind(1, server).bind(2, unix_millis()).run();
  if (db_->changes() > 0) {
    woken_ = true;
    cv_.notify_all();
  }
}

void Sender::loop() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (stop_) return;
      // Until woken, or until the earliest retry falls due.
      auto& next = db_->prepare("SELECT min(retry_at) FROM destinations WHERE retry_at > ?1");
      next.bind(1, unix_millis());
      int64_t wait_ms = kIdleRoundMs;
      if (next.step() && !next.column_is_null(0)) wait_ms = std::clamp<int64_t>(next.column_int64(0) - unix_millis(), 1, kIdleRoundMs);
      next.reset();
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return woken_ || stop_; });
      if (stop_) return;
      woken_ = false;
    }
    try {
      round();
    } catch (const std::exception& e) {
      spdlog::warn("federation sender: {}", e.what());
    }
  }
}

void Sender::round() {
  // Every server with a member in one of our rooms is a destination from its first join on.
  const auto remote = c_.store.remote_servers();
  const std::set<std::string> sharing(remote.begin(), remote.end());
  for (const auto& server : remote) {
    std::unique_lock lock(mutex_);
    auto& known = db_->prepare("SELECT 1 FROM destinations WHERE server = ?1");
    known.bind(1, server);
    const bool have = known.step();
    known.reset();
    if (have) continue;
    lock.unlock();
    const int64_t start = c_.store.first_join_stream(server);
    lock.lock();
    db_->prepare("INSERT OR IGNORE INTO destinations (server, position) VALUES (?1, ?2)").bind(1, server).bind(2, start).run();
  }
  // The stream's head before the scans: every event at or below it is committed (writers to
  // room.db take turns), so what a scan up to it does not find for a server, no later scan
  // will either.
  const int64_t head = c_.store.position().events;
  std::vector<std::pair<std::string, int64_t>> due;
  {
    std::lock_guard lock(mutex_);
    prune_outbox();  // also when nothing new is queued
    auto& stmt = db_->prepare("SELECT server, position FROM destinations WHERE retry_at <= ?1");
    stmt.bind(1, unix_millis());
    while (stmt.step()) due.emplace_back(stmt.column_text(0), stmt.column_int64(1));
    stmt.reset();
  }
  for (const auto& [server, position] : due) {
    if (!c_.policy.admits(server)) continue;
    bool edus_waiting = false;
    {
      std::lock_guard lock(mutex_);
      const auto it = edus_.find(server);
      edus_waiting = (it != edus_.end() && !it->second.empty()) || durable_waiting(server);
    }
    if (!edus_waiting && c_.store.events_for_server(server, position, 1).empty()) {
      // Nothing for it, no room shared, and none of its users ever had a membership here (it
      // only got to-device messages, delivered or given up after a week): it stops being a
      // destination; should one of its users join, it starts from that join. A server that
      // was in a room stays: the unban or invitation of its users still goes to it.
      if (!sharing.count(server) && !room_peers_.count(server)) {
        if (c_.store.server_has_memberships(server)) {
          room_peers_.insert(server);  // memberships are never forgotten: once is enough
          continue;
        }
        std::lock_guard lock(mutex_);
        const auto queued = edus_.find(server);
        if (!durable_waiting(server) && (queued == edus_.end() || queued->second.empty())) {
          db_->prepare("DELETE FROM destinations WHERE server = ?1").bind(1, server).run();
          edus_.erase(server);
        }
        continue;
      }
      // Nothing for it up to the head: the next scan starts there, not at its last
      // transaction (a server in one quiet room would rescan everything else every round).
      if (head > position) {
        std::lock_guard lock(mutex_);
        db_->prepare("UPDATE destinations SET position = ?2 WHERE server = ?1 AND position = ?3")
            .bind(1, server)
            .bind(2, head)
            .bind(3, position)
            .run();
      }
      continue;
    }
    std::lock_guard lock(mutex_);
    if (stop_ || !sending_.insert(server).second) continue;
    ++running_jobs_;
    run_([this, server = server] {
      try {
        send_to(server);
      } catch (const std::exception& e) {
        // Whatever went wrong, the destination waits before the next try.
        spdlog::warn("federation sender to {}: {}", server, e.what());
        std::lock_guard lock(mutex_);
        db_->prepare("UPDATE destinations SET backoff_ms = min(?2, max(?3, backoff_ms * 2)), retry_at = ?4 + min(?2, max(?3, backoff_ms * 2)), "
                     "last_error = ?5 WHERE server = ?1")
            .bind(1, server)
            .bind(2, settings_.max_backoff_ms)
            .bind(3, kFirstBackoffMs)
            .bind(4, unix_millis())
            .bind(5, std::string(e.what()))
            .run();
      }
      std::lock_guard done(mutex_);
      sending_.erase(server);
      --running_jobs_;
      woken_ = true;  // more may have come meanwhile
      cv_.notify_all();
    });
  }
}

void Sender::send_to(const std::string& server) {
  while (true) {
    int64_t position = 0, backoff = 0;
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      auto& stmt = db_->prepare("SELECT position, backoff_ms FROM destinations WHERE server = ?1");
      stmt.bind(1, server);
      if (!stmt.step()) {
        stmt.reset();
        return;
      }
      position = stmt.column_int64(0);
      backoff = stmt.column_int64(1);
      stmt.reset();
    }
    const auto events = c_.store.events_for_server(server, position, settings_.batch);
    json edus = json::array();
    int64_t last_durable = 0;  // the outbox rows this transaction carries: id <= last_durable
    std::size_t memory_edus = 0;
    {
      std::lock_guard lock(mutex_);
      std::size_t bytes = 0;
      auto& outbox = db_->prepare("SELECT id, edu FROM edu_outbox WHERE server = ?1 ORDER BY id LIMIT ?2");
      outbox.bind(1, server).bind(2, static_cast<int64_t>(kMaxEdusPerTxn));
      while (bytes < kMaxEduBytesPerTxn && outbox.step()) {
        last_durable = outbox.column_int64(0);
        auto text = outbox.column_text(1);
        bytes += text.size();
        edus.push_back(json::parse(text));
      }
      outbox.reset();
      auto& queue = edus_[server];
      while (!queue.empty() && edus.size() < kMaxEdusPerTxn && bytes < kMaxEduBytesPerTxn) {
        bytes += queue.front().dump().size();
        edus.push_back(std::move(queue.front()));
        queue.pop_front();
        ++memory_edus;
      }
    }
    if (events.empty() && edus.empty()) return;
    json pdus = json::array();
    for (const auto& e : events) pdus.push_back(pdu_for_wire(e.event));
    // The same range always makes the same transaction ID: a retry the other side already
    // took is answered from its record instead of processed again. EDUs alone get their own.
    std::string txn;
    if (!events.empty()) {
      txn = "c" + std::to_string(events.front().stream) + "-" + std::to_string(events.back().stream);
      if (!edus.empty()) txn += "e" + std::to_string(unix_millis());
    } else {
      std::lock_guard lock(mutex_);
      txn = "e" + std::to_string(unix_millis()) + "-" + std::to_string(++edu_txns_);
    }
    const json body = {{"origin", c_.server_name}, {"origin_server_ts", unix_millis()}, {"pdus", pdus}, {"edus", edus}};
    const auto answer = federation_request(c_, "PUT", server, "/_matrix/federation/v1/send/" + percent_encode(txn), &body);
    std::lock_guard lock(mutex_);
    if (!answer.ok() && memory_edus > 0) {
      // Back in front for the retry (typing that is stale by then is harmless); the durable
      // ones never left the outbox.
      auto& queue = edus_[server];
      for (auto it = edus.rbegin(); memory_edus > 0 && queue.size() < kMaxQueuedEdus; ++it, --memory_edus)
        queue.push_front(std::move(*it));
    }
    if (answer.ok() && last_durable)
      db_->prepare("DELETE FROM edu_outbox WHERE server = ?1 AND id <= ?2").bind(1, server).bind(2, last_durable).run();
    if (answer.ok()) {
      if (events.empty()) continue;
      if (answer.body.contains("pdus") && answer.body["pdus"].is_object())
        for (const auto& [id, result] : answer.body["pdus"].items())
          if (result.is_object() && result.contains("error"))
            spdlog::info("{} refused {}: {}", server, id, result["error"].is_string() ? result["error"].get<std::string>() : result["error"].dump());
      db_->prepare("UPDATE destinations SET position = ?2, backoff_ms = 0, retry_at = 0, last_error = '', "
                   "last_sent_ts = ?3, sent = sent + ?4 WHERE server = ?1")
          .bind(1, server)
          .bind(2, events.back().stream)
          .bind(3, unix_millis())
          .bind(4, static_cast<int64_t>(events.size()))
          .run();
      continue;
    }
    backoff = std::min(settings_.max_backoff_ms, backoff ? backoff * 2 : kFirstBackoffMs);
    const std::string why = answer.error.empty() ? "HTTP " + std::to_string(answer.status) : answer.error;
    spdlog::info("cannot send to {} ({}); trying again in {} ms", server, why, backoff);
    db_->prepare("UPDATE destinations SET backoff_ms = ?2, retry_at = ?3, last_error = ?4 WHERE server = ?1")
        .bind(1, server)
        .bind(2, backoff)
        .bind(3, unix_millis() + backoff)
        .bind(4, why)
        .run();
    return;
  }
}

std::vector<Sender::Destination> Sender::destinations() {
  std::vector<Destination> out;
  {
    std::lock_guard lock(mutex_);
    auto& stmt = db_->prepare(
        "SELECT server, position, retry_at, backoff_ms, last_sent_ts, sent, last_error FROM destinations ORDER BY server");
    while (stmt.step()) {
      Destination d;
      d.server = stmt.column_text(0);
      d.position = stmt.column_int64(1);
      d.retry_at = stmt.column_int64(2);
      d.backoff_ms = stmt.column_int64(3);
      d.last_sent_ts = stmt.column_int64(4);
      d.sent = stmt.column_int64(5);
      d.last_error = stmt.column_text(6);
      d.sending = sending_.count(d.server) > 0;
      out.push_back(std::move(d));
    }
    stmt.reset();
  }
  for (auto& d : out) {
    d.pending = static_cast<int64_t>(c_.store.events_for_server(d.server, d.position, 1000).size());
    std::lock_guard lock(mutex_);
    auto& stmt = db_->prepare("SELECT count(*) FROM edu_outbox WHERE server = ?1");
    stmt.bind(1, d.server);
    stmt.step();
    d.pending_edus = stmt.column_int64(0);
    stmt.reset();
  }
  return out;
}

}  // namespace coop::federate
