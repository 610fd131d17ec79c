// Per-member mail indexes (mail/<handle>.db): mailboxes with their UIDVALIDITY, UIDNEXT and
// HIGHESTMODSEQ, and one row per message pointing at its blob. Appends are durable on return.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <utility>
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
  std::string keywords;       // IMAP keywords ($Forwarded, $Junk, ...), space-separated
  std::string message_id;
  std::string subject;
  std::string envelope;        // JSON, for IMAP ENVELOPE and JMAP later
  std::string body_structure;  // JSON
  std::string imap_envelope;   // ENVELOPE as IMAP sends it, rendered once at delivery
  std::string header;          // the header section, for SEARCH FROM/TO/HEADER without the file
  // RFC 5256 SORT keys: the Date header's time (0: none), the first From/To/Cc mailbox.
  int64_t sent_date = 0;
  std::string from_mailbox, to_mailbox, cc_mailbox;
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
  bool subscribed = true;
  int64_t recent = 0;  // messages no session has yet been told are \Recent (RFC 3501 2.3.2)
  int64_t id = 0;      // the row's id: stable across renames (JMAP's Mailbox id)
};

// What IMAP sessions read of every message of a mailbox, kept in memory while a session
// has the mailbox selected and changed with the index, so SELECT, SEARCH on flags and
// IDLE never go to SQLite.
struct CachedMessage {
  int64_t uid = 0, modseq = 0, size = 0, internal_date = 0;
  unsigned flags = 0;
  std::string blob, subject, keywords;
  int64_t saved_at = 0;  // RFC 8514 SAVEDATE (the internal date for messages stored before it was kept)
};

struct MailboxCache {
  int64_t uidvalidity = 0, uidnext = 0, highest_modseq = 0;
  std::vector<CachedMessage> messages;  // ascending UID
  const CachedMessage* find(int64_t uid) const;
  CachedMessage* find(int64_t uid);
};

struct SortRow {
  int64_t uid = 0, sent_date = 0;
  std::string from_mailbox, to_mailbox, cc_mailbox;
};

// A message's rendered ENVELOPE, or, for messages stored before it was kept, its JSON.
struct EnvelopeText {
  int64_t uid = 0;
  std::string imap, json;
};

// What was summarized of a message at delivery, for JMAP's Email/get without the file.
struct SummaryRow {
  int64_t uid = 0;
  std::string envelope, body_structure;  // JSON, as mime_summary wrote them
  std::optional<std::string> header;     // the header section; none for messages stored before it was kept
  std::optional<int64_t> sent_date;      // the Date field's time (0: none); none as for header
};

inline constexpr std::size_t kMaxKeywords = 64;  // on one message

class MailboxStore {
 public:
  explicit MailboxStore(std::filesystem::path dir);  // COOP_HOME/mail
  ~MailboxStore();

  // Appends to one member's mailbox (INBOX on delivery): assigns UID and MODSEQ, commits
  // with synchronous=FULL. quota_bytes 0 means none; over it, coop::Error(errc::kQuotaExceeded, 552).
  StoredMessage append(const std::string& handle, const std::string& mailbox, const MessageMeta& meta,
                       int64_t quota_bytes);
  // Many messages in one transaction (an import): UIDs and MODSEQs in the given order.
  std::vector<StoredMessage> append_batch(const std::string& handle, const std::string& mailbox,
                                          const std::vector<MessageMeta>& metas, int64_t quota_bytes = 0);
  // Creates a mailbox (import of folders beyond the special-use ones); a no-op when it exists.
  void ensure_mailbox(const std::string& handle, const std::string& mailbox);
  // The UID of a message with these bytes in that mailbox, if there is one (import is idempotent).
  std::optional<int64_t> find_blob(const std::string& handle, const std::string& mailbox, const std::string& blob);
  int64_t usage(const std::string& handle);
  std::vector<MailboxInfo> mailboxes(const std::string& handle);
  // The same without the counts (messages, unseen, size, recent stay 0): no scan of the
  // messages, for what changes with every change (HIGHESTMODSEQ, UIDVALIDITY, names).
  std::vector<MailboxInfo> mailbox_heads(const std::string& handle);
  // In UID order; after_uid and limit page through big mailboxes.
  std::vector<StoredMessage> messages(const std::string& handle, const std::string& mailbox, int64_t after_uid,
                                      int limit);
  bool has_index(const std::string& handle) const;

  // RFC 9051 6.3.4 DELETE: the mailbox and its messages; coop::Error(errc::kCannot, 400) for
  // INBOX, ("has_children", 409) when others are below it, ("no_such_mailbox", 404).
  void delete_mailbox(const std::string& handle, const std::string& mailbox);
  // RFC 9051 6.3.5 RENAME: the mailbox and those below it; ("exists", 409) when `to` is taken.
  // UIDVALIDITY stays: the messages and their UIDs do not change. INBOX is the exception
  // (6.3.6): its messages move to a new mailbox `to`, INBOX stays, empty, with its children.
  void rename_mailbox(const std::string& handle, const std::string& from, const std::string& to);
  // RFC 9051 6.3.7-6.3.8 SUBSCRIBE/UNSUBSCRIBE.
  void set_subscribed(const std::string& handle, const std::string& mailbox, bool subscribed);
  // RFC 6154: the mailbox's special use ("\\Archive"...; "" for none), as JMAP's role sets it.
  void set_special_use(const std::string& handle, const std::string& mailbox, const std::string& use);
  // Every subscribed name, whether or not its mailbox exists still.
  std::vector<std::string> subscriptions(const std::string& handle);

