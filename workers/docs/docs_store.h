// docs.db: who owns which document (the server knows the channel and an encrypted title,
// never the text) and the encrypted blobs (attachments) members upload, with their owners
// for quotas and deletion, and members' browser sessions. Blob bytes live in
// COOP_HOME/docs/blobs/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::sqlite {
class Database;
}

namespace coop::docs {

struct OwnedDocument {
  std::string channel;
  std::string owner;
  std::string title;  // ciphertext from the client; the server cannot read it
  int64_t created_at = 0;
};

struct Blob {
  std::string id;  // 48 hex characters
  std::string owner;
  int64_t size = 0, received = 0;
  bool complete = false;
  int64_t created_at = 0;
};

// A member signed in from a browser: the token stands for their credentials until it expires,
// they sign out, or the registry ends their sessions.
struct Session {
  std::string token;  // 64 hex characters; stored only as its SHA-256
  std::string handle;
  int64_t expires_at = 0;  // seconds
};

class DocsStore {
 public:
  DocsStore(const std::filesystem::path& database, std::filesystem::path blob_dir);
  ~DocsStore();

  // coop::Error(errc::kOwned, 409) when another member owns it already.
  OwnedDocument own(const std::string& channel, const std::string& owner, const std::string& title);
  std::vector<OwnedDocument> owned_by(const std::string& owner);
  std::optional<OwnedDocument> document(const std::string& channel);
  void forget_document(const std::string& channel);

  // Reserves an upload of size bytes; coop::Error(errc::kQuotaExceeded, 413) past quota_bytes.
  Blob start_blob(const std::string& owner, int64_t size, int64_t quota_bytes);
  // Appends a chunk at offset (which must be where the upload stands), fsync'd before it
  // returns; the blob is complete (and readable) when its last byte is in.
  Blob append_blob(const std::string& id, const std::string& owner, int64_t offset, const std::string& bytes);
  std::optional<Blob> blob(const std::string& id);
  std::vector<Blob> blobs_of(const std::string& owner);
  std::filesystem::path blob_path(const std::string& id) const;
  void remove_blob(const std::string& id);
  int64_t used_bytes(const std::string& owner);

  // Channels created with an expiry, so a sweep can remove them when nobody touches them.
  void add_expiring(const std::string& channel, int64_t expires_at_ms);
  std::vector<std::string> expired(int64_t now_ms);
  void forget_expiring(const std::string& channel);

  static bool valid_blob_id(const std::string& id);

  Session start_session(const std::string& handle, int64_t lifetime_s);
  // The live session with that token, if any.
  std::optional<Session> session(const std::string& token);
  void end_session(const std::string& token);
  void end_sessions(const std::string& handle);

 private:
  int64_t used_unlocked(const std::string& owner);

  std::unique_ptr<sqlite::Database> db_;
  std::filesystem::path blob_dir_;
  std::mutex mutex_;
};

}  // namespace coop::docs
