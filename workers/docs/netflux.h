// The Netflux relay and history keeper, as CryptPad's clients speak it (netflux-websocket,
// chainpad-netflux): frames are JSON arrays, [seq, CMD, ...] from clients and [seq, "ACK"],
// [seq, "JACK", chan], [seq, "ERROR", code, info] or [0, from, TYPE, ...] from the server.
// Transport-free: the worker feeds it frames and gives it a way to send to each user.
// The server sees ciphertext only: it stores and relays message strings it cannot read.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "workers/docs/sync_pool.h"

namespace coop::docs {

class ChannelStore;

struct NetfluxLimits {
  std::size_t max_channels_per_user = 64;
  std::size_t max_users_per_channel = 1000;
  // A channel's log stops growing here: anyone with a link may write, so the disk needs a
  // bound that does not depend on who they are.
  uint64_t max_channel_bytes = 256ULL << 20;
};

class Netflux {
 public:
  // send: queues a text frame to a user; false when that user is gone. A relayed frame is
  // one shared string for all its receivers.
  using Send = std::function<bool(std::shared_ptr<const std::string> frame)>;

  Netflux(ChannelStore& store, NetfluxLimits limits = {});
  // Flushes what is pending, then stops the commit thread.
  ~Netflux();

  // A new connection: returns its user id (32 hex characters) after sending IDENT.
  std::string connect(Send send);
  // One text frame from a user. Malformed frames get an error reply where there is a seq to
  // answer; the connection goes on. Returns false when the user should be dropped.
  bool frame(const std::string& user, const std::string& text);
  // The connection is gone: LEAVE to the members of its channels.
  void disconnect(const std::string& user);

  // An owner deleted the document (EDELETED) or it expired (EEXPIRED): its log and metadata
  // go, and its members hear why.
  void delete_channel(const std::string& channel, const char* reason = "EDELETED");
  // Called when a channel is created with an expiry (milliseconds since the epoch).
  std::function<void(const std::string& channel, int64_t expires_at_ms)> on_expiring;
  // Makes owner the channel's owner: only for a channel that exists (its metadata) and has no
  // message and no owner yet. coop::Error no_document (404), owned or not_new (409).
  void claim(const std::string& channel, const std::string& owner);

  // Waits until every message received so far is stored, relayed and acknowledged (tests).
  void flush();

  // The history keeper's id (16 hex characters; clients find it by that length).
  const std::string& history_keeper() const { return hk_id_; }
  std::size_t users() const;
  std::size_t channels() const;
  uint64_t messages_relayed() const { return relayed_; }

 private:
  struct User {
    std::string id;
    Send send;
    std::set<std::string> channels;
  };
  struct Channel {
    std::vector<std::string> members;  // in join order
  };

  void reply(User& user, const nlohmann::json& frame);
  void join(User& user, int64_t seq, const nlohmann::json& frame);
  void leave(User& user, int64_t seq, const nlohmann::json& frame);
  void message(User& user, int64_t seq, const nlohmann::json& frame);
  void channel_message(User& user, int64_t seq, const std::string& channel, const std::string& content);
  void history_command(User& user, int64_t seq, const std::string& payload);
  void get_history(User& user, int64_t seq, const nlohmann::json& request);
  void remove_from(const std::string& user, const std::string& channel, bool tell_others);
  void send_to(const std::string& user, const nlohmann::json& frame);
  void send_text(const std::string& user, std::shared_ptr<const std::string> text);
  void commit_loop();

  // A stored message waiting for its group's fdatasync before it is relayed and ACKed.
  struct Pending {
    std::string channel;
    std::string sender;
    int64_t seq;
    std::shared_ptr<const std::string> relayed;  // the frame for the other members
  };

  ChannelStore& store_;
  NetfluxLimits limits_;
  std::string hk_id_;
  mutable std::mutex mutex_;  // users_ and channels_ (membership)
  std::map<std::string, std::shared_ptr<User>> users_;
  std::map<std::string, std::shared_ptr<Channel>> channels_;
  // The store, and the order of stored messages: a message is appended and relayed under it,
  // so every member sees a channel's messages in the order of its log. Taken before mutex_.
  std::mutex store_mutex_;
  std::atomic<uint64_t> relayed_{0};
  // Group commit: messages appended while a sync runs share the next one.
  std::vector<Pending> pending_;  // under store_mutex_
  std::condition_variable pending_ready_;
  bool stopping_ = false;
  bool committing_ = false;  // a batch is between its swap and its last ACK
  uint64_t enqueued_ = 0;    // messages queued so far
  uint64_t committed_ = 0;   // of those, how many are relayed and ACKed
  SyncPool syncs_{7};
  std::thread committer_;
};

// Milliseconds since the epoch, as the stored messages carry it.
int64_t now_ms();

}  // namespace coop::docs