  // RFC 5464 METADATA of a mailbox, or of the server ("" as mailbox): (entry, value) by entry.
  std::vector<std::pair<std::string, std::string>> metadata(const std::string& handle, const std::string& mailbox);
  // Sets (a value) or removes (nullopt) entries, all or none; coop::Error(errc::kTooLarge) when
  // the mailbox would then hold more than max_entries.
  void set_metadata(const std::string& handle, const std::string& mailbox,
                    const std::vector<std::pair<std::string, std::optional<std::string>>>& entries, std::size_t max_entries);
  // RFC 3501 2.3.2: a message is \Recent to the first session that sees it. A session that
  // now knows the mailbox up to `up_to_uid` claims the UIDs above the returned value.
  int64_t claim_recent(const std::string& handle, const std::string& mailbox, int64_t up_to_uid);
  // Keeps the mailbox's messages in memory until as many release() calls (SELECT and
  // CLOSE), and calls `changed` after each committed change to it (IDLE): on the thread
  // that made the change, under the index's lock, so it must only hand work on (post).
  // nullopt when there is no such mailbox.
  struct Hold {
    int64_t mailbox_id = 0;
    uint64_t watcher = 0;
    std::string key;  // key_of the held mailbox
  };
  // A key for one mailbox, from its id and UIDVALIDITY, that every call taking a mailbox name
  // also takes: it follows the mailbox through renames and names nothing once the mailbox is
  // deleted (an id SQLite hands out again never comes with the same UIDVALIDITY). IMAP
  // sessions read their selected mailbox by it, never by a name another session can reuse.
  static std::string key_of(int64_t mailbox_id, int64_t uidvalidity);
  // The name a mailbox (given by name or key) has now; nullopt when it is gone.
  std::optional<std::string> name_of(const std::string& handle, const std::string& mailbox);
  std::optional<Hold> hold(const std::string& handle, const std::string& mailbox, std::function<void()> changed = {});
  // Calls `changed` after every commit to any of the member's mailboxes (messages, flags,
  // names, subscriptions, metadata) until unwatch: RFC 5465 NOTIFY. On the committing thread,
  // under the index's lock: post, never block or call back into the store.
  uint64_t watch(const std::string& handle, std::function<void()> changed);
  void unwatch(const std::string& handle, uint64_t token);
  void release(const std::string& handle, const Hold& hold);
  // Runs `read` on the mailbox as it is now, under the index's lock: keep it short (no
  // file reads). Loads it for the call when nobody holds it. false: no such mailbox.
  bool with_cache(const std::string& handle, const std::string& mailbox, const std::function<void(const MailboxCache&)>& read);
  // ENVELOPEs of these UIDs (ascending) in one query; missing UIDs are left out.
  std::vector<EnvelopeText> envelopes(const std::string& handle, const std::string& mailbox, const std::vector<int64_t>& uids);
  // SORT keys of the messages with UIDs in [first, last], ascending; messages stored before
  // they were kept are left out (their envelope JSON has them).
  std::vector<SortRow> sort_rows(const std::string& handle, const std::string& mailbox, int64_t first, int64_t last);
  // Header sections of the messages with UIDs in [first, last], ascending; messages stored
  // before headers were kept are left out (read the file).
  std::vector<std::pair<int64_t, std::string>> headers(const std::string& handle, const std::string& mailbox, int64_t first,
                                                       int64_t last);
  // The summaries of these UIDs (ascending) in one read; missing UIDs are left out.
  std::vector<SummaryRow> summary_rows(const std::string& handle, const std::string& mailbox, const std::vector<int64_t>& uids);
  // IMAP: a message's ENVELOPE and BODYSTRUCTURE JSON, as summarized at delivery.
  std::pair<std::string, std::string> summaries(const std::string& handle, const std::string& mailbox, int64_t uid);
  enum class FlagChange { add, remove, replace };
  // RFC 9051 6.4.6 STORE: changes the flags and keywords of these UIDs (keywords compare
  // without regard to case, RFC 9051 2.3.2); the messages whose flags changed, each with the
  // command's new MODSEQ (RFC 7162 3.1.3), in UID order. coop::Error(errc::kTooManyKeywords,
  // 400) past kMaxKeywords on a message, changing nothing.
  std::vector<StoredMessage> change_flags(const std::string& handle, const std::string& mailbox,
                                          const std::vector<int64_t>& uids, FlagChange change, unsigned flags,
                                          const std::vector<std::string>& keywords = {});
  // RFC 9051 6.4.3 EXPUNGE: removes the \Deleted messages (only those in `only`, when given,
  // for UID EXPUNGE); their UIDs in ascending order.
  std::vector<int64_t> expunge(const std::string& handle, const std::string& mailbox,
                               const std::optional<std::vector<int64_t>>& only);
  // RFC 7162 3.2.5: the UIDs expunged after `modseq`, ascending (VANISHED (EARLIER)).
  std::vector<int64_t> expunged_since(const std::string& handle, const std::string& mailbox, int64_t modseq);
  // RFC 9051 6.4.7-6.4.8 COPY/MOVE: new UIDs in `to` for these UIDs, in order (UIDPLUS COPYUID).
  std::vector<std::pair<int64_t, int64_t>> copy(const std::string& handle, const std::string& from, const std::string& to,
                                                const std::vector<int64_t>& uids);

 private:
  struct Index;
  Index& index(const std::string& handle);
  std::filesystem::path dir_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Index>> indexes_;
};

}  // namespace coop::mail
