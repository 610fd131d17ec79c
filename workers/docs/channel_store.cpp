// Channel logs on disk.
#include "workers/docs/channel_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#include "common/text.h"

namespace fs = std::filesystem;

namespace coop::docs {

std::atomic<uint64_t> next_generation{1};

struct ChannelStore::Open {
  int fd = -1;
  bool indexed = false;
  uint64_t generation = next_generation++;
  ChannelIndex index;
  ~Open() {
    if (fd >= 0) ::close(fd);
  }
};

std::optional<std::string> checkpoint_id(const std::string& content) {
  if (content.rfind("cp|", 0) != 0) return std::nullopt;
  // "cp|" then an optional base64 id and "|" (chainpad-netflux: the first 8 bytes of the
  // checkpoint's SHA-512, 12 base64 characters).
  const auto bar = content.find('|', 3);
  if (bar == std::string::npos || bar - 3 > 20) return std::string();
  for (std::size_t i = 3; i < bar; ++i) {
    const char c = content[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) return std::string();
  }
  return content.substr(3, bar - 3);
}

ChannelStore::ChannelStore(fs::path dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }

ChannelStore::~ChannelStore() = default;

bool ChannelStore::valid_id(const std::string& channel) { return is_lower_hex(channel, 32); }

bool ChannelStore::exists(const std::string& channel) const {
  std::error_code ec;
  return fs::exists(log_path(channel), ec) || fs::exists(meta_path(channel), ec);
}

bool ChannelStore::deleted(const std::string& channel) const {
  std::error_code ec;
  return fs::exists(dir_ / channel.substr(0, 2) / (channel + ".deleted"), ec);
}

fs::path ChannelStore::log_path(const std::string& channel) const {
  return dir_ / channel.substr(0, 2) / (channel + ".ndjson");
}

fs::path ChannelStore::meta_path(const std::string& channel) const {
  return dir_ / channel.substr(0, 2) / (channel + ".metadata.json");
}

std::shared_ptr<const nlohmann::json> ChannelStore::metadata(const std::string& channel) {
  if (auto it = metadata_cache_.find(channel); it != metadata_cache_.end()) return it->second;
  std::shared_ptr<const nlohmann::json> loaded;
  std::ifstream in(meta_path(channel), std::ios::binary);
  if (in) {
    try {
      loaded = std::make_shared<const nlohmann::json>(nlohmann::json::parse(in));
    } catch (const nlohmann::json::exception&) {
      throw Error(errc::kDamagedChannel, "the metadata of channel " + channel + " is damaged", 500);
    }
  }
  if (metadata_cache_.size() > 4096) metadata_cache_.clear();
  metadata_cache_[channel] = loaded;
  return loaded;
}

void ChannelStore::set_metadata(const std::string& channel, const nlohmann::json& metadata) {
  if (deleted(channel)) throw Error(errc::kDeleted, "channel " + channel + " was deleted", 410);
  fs::create_directories(meta_path(channel).parent_path());
  write_file_durably(meta_path(channel), metadata.dump(), 0600);
  metadata_cache_[channel] = std::make_shared<const nlohmann::json>(metadata);
}

ChannelStore::Open& ChannelStore::open(const std::string& channel) {
  auto& slot = open_[channel];
  if (!slot) slot = std::make_unique<Open>();
  Open& o = *slot;
  if (o.fd < 0) {
    if (deleted(channel)) throw Error(errc::kDeleted, "channel " + channel + " was deleted", 410);
    const auto shard = log_path(channel).parent_path();
    std::error_code ec;
    const bool new_shard = !fs::exists(shard, ec);
    fs::create_directories(shard);
    const bool new_file = !fs::exists(log_path(channel), ec);
    o.fd = ::open(log_path(channel).c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (o.fd < 0) throw Error(errc::kStoreFailed, "cannot open the log of channel " + channel, 500);
    // A new log's name must survive a crash as surely as its lines.
    if (new_shard) fsync_directory(dir_);
    if (new_file) fsync_directory(shard);
  }
  if (!o.indexed) {
    o.index = ChannelIndex{};
    // One pass over the file: line offsets, checkpoints, message hashes. A torn last line
    // (a crash mid-write, never acknowledged) is cut off.
    std::ifstream in(log_path(channel), std::ios::binary);
    std::string line;
    uint64_t offset = 0;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // no newline: torn
      try {
        const auto message = nlohmann::json::parse(line);
        if (message.is_array() && message.size() >= 5 && message[4].is_string()) {
          const auto& content = message[4].get_ref<const std::string&>();
          const std::size_t number = o.index.offsets.size();
          o.index.offsets.push_back(offset);
          o.index.hashes[content.substr(0, 64)] = number;
          if (auto id = checkpoint_id(content)) {
            o.index.checkpoints.push_back(number);
            o.index.last_checkpoint_id = *id;
          }
        }
      } catch (const nlohmann::json::exception&) {
        // Not a message line: skipped on replay too.
      }
      offset += line.size() + 1;
    }
    if (::ftruncate(o.fd, static_cast<off_t>(offset)) != 0)
      throw Error(errc::kStoreFailed, "cannot repair the log of channel " + channel, 500);
    o.index.bytes = offset;
    // Lines a crashed process wrote may be in the page cache only: sync before serving them.
    if (::fdatasync(o.fd) != 0) throw Error(errc::kStoreFailed, "cannot sync the log of channel " + channel, 500);
    o.index.durable = o.index.offsets.size();
    o.indexed = true;
  }
  return o;
}

const ChannelIndex& ChannelStore::index(const std::string& channel) { return open(channel).index; }

std::size_t ChannelStore::append(const std::string& channel, const std::string& line, const std::string& content) {
  Open& o = open(channel);
  const std::string record = line + "\n";
  std::size_t written = 0;
  while (written < record.size()) {
    const ssize_t n = ::write(o.fd, record.data() + written, record.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Cut back whatever part went out, so the log never holds a torn line.
      if (::ftruncate(o.fd, static_cast<off_t>(o.index.bytes)) != 0) o.indexed = false;
      throw Error(errc::kStoreFailed, "cannot append to channel " + channel + ": " + std::strerror(errno), 500);
    }
    written += static_cast<std::size_t>(n);
  }
  const std::size_t number = o.index.offsets.size();
  o.index.offsets.push_back(o.index.bytes);
  o.index.bytes += record.size();
  o.index.hashes[content.substr(0, 64)] = number;
  if (auto id = checkpoint_id(content)) {
    o.index.checkpoints.push_back(number);
    o.index.last_checkpoint_id = *id;
  }
  return number;
}

std::vector<std::string> ChannelStore::read_lines(const std::string& channel, std::size_t from) {
  Open& o = open(channel);
  std::vector<std::string> lines;
  if (from >= o.index.durable) return lines;
  std::ifstream in(log_path(channel), std::ios::binary);
  std::string line;
  for (std::size_t i = from; i < o.index.durable; ++i) {
    in.seekg(static_cast<std::streamoff>(o.index.offsets[i]));
    if (!std::getline(in, line)) break;
    lines.push_back(line);
  }
  return lines;
}

std::vector<ChannelStore::SyncPoint> ChannelStore::sync_points(const std::vector<std::string>& channels) {
  std::vector<SyncPoint> points;
  for (const auto& channel : channels) {
    auto it = open_.find(channel);
    if (it == open_.end() || it->second->fd < 0) continue;
    const int fd = ::dup(it->second->fd);
    if (fd < 0) {
      for (auto& p : points) ::close(p.fd);
      throw Error(errc::kStoreFailed, "cannot sync channel " + channel + ": " + std::strerror(errno), 500);
    }
    points.push_back({channel, fd, it->second->index.offsets.size(), it->second->generation});
  }
  return points;
}

void ChannelStore::mark_durable(const SyncPoint& point) {
  auto it = open_.find(point.channel);
  // Closed meanwhile (reopening syncs and indexes the file), or removed and recreated.
  if (it == open_.end() || it->second->generation != point.generation) return;
  auto& index = it->second->index;
  index.durable = std::min(index.offsets.size(), std::max(index.durable, point.lines));
}

void ChannelStore::discard_undurable(const std::string& channel) {
  auto it = open_.find(channel);
  if (it == open_.end()) return;
  Open& o = *it->second;
  const uint64_t keep = o.index.durable < o.index.offsets.size() ? o.index.offsets[o.index.durable] : o.index.bytes;
  // Whatever happens to the truncation, the entry goes: the next use indexes the file anew.
  (void)::ftruncate(o.fd, static_cast<off_t>(keep));
  open_.erase(it);
}

void ChannelStore::remove(const std::string& channel) {
  open_.erase(channel);
  metadata_cache_.erase(channel);
  std::error_code ec;
  fs::create_directories(log_path(channel).parent_path(), ec);
  // The tombstone first: a crash between the two leaves a deleted channel, never a revived one.
  write_file_durably(dir_ / channel.substr(0, 2) / (channel + ".deleted"), "", 0600);
  fs::remove(log_path(channel), ec);
  fs::remove(meta_path(channel), ec);
  fsync_directory(log_path(channel).parent_path());
}

void ChannelStore::close(const std::string& channel) {
  auto it = open_.find(channel);
  // Lines waiting for their sync keep the channel open (and unread) until it comes.
  if (it != open_.end() && it->second->index.durable >= it->second->index.offsets.size()) open_.erase(it);
}

}  // namespace coop::docs
