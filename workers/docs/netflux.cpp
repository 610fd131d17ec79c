// Netflux routing and the history keeper. Frame shapes and orderings follow what
// netflux-websocket 1.3 and chainpad-netflux 1.3 expect (see netflux.h); comments name the
// client behaviour each rule serves.
#include "workers/docs/netflux.h"

#include <sodium.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "workers/docs/channel_store.h"

namespace coop::docs {

namespace {

using nlohmann::json;

std::optional<std::string> base64_decode(const std::string& text) {
  std::vector<unsigned char> out(text.size());
  std::size_t length = 0;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &length, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    return std::nullopt;
  return std::string(reinterpret_cast<const char*>(out.data()), length);
}

// Live messages of a channel with a validateKey are Ed25519-signed (crypto_sign combined
// mode over the "nonce|box" text), base64 as a whole, after an optional "cp|ID|" prefix.
bool signature_valid(const std::string& content, const std::string& validate_key) {
  std::string body = content;
  if (auto id = checkpoint_id(content)) {
    const auto bar = content.find('|', 3);
    body = bar == std::string::npos ? std::string() : content.substr(bar + 1);
  }
  const auto key = base64_decode(validate_key);
  const auto signed_message = base64_decode(body);
  if (!key || key->size() != crypto_sign_PUBLICKEYBYTES || !signed_message || signed_message->size() < crypto_sign_BYTES)
    return false;
  std::vector<unsigned char> opened(signed_message->size());
  unsigned long long opened_length = 0;
  return crypto_sign_open(opened.data(), &opened_length, reinterpret_cast<const unsigned char*>(signed_message->data()),
                          signed_message->size(), reinterpret_cast<const unsigned char*>(key->data())) == 0;
}

// JSON nested deeper than this is refused before it is parsed: nlohmann copies and prints
// nested values recursively, and a frame of brackets must not be able to exhaust the stack.
constexpr int kMaxDepth = 32;

bool too_deep(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Netflux::Netflux(ChannelStore& store, NetfluxLimits limits) : store_(store), limits_(limits) {
  if (sodium_init() < 0) throw Error(errc::kCryptoFailed, "libsodium did not start", 500);
  hk_id_ = random_hex(8);
  committer_ = std::thread([this] { commit_loop(); });
}

Netflux::~Netflux() {
  {
    std::lock_guard lock(store_mutex_);
    stopping_ = true;
  }
  pending_ready_.notify_all();
  committer_.join();
}

// One fdatasync per channel for every message written since the last one, then the relays
// and ACKs of those messages, in log order. Nothing is relayed or acknowledged before its
// line is on disk.
void Netflux::commit_loop() {
  for (;;) {
    std::vector<Pending> batch;
    std::vector<ChannelStore::SyncPoint> points;
    std::set<std::string> unsynced;
    uint64_t batch_end = 0;
    {
      std::unique_lock lock(store_mutex_);
      pending_ready_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      if (pending_.empty() && stopping_) return;
      batch.swap(pending_);
      batch_end = enqueued_;
      committing_ = true;
      std::vector<std::string> channels;
      for (const auto& p : batch)
        if (std::find(channels.begin(), channels.end(), p.channel) == channels.end() && p.channel.size() == 32)
          channels.push_back(p.channel);
      try {
        points = store_.sync_points(channels);
      } catch (const Error& e) {
        spdlog::error("docs: {}", e.what());
      }
      // A stored channel without a sync point (removed, or no descriptor) is not durable.
      for (const auto& channel : channels) {
        const bool has_point = std::any_of(points.begin(), points.end(), [&](const auto& p) { return p.channel == channel; });
        if (!has_point) unsynced.insert(channel);
      }
    }
    // The channels' syncs run side by side (at most 8 at a time).
    std::set<std::string> failed = unsynced;
    std::vector<int> fds;
    for (const auto& point : points) fds.push_back(point.fd);
    const auto errors = syncs_.sync_all(fds);
    for (std::size_t i = 0; i < points.size(); ++i) {
      if (errors[i] != 0) {
        spdlog::error("docs: cannot sync channel {}: {}", points[i].channel, std::strerror(errors[i]));
        failed.insert(points[i].channel);
      }
      ::close(points[i].fd);
    }
    std::vector<Pending> refused;
    {
      std::lock_guard lock(store_mutex_);
      for (const auto& point : points)
        if (!failed.count(point.channel)) store_.mark_durable(point);
      for (const auto& channel : failed) store_.discard_undurable(channel);
      // Lines written for the next batch of a failed channel were cut off with the rest.
      if (!failed.empty()) {
        auto keep = std::stable_partition(pending_.begin(), pending_.end(),
                                          [&](const Pending& p) { return !failed.count(p.channel); });
        std::move(keep, pending_.end(), std::back_inserter(refused));
        pending_.erase(keep, pending_.end());
      }
      // Channels nobody is in any more can close their files now that nothing waits.
      std::lock_guard members(mutex_);
      for (const auto& point : points)
        if (!channels_.count(point.channel)) store_.close(point.channel);
    }
    for (const auto& p : refused) send_to(p.sender, json::array({p.seq, "ERROR", "EIO", "the message could not be stored"}));
    // Each channel's members are looked up once for the whole batch, under one lock.
    std::map<std::string, std::vector<std::shared_ptr<User>>> audience;
    {
      std::lock_guard lock(mutex_);
      for (const auto& p : batch) {
        auto [slot, added] = audience.try_emplace(p.channel);
        if (!added) continue;
        if (auto it = channels_.find(p.channel); it != channels_.end())
          for (const auto& member : it->second->members)
            if (auto user = users_.find(member); user != users_.end()) slot->second.push_back(user->second);
      }
    }
    for (const auto& p : batch) {
      if (failed.count(p.channel)) {
        send_to(p.sender, json::array({p.seq, "ERROR", "EIO", "the message could not be stored"}));
        continue;
      }
      for (const auto& user : audience[p.channel])
        if (user->id != p.sender) {
          user->send(p.relayed);
          ++relayed_;
        }
      send_text(p.sender, std::make_shared<const std::string>("[" + std::to_string(p.seq) + ",\"ACK\"]"));
    }
    std::lock_guard lock(store_mutex_);
    committing_ = false;
    committed_ = batch_end;
  }
}

void Netflux::delete_channel(const std::string& channel, const char* reason) {
  flush();
  std::vector<std::string> members;
  {
    std::lock_guard store_lock(store_mutex_);
    store_.remove(channel);
    // The channel is gone for its members too: their next message gets enoent, and a rejoin
    // finds the tombstone.
    std::lock_guard lock(mutex_);
    if (auto it = channels_.find(channel); it != channels_.end()) {
      members = it->second->members;
      channels_.erase(it);
    }
    for (const auto& member : members)
      if (auto u = users_.find(member); u != users_.end()) u->second->channels.erase(channel);
  }
  // chainpad-netflux stops the session on EDELETED.
  const std::string payload = json{{"error", reason}, {"channel", channel}}.dump();
  for (const auto& member : members) send_to(member, json::array({0, hk_id_, "MSG", member, payload}));
}

void Netflux::claim(const std::string& channel, const std::string& owner) {
  std::lock_guard store_lock(store_mutex_);
  auto metadata = store_.metadata(channel);
  if (!metadata) throw Error(errc::kNoDocument, "create the document first (its first reader sends its keys)", 404);
  const json owners = metadata->value("owners", json::array());
  if (owners.is_array() && !owners.empty()) {
    for (const auto& o : owners)
      if (o == owner) return;  // already this member's
    throw Error(errc::kOwned, "that document has another owner", 409);
  }
  // Only a document nobody has written yet can be claimed: whoever holds an old link must not
  // be able to take (and delete) someone else's document.
  if (store_.exists(channel) && !store_.index(channel).offsets.empty())
    throw Error(errc::kNotNew, "only a new, empty document can be owned", 409);
  json updated = *metadata;
  updated["owners"] = json::array({owner});
  store_.set_metadata(channel, updated);
}

void Netflux::flush() {
  uint64_t target = 0;
  {
    std::lock_guard lock(store_mutex_);
    target = enqueued_;
  }
  // Waits for what was queued before the call, not for the queue to run dry.
  for (;;) {
    {
      std::lock_guard lock(store_mutex_);
      if (committed_ >= target) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::size_t Netflux::users() const {
  std::lock_guard lock(mutex_);
  return users_.size();
}

std::size_t Netflux::channels() const {
  std::lock_guard lock(mutex_);
  return channels_.size();
}

std::string Netflux::connect(Send send) {
  auto user = std::make_shared<User>();
  {
    std::lock_guard lock(mutex_);
    do user->id = random_hex(16);
    while (users_.count(user->id));
    user->send = std::move(send);
    users_[user->id] = user;
  }
  // netflux-websocket resolves connect() on IDENT, which must come first.
  user->send(std::make_shared<const std::string>(json::array({0, "", "IDENT", user->id}).dump()));
  return user->id;
}

void Netflux::reply(User& user, const json& frame) { user.send(std::make_shared<const std::string>(frame.dump())); }

void Netflux::send_to(const std::string& id, const json& frame) {
  send_text(id, std::make_shared<const std::string>(frame.dump()));
}

void Netflux::send_text(const std::string& id, std::shared_ptr<const std::string> text) {
  std::shared_ptr<User> user;
  {
    std::lock_guard lock(mutex_);
    auto it = users_.find(id);
    if (it == users_.end()) return;
    user = it->second;
  }
  user->send(std::move(text));
}

bool Netflux::frame(const std::string& id, const std::string& text) {
  std::shared_ptr<User> user;
  {
    std::lock_guard lock(mutex_);
    auto it = users_.find(id);
    if (it == users_.end()) return false;
    user = it->second;
  }
  if (too_deep(text)) return false;
  json frame;
  try {
    frame = json::parse(text);
  } catch (const json::exception&) {
    return false;  // chainpad-server drops a user that sends something that is not JSON
  }
  if (!frame.is_array() || frame.size() < 2 || !frame[0].is_number_integer() || !frame[1].is_string()) {
    if (frame.is_array() && !frame.empty() && frame[0].is_number_integer() && frame[0].get<int64_t>() > 0)
      reply(*user, json::array({frame[0], "ERROR", "EINVAL", "malformed command"}));
    return true;
  }
  const int64_t seq = frame[0].get<int64_t>();
  const auto& command = frame[1].get_ref<const std::string&>();
  try {
    if (command == "JOIN") join(*user, seq, frame);
    else if (command == "LEAVE") leave(*user, seq, frame);
    else if (command == "MSG") message(*user, seq, frame);
    else if (command == "PING") reply(*user, json::array({seq, "ACK"}));
    else if (command == "PONG" || command.empty()) { /* a keepalive answer: activity only */ }
    else if (seq > 0) reply(*user, json::array({seq, "ERROR", "EINVAL", "unknown command " + command}));
  } catch (const Error& e) {
    spdlog::warn("docs: {} from {}: {}", command, id, e.what());
    if (seq > 0) reply(*user, json::array({seq, "ERROR", e.status() >= 500 ? "EIO" : "EINVAL", e.what()}));
  }
  return true;
}

// [seq, "JOIN", chan]: JACK, then the history keeper's JOIN, the members' JOINs and the
// joiner's own JOIN to everyone. chainpad-netflux looks for the history keeper when its own
// JOIN arrives, so the order matters.
void Netflux::join(User& user, int64_t seq, const json& frame) {
  std::string channel = frame.size() > 2 && frame[2].is_string() ? frame[2].get<std::string>() : std::string();
  if (channel.empty()) channel = random_hex(16);
  if (!ChannelStore::valid_id(channel) && !(channel.size() == 34)) {
    reply(user, json::array({seq, "ERROR", "EINVAL", channel}));
    return;
  }
  std::vector<std::string> members;
  bool already = false;
  {
    std::lock_guard lock(mutex_);
    auto& slot = channels_[channel];
    if (!slot) slot = std::make_shared<Channel>();
    already = std::find(slot->members.begin(), slot->members.end(), user.id) != slot->members.end();
    if (!already) {
      if (user.channels.size() >= limits_.max_channels_per_user || slot->members.size() >= limits_.max_users_per_channel) {
        if (slot->members.empty()) channels_.erase(channel);
        reply(user, json::array({seq, "ERROR", "ELIMIT", channel}));
        return;
      }
      slot->members.push_back(user.id);
      user.channels.insert(channel);
    }
    members = slot->members;
  }
  if (already) {
    reply(user, json::array({seq, "ERROR", "EJOINED", channel}));
  } else {
    reply(user, json::array({seq, "JACK", channel}));
  }
  reply(user, json::array({0, hk_id_, "JOIN", channel}));
  for (const auto& member : members)
    if (member != user.id) reply(user, json::array({0, member, "JOIN", channel}));
  if (already) {
    reply(user, json::array({0, user.id, "JOIN", channel}));
    return;
  }
  const json joined = json::array({0, user.id, "JOIN", channel});
  for (const auto& member : members) send_to(member, joined);
}

void Netflux::remove_from(const std::string& user, const std::string& channel, bool tell_others) {
  std::vector<std::string> members;
  bool empty = false;
  {
    std::lock_guard lock(mutex_);
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    auto& list = it->second->members;
    list.erase(std::remove(list.begin(), list.end(), user), list.end());
    members = list;
    if (list.empty()) {
      channels_.erase(it);
      empty = true;
    }
    if (auto u = users_.find(user); u != users_.end()) u->second->channels.erase(channel);
  }
  if (empty && ChannelStore::valid_id(channel)) {
    std::lock_guard lock(store_mutex_);
    store_.close(channel);
  }
  if (!tell_others) return;
  const json left = json::array({0, user, "LEAVE", channel});
  for (const auto& member : members) send_to(member, left);
}

void Netflux::leave(User& user, int64_t seq, const json& frame) {
  if (frame.size() < 3 || !frame[2].is_string()) {
    reply(user, json::array({seq, "ERROR", "EINVAL", "undefined"}));
    return;
  }
  const std::string channel = frame[2].get<std::string>();
  {
    std::lock_guard lock(mutex_);
    auto it = channels_.find(channel);
    if (it == channels_.end()) {
      reply(user, json::array({seq, "ERROR", "ENOENT", channel}));
      return;
    }
    if (std::find(it->second->members.begin(), it->second->members.end(), user.id) == it->second->members.end()) {
      reply(user, json::array({seq, "ERROR", "NOT_IN_CHAN", channel}));
      return;
    }
  }
  reply(user, json::array({seq, "ACK"}));
  reply(user, json::array({0, user.id, "LEAVE", channel}));
  remove_from(user.id, channel, true);
}

void Netflux::disconnect(const std::string& id) {
  std::shared_ptr<User> user;
  {
    std::lock_guard lock(mutex_);
    auto it = users_.find(id);
    if (it == users_.end()) return;
    user = it->second;
    users_.erase(it);
  }
  for (const auto& channel : std::set<std::string>(user->channels)) remove_from(id, channel, true);
}

// [seq, "MSG", target, content]: to a channel (stored, then relayed), to the history keeper
// (a command), or to one user.
void Netflux::message(User& user, int64_t seq, const json& frame) {
  if (frame.size() < 4 || !frame[2].is_string()) {
    reply(user, json::array({seq, "ERROR", "EINVAL", "MSG needs a target and a message"}));
    return;
  }
  const std::string target = frame[2].get<std::string>();
  if (target == hk_id_) {
    if (!frame[3].is_string()) {
      reply(user, json::array({seq, "ERROR", "EINVAL", hk_id_}));
      return;
    }
    history_command(user, seq, frame[3].get<std::string>());
    return;
  }
  bool is_channel = false, is_user = false, member = false;
  {
    std::lock_guard lock(mutex_);
    if (auto it = channels_.find(target); it != channels_.end()) {
      is_channel = true;
      member = std::find(it->second->members.begin(), it->second->members.end(), user.id) != it->second->members.end();
    }
    is_user = users_.count(target) > 0;
  }
  if (is_channel) {
    if (!member) {
      reply(user, json::array({seq, "ERROR", "NOT_IN_CHAN", target}));
      return;
    }
    if (!frame[3].is_string()) {
      reply(user, json::array({seq, "ERROR", "EINVAL", "channel messages are strings"}));
      return;
    }
    channel_message(user, seq, target, frame[3].get<std::string>());
    return;
  }
  if (is_user) {
    reply(user, json::array({seq, "ACK"}));
    send_to(target, json::array({0, user.id, "MSG", target, frame[3]}));
    return;
  }
  // netflux-websocket 1.3 / chainpad-netflux accept "enoent": they rejoin and resend.
  reply(user, json::array({seq, "ERROR", "enoent", target}));
}

void Netflux::channel_message(User& user, int64_t seq, const std::string& channel, const std::string& content) {
  const bool ephemeral = channel.size() == 34;
  std::lock_guard store_lock(store_mutex_);
  if (!ephemeral && store_.deleted(channel)) {
    reply(user, json::array({seq, "ERROR", "EDELETED", channel}));
    return;
  }
  if (!ephemeral) {
    const auto metadata = store_.metadata(channel);
    if (metadata && metadata->contains("expire") && (*metadata)["expire"].is_number() &&
        (*metadata)["expire"].get<int64_t>() < now_ms()) {
      reply(user, json::array({seq, "ERROR", "EEXPIRED", channel}));
      return;
    }
    if (metadata && metadata->contains("validateKey") && (*metadata)["validateKey"].is_string() &&
        !signature_valid(content, (*metadata)["validateKey"].get<std::string>())) {
      // chainpad-netflux hands a bare ERROR up to ChainPad, which resends later.
      reply(user, json::array({seq, "ERROR"}));
      return;
    }
  }
  bool store = !ephemeral;
  if (store) {
    // Two clients wrote the same checkpoint: one copy in the log is enough (it is still
    // relayed, as CryptPad's history keeper does).
    const auto& index = store_.index(channel);
    if (auto id = checkpoint_id(content); id && !id->empty() && *id == index.last_checkpoint_id) store = false;
  }
  auto relayed = std::make_shared<const std::string>(json::array({0, user.id, "MSG", channel, content, now_ms()}).dump());
  if (store && store_.exists(channel) && store_.index(channel).bytes + relayed->size() + 1 > limits_.max_channel_bytes) {
    reply(user, json::array({seq, "ERROR", "E_CHANNEL_FULL", channel}));
    return;
  }
  // Written now; relayed and ACKed by the commit thread once its group is on disk. Ephemeral
  // channels and repeated checkpoints go through the same queue, so the order stays the log's.
  if (store) store_.append(channel, *relayed, content);
  pending_.push_back({channel, user.id, seq, std::move(relayed)});
  ++enqueued_;
  pending_ready_.notify_one();
}

void Netflux::history_command(User& user, int64_t seq, const std::string& payload) {
  json request;
  if (too_deep(payload)) {
    reply(user, json::array({seq, "ERROR", "EINVAL", hk_id_}));
    return;
  }
  try {
    request = json::parse(payload);
  } catch (const json::exception&) {
    reply(user, json::array({seq, "ERROR", "EINVAL", hk_id_}));
    return;
  }
  if (!request.is_array() || request.size() < 2 || !request[0].is_string() || !request[1].is_string()) {
    reply(user, json::array({seq, "ERROR", "EINVAL", hk_id_}));
    return;
  }
  const auto& command = request[0].get_ref<const std::string&>();
  if (command == "GET_HISTORY") return get_history(user, seq, request);
  reply(user, json::array({seq, "ERROR", "EINVAL", hk_id_}));
}

// GET_HISTORY: ACK, the channel's metadata, its messages from the right place (after a known
// hash, everything, or the relevant checkpoint), then {"state":1} so the client is ready.
void Netflux::get_history(User& user, int64_t seq, const json& request) {
  const std::string channel = request[1].get<std::string>();
  const json config = request.size() > 2 && request[2].is_object() ? request[2] : json::object();
  const json txid = config.contains("txid") ? config["txid"] : json();
  reply(user, json::array({seq, "ACK"}));
  auto to_user = [&](const json& payload) {
    reply(user, json::array({0, hk_id_, "MSG", user.id, payload.dump()}));
  };
  if (!ChannelStore::valid_id(channel)) {
    to_user({{"state", 1}, {"channel", channel}, {"txid", txid}});
    return;
  }
  std::lock_guard store_lock(store_mutex_);
  if (store_.deleted(channel)) {
    to_user({{"error", "EDELETED"}, {"channel", channel}, {"txid", txid}});
    return;
  }
  auto metadata = store_.metadata(channel);
  if (metadata) {
    if (metadata->contains("expire") && (*metadata)["expire"].is_number() &&
        (*metadata)["expire"].get<int64_t>() < now_ms()) {
      to_user({{"error", "EEXPIRED"}, {"channel", channel}, {"txid", txid}});
      // An expired document is gone for good: its log and metadata are removed.
      store_.remove(channel);
      return;
    }
    to_user(*metadata);
  }
  // A channel nobody ever wrote is not created by reading it.
  static const ChannelIndex kNothing;
  const auto& index = store_.exists(channel) ? store_.index(channel) : kNothing;
  std::size_t start = 0;
  if (config.contains("lastKnownHash") && config["lastKnownHash"].is_string()) {
    auto it = index.hashes.find(config["lastKnownHash"].get<std::string>());
    if (it == index.hashes.end() || it->second >= index.durable) {
      to_user({{"error", "EUNKNOWN"}, {"channel", channel}, {"txid", txid}});
      return;
    }
    start = it->second;
  } else if (!(config.contains("lastKnownHash") && config["lastKnownHash"] == -1)) {
    // From the checkpoint before the last (or earlier ones in the last 100 lines), so clients
    // that wrote checkpoints at nearly the same time still share a root. Durable lines only.
    std::vector<std::size_t> durable;
    for (const auto line : index.checkpoints)
      if (line < index.durable) durable.push_back(line);
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < durable.size(); ++i)
      if (i + 2 >= durable.size() || durable[i] + 100 > index.durable) kept.push_back(durable[i]);
    if (kept.size() >= 2) start = kept.front();
  }
  std::size_t sent = 0;
  for (const auto& line : store_.exists(channel) ? store_.read_lines(channel, start) : std::vector<std::string>{}) {
    try {
      json message = json::parse(line);
      if (!txid.is_null()) message[0] = txid;
      to_user(message);
      ++sent;
    } catch (const json::exception&) {
    }
  }
  if (sent == 0 && !metadata) {
    bool member = false;
    {
      std::lock_guard lock(mutex_);
      member = user.channels.count(channel) > 0;
    }
    // The first member to ask creates the channel with the metadata it brings (a reader that
    // brings none, like `coop docs pull`, creates nothing).
    const json given = config.contains("metadata") && config["metadata"].is_object() ? config["metadata"] : json::object();
    if (member && !given.empty()) {
      json fresh = json::object();
      if (given.contains("validateKey") && given["validateKey"].is_string()) {
        const auto key = base64_decode(given["validateKey"].get<std::string>());
        if (!key || key->size() != crypto_sign_PUBLICKEYBYTES) {
          to_user({{"error", "EINVAL"}, {"channel", channel}, {"txid", txid}});
          return;
        }
        fresh["validateKey"] = given["validateKey"];
      }
      if (given.contains("owners") && given["owners"].is_array()) fresh["owners"] = given["owners"];
      // expire: seconds from now, at most ten years; anything else is ignored.
      if (given.contains("expire") && given["expire"].is_number()) {
        const double seconds = given["expire"].get<double>();
        if (seconds > 0 && seconds <= 10.0 * 365 * 86400) fresh["expire"] = static_cast<int64_t>(seconds * 1000) + now_ms();
      }
      fresh["channel"] = channel;
      fresh["created"] = now_ms();
      store_.set_metadata(channel, fresh);
      if (fresh.contains("expire") && on_expiring) on_expiring(channel, fresh["expire"].get<int64_t>());
      to_user(fresh);
    }
  }
  to_user({{"state", 1}, {"channel", channel}, {"txid", txid}});
}

}  // namespace coop::docs
