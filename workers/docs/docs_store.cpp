// docs.db and the blob files.
#include "workers/docs/docs_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <chrono>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/sqlite.h"
#include "common/text.h"

namespace fs = std::filesystem;

namespace coop::docs {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1,
     "CREATE TABLE documents (channel TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',"
     " created_at INTEGER NOT NULL);"
     "CREATE INDEX documents_owner ON documents (owner);"
     "CREATE TABLE blobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, size INTEGER NOT NULL,"
     " received INTEGER NOT NULL DEFAULT 0, complete INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);"
     "CREATE INDEX blobs_owner ON blobs (owner);"},
    {2,
     "CREATE TABLE expiring (channel TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);"
     "CREATE INDEX expiring_at ON expiring (expires_at);"},
    // Sessions: only the SHA-256 of each token is kept, so a copy of the database signs no one in.
    {3,
     "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, handle TEXT NOT NULL, created_at INTEGER NOT NULL,"
     " expires_at INTEGER NOT NULL);"
     "CREATE INDEX sessions_handle ON sessions (handle);"},
};

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Blob read_blob(sqlite::Statement& s) {
  return Blob{s.column_text(0), s.column_text(1), s.column_int64(2), s.column_int64(3), s.column_int64(4) != 0,
              s.column_int64(5)};
}

}  // namespace

DocsStore::DocsStore(const fs::path& database, fs::path blob_dir)
    : db_(sqlite::Database::open(database)), blob_dir_(std::move(blob_dir)) {
  db_->migrate(kMigrations);
  fs::create_directories(blob_dir_);
}

DocsStore::~DocsStore() = default;

bool DocsStore::valid_blob_id(const std::string& id) { return is_lower_hex(id, 48); }

Session DocsStore::start_session(const std::string& handle, int64_t lifetime_s) {
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  std::string token(2 * sizeof raw + 1, '\0');
  sodium_bin2hex(token.data(), token.size(), raw, sizeof raw);
  token.pop_back();
  const Session session{token, handle, now_s() + lifetime_s};
  std::lock_guard lock(mutex_);
  auto& prune = db_->prepare("DELETE FROM sessions WHERE expires_at <= ?1");
  prune.bind(1, now_s());
  prune.run();
  auto& insert = db_->prepare("INSERT INTO sessions (token_hash, handle, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)");
  insert.bind(1, sha256_hex(token)).bind(2, handle).bind(3, now_s()).bind(4, session.expires_at);
  insert.run();
  return session;
}

std::optional<Session> DocsStore::session(const std::string& token) {
  if (!is_lower_hex(token, 64)) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT handle, expires_at FROM sessions WHERE token_hash = ?1 AND expires_at > ?2");
  select.bind(1, sha256_hex(token)).bind(2, now_s());
  std::optional<Session> found;
  if (select.step()) found = Session{token, select.column_text(0), select.column_int64(1)};
  select.reset();
  return found;
}

void DocsStore::end_session(const std::string& token) {
  std::lock_guard lock(mutex_);
  auto& remove = db_->prepare("DELETE FROM sessions WHERE token_hash = ?1");
  remove.bind(1, sha256_hex(token));
  remove.run();
}

void DocsStore::end_sessions(const std::string& handle) {
  std::lock_guard lock(mutex_);
  auto& remove = db_->prepare("DELETE FROM sessions WHERE handle = ?1");
  remove.bind(1, handle);
  remove.run();
}

fs::path DocsStore::blob_path(const std::string& id) const { return blob_dir_ / id.substr(0, 2) / id; }

OwnedDocument DocsStore::own(const std::string& channel, const std::string& owner, const std::string& title) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT owner FROM documents WHERE channel = ?1");
  select.bind(1, channel);
  if (select.step() && select.column_text(0) != owner) {
    select.reset();
    throw Error(errc::kOwned, "that document has another owner", 409);
  }
  select.reset();
  OwnedDocument d{channel, owner, title, now_s()};
  auto& upsert = db_->prepare(
      "INSERT INTO documents (channel, owner, title, created_at) VALUES (?1, ?2, ?3, ?4)"
      " ON CONFLICT (channel) DO UPDATE SET title = excluded.title");
  upsert.bind(1, channel).bind(2, owner).bind(3, title).bind(4, d.created_at);
  upsert.run();
  return d;
}

std::vector<OwnedDocument> DocsStore::owned_by(const std::string& owner) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT channel, owner, title, created_at FROM documents WHERE owner = ?1 ORDER BY created_at, channel");
  select.bind(1, owner);
  std::vector<OwnedDocument> out;
  while (select.step()) out.push_back({select.column_text(0), select.column_text(1), select.column_text(2), select.column_int64(3)});
  select.reset();
  return out;
}

std::optional<OwnedDocument> DocsStore::document(const std::string& channel) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT channel, owner, title, created_at FROM documents WHERE channel = ?1");
  select.bind(1, channel);
  std::optional<OwnedDocument> out;
  if (select.step()) out = OwnedDocument{select.column_text(0), select.column_text(1), select.column_text(2), select.column_int64(3)};
  select.reset();
  return out;
}

void DocsStore::forget_document(const std::string& channel) {
  std::lock_guard lock(mutex_);
  auto& erase = db_->prepare("DELETE FROM documents WHERE channel = ?1");
  erase.bind(1, channel);
  erase.run();
}

