// Channel logs for coop-docs: one append-only file per channel (one JSON line per message,
// as the history keeper replays them) and its metadata beside it. Appends are written at
// once and made durable in groups (one fdatasync for every line written meanwhile); only
// durable lines are read back, and a message is relayed only once its line is durable.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::docs {

// What the store knows of one channel's log without reading it again.
struct ChannelIndex {
  std::vector<uint64_t> offsets;             // byte offset of each line
  std::vector<std::size_t> checkpoints;      // line numbers (0-based) of checkpoint messages
  std::map<std::string, std::size_t> hashes;  // first 64 characters of a message -> its line
  std::string last_checkpoint_id;            // the id in "cp|ID|", to drop exact repeats
  uint64_t bytes = 0;
  std::size_t durable = 0;                   // lines known to be on disk
};

class ChannelStore {
 public:
  explicit ChannelStore(std::filesystem::path dir);
  ~ChannelStore();

  // Channel ids are 32 lowercase hex characters (ephemeral ones, 34, are never stored).
  static bool valid_id(const std::string& channel);

  // The channel's metadata, or null when it has none; shared with the cache, so a lookup per
  // message copies nothing.
  std::shared_ptr<const nlohmann::json> metadata(const std::string& channel);
  // Writes the metadata durably (temp file, fsync, rename, directory fsync).
  void set_metadata(const std::string& channel, const nlohmann::json& metadata);

  // Writes one line (no newline inside); durable after the next sync. Returns its number.
  std::size_t append(const std::string& channel, const std::string& line, const std::string& content);

  // Group commit, in three steps so the fdatasync runs without the caller's lock:
  // sync_points() (under the lock) gives a duplicate descriptor and the line count of each
  // channel; fdatasync them; then mark_durable() (under the lock again).
  struct SyncPoint {
    std::string channel;
    int fd = -1;  // owned by the caller: close it
    std::size_t lines = 0;
    uint64_t generation = 0;  // which opening of the file: a removed and recreated log is another
  };
  // Channels that have no open log get no point (the caller fails their messages). Throws
  // coop::Error when a descriptor cannot be duplicated; none stays open then.
  std::vector<SyncPoint> sync_points(const std::vector<std::string>& channels);
  void mark_durable(const SyncPoint& point);
  // The sync failed: what was written after the durable lines is cut off again.
  void discard_undurable(const std::string& channel);
  // The index, built from the file on first use (which creates an empty log).
  const ChannelIndex& index(const std::string& channel);
  // Whether the channel has a log or metadata on disk; a reader checks this first, so that
  // asking for a channel that does not exist creates nothing.
  bool exists(const std::string& channel) const;
  // A deleted channel leaves a tombstone: it cannot be written or created again.
  bool deleted(const std::string& channel) const;
  // Durable lines [from, end) of the log.
  std::vector<std::string> read_lines(const std::string& channel, std::size_t from);
  // Removes the log and its metadata (an owner deleting the channel).
  void remove(const std::string& channel);
  // Forgets open files and indexes of channels nobody is in.
  void close(const std::string& channel);

 private:
  struct Open;
  Open& open(const std::string& channel);
  std::filesystem::path log_path(const std::string& channel) const;
  std::filesystem::path meta_path(const std::string& channel) const;

  std::filesystem::path dir_;
  std::map<std::string, std::unique_ptr<Open>> open_;
  // Metadata read once per channel (every message of a signed channel needs its key).
  std::map<std::string, std::shared_ptr<const nlohmann::json>> metadata_cache_;
};

// "cp|ID|..." -> ID (possibly empty); nullopt when content is not a checkpoint.
std::optional<std::string> checkpoint_id(const std::string& content);

}  // namespace coop::docs
