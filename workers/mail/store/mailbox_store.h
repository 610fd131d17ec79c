// Per-member mail indexes (mail/<handle>.db): mailboxes with their UIDVALIDITY, UIDNEXT and
// HIGHESTMODSEQ, and one row per message pointing at its blob. Appends are durable on return.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::mail {

// RFC 6154 special-use mailboxes every member has from the first delivery on.
inline constexpr const char* kSpecialMailboxes[][2] = {
    {"INBOX", ""},          {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
    {"Trash", "\\Trash"},   {"Junk", "\\Junk"}, {"Archive", "\\Archive"}};

struct MessageMeta {
  std::string blob;  // sha256 of the bytes
  int64_t size = 0;
  int64_t internal_date = 0;  // unix seconds: when it arrived (IMAP INTERNALDATE)
  unsigned flags = 0;         // mailbox_formats.h Flag bits
  std::string message_id;
  std::string subject;
  std::string envelope;        // JSON, for IMAP ENVELOPE and JMAP later
  std::string body_structure;  // JSON
};

struct StoredMessage {
  int64_t uid = 0;
  int64_t modseq = 0;
  std::string mailbox;
  MessageMeta meta;
};

struct MailboxInfo {
  std::string name;
  std::string special_use;
  int64_t uidvalidity = 0;
  int64_t uidnext = 0;
  int64_t highest_modseq = 0;
  int64_t messages = 0;
  int64_t unseen = 0;
  int64_t bytes = 0;
};

class MailboxStore {
 public:
  explicit MailboxStore(std::filesystem::path dir);  // COOP_HOME/mail
  ~MailboxStore();

  // Appends to one member's mailbox (INBOX on delivery): assigns UID and MODSEQ, commits
  // with synchronous=FULL. quota_bytes 0 means none; over it, coop::Error("quota_exceeded", 552).
  StoredMessage append(const std::string& handle, const std::string& mailbox, const MessageMeta& meta,
                       int64_t quota_bytes);
  // Creates a mailbox (import of folders beyond the special-use ones); a no-op when it exists.
  void ensure_mailbox(const std::string& handle, const std::string& mailbox);
  // The UID of a message with these bytes in that mailbox, if there is one (import is idempotent).
  std::optional<int64_t> find_blob(const std::string& handle, const std::string& mailbox, const std::string& blob);
  int64_t usage(const std::string& handle);
  std::vector<MailboxInfo> mailboxes(const std::string& handle);
  // In UID order; after_uid and limit page through big mailboxes.
  std::vector<StoredMessage> messages(const std::string& handle, const std::string& mailbox, int64_t after_uid,
                                      int limit);
  bool has_index(const std::string& handle) const;

 private:
  struct Index;
  Index& index(const std::string& handle);
  std::filesystem::path dir_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Index>> indexes_;
};

}  // namespace coop::mail