int64_t DocsStore::used_bytes(const std::string& owner) {
  std::lock_guard lock(mutex_);
  return used_unlocked(owner);
}

int64_t DocsStore::used_unlocked(const std::string& owner) {
  auto& sum = db_->prepare("SELECT coalesce(sum(size), 0) FROM blobs WHERE owner = ?1");
  sum.bind(1, owner);
  sum.step();
  const int64_t used = sum.column_int64(0);
  sum.reset();
  return used;
}

Blob DocsStore::start_blob(const std::string& owner, int64_t size, int64_t quota_bytes) {
  if (size <= 0) throw Error(errc::kBadBlob, "a blob has at least one byte", 400);
  std::lock_guard lock(mutex_);
  const int64_t used = used_unlocked(owner);
  if (size > quota_bytes - used)  // not used + size: that could overflow
    throw Error(errc::kQuotaExceeded, "this upload would pass the quota of " + std::to_string(quota_bytes) + " bytes (" +
                                      std::to_string(used) + " used)", 413);
  unsigned char raw[24];
  randombytes_buf(raw, sizeof raw);
  char hex[49];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  Blob b{hex, owner, size, 0, false, now_s()};
  fs::create_directories(blob_path(b.id).parent_path());
  auto& insert = db_->prepare("INSERT INTO blobs (id, owner, size, received, complete, created_at) VALUES (?1, ?2, ?3, 0, 0, ?4)");
  insert.bind(1, b.id).bind(2, owner).bind(3, size).bind(4, b.created_at);
  insert.run();
  return b;
}

Blob DocsStore::append_blob(const std::string& id, const std::string& owner, int64_t offset, const std::string& bytes) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT id, owner, size, received, complete, created_at FROM blobs WHERE id = ?1");
  select.bind(1, id);
  if (!select.step()) {
    select.reset();
    throw Error(errc::kNoBlob, "no upload " + id, 404);
  }
  Blob b = read_blob(select);
  select.reset();
  if (b.owner != owner) throw Error(errc::kForbidden, "another member's upload", 403);
  if (b.complete) throw Error(errc::kComplete, "that upload is complete", 409);
  if (offset != b.received)
    throw Error(errc::kBadOffset, "the upload stands at " + std::to_string(b.received) + " bytes", 409);
  if (bytes.empty() || b.received + static_cast<int64_t>(bytes.size()) > b.size)
    throw Error(errc::kBadBlob, "the chunk passes the announced size", 400);
  const auto path = blob_path(id);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(errc::kStoreFailed, "cannot write the blob", 500);
  bool ok = ::ftruncate(fd, b.received) == 0;  // a chunk that failed half-way before is cut off
  for (std::size_t written = 0; ok && written < bytes.size();) {
    const ssize_t n = ::pwrite(fd, bytes.data() + written, bytes.size() - written, b.received + static_cast<off_t>(written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else written += static_cast<std::size_t>(n);
  }
  ok = ok && ::fdatasync(fd) == 0;
  ::close(fd);
  if (!ok) throw Error(errc::kStoreFailed, "cannot write the blob (is the disk full?)", 500);
  b.received += static_cast<int64_t>(bytes.size());
  b.complete = b.received == b.size;
  if (b.complete) fsync_directory(path.parent_path());
  auto& update = db_->prepare("UPDATE blobs SET received = ?2, complete = ?3 WHERE id = ?1");
  update.bind(1, id).bind(2, b.received).bind(3, b.complete ? 1 : 0);
  update.run();
  return b;
}

std::optional<Blob> DocsStore::blob(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT id, owner, size, received, complete, created_at FROM blobs WHERE id = ?1");
  select.bind(1, id);
  std::optional<Blob> out;
  if (select.step()) out = read_blob(select);
  select.reset();
  return out;
}

std::vector<Blob> DocsStore::blobs_of(const std::string& owner) {
  std::lock_guard lock(mutex_);
  auto& select =
      db_->prepare("SELECT id, owner, size, received, complete, created_at FROM blobs WHERE owner = ?1 ORDER BY created_at, id");
  select.bind(1, owner);
  std::vector<Blob> out;
  while (select.step()) out.push_back(read_blob(select));
  select.reset();
  return out;
}

void DocsStore::add_expiring(const std::string& channel, int64_t expires_at_ms) {
  std::lock_guard lock(mutex_);
  auto& insert = db_->prepare("INSERT OR REPLACE INTO expiring (channel, expires_at) VALUES (?1, ?2)");
  insert.bind(1, channel).bind(2, expires_at_ms);
  insert.run();
}

std::vector<std::string> DocsStore::expired(int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare("SELECT channel FROM expiring WHERE expires_at <= ?1 ORDER BY expires_at LIMIT 1000");
  select.bind(1, now_ms);
  std::vector<std::string> out;
  while (select.step()) out.push_back(select.column_text(0));
  select.reset();
  return out;
}

void DocsStore::forget_expiring(const std::string& channel) {
  std::lock_guard lock(mutex_);
  auto& erase = db_->prepare("DELETE FROM expiring WHERE channel = ?1");
  erase.bind(1, channel);
  erase.run();
}

void DocsStore::remove_blob(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto& erase = db_->prepare("DELETE FROM blobs WHERE id = ?1");
  erase.bind(1, id);
  erase.run();
  std::error_code ec;
  fs::remove(blob_path(id), ec);
}

}  // namespace coop::docs
