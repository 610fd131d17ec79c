// The IMAP session (RFC 9051) shared by the files that implement it, one per family of
// commands: imap_session.cpp (the connection, the command table, IDLE), imap_auth.cpp
// (STARTTLS, LOGIN, AUTHENTICATE), imap_mailboxes.cpp (LIST, STATUS, SELECT, CREATE,
// DELETE, RENAME, quotas), imap_messages.cpp (FETCH, STORE, COPY, MOVE, EXPUNGE, APPEND and
// the session's view of the mailbox) and imap_search_commands.cpp (SEARCH, SORT, THREAD).
// Internal to coop-mail: imap_session.h is what the rest of the worker sees.
#pragma once

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/auth/member_client.h"
#include "common/error.h"
#include "common/mail/mailbox_formats.h"
#include "common/net/read_buffer.h"
#include "common/net/tcp_listener.h"
#include "common/text.h"
#include "workers/mail/imap_compress.h"
#include "workers/mail/imap_fetch.h"
#include "workers/mail/imap_scram.h"
#include "workers/mail/imap_search.h"
#include "workers/mail/imap_session.h"
#include "workers/mail/imap_thread.h"
#include "workers/mail/mail_service.h"

namespace coop::mail::imap_server {

namespace asio = boost::asio;

// Until a client has logged in it may send no more than a login or an ID needs: RFC 2971
// allows 30 pairs of a 30-octet field and a 1,024-octet value (about 32 KiB quoted), which
// clients send before logging in; any one literal (a password) stays under 8 KiB.
inline constexpr imap::ReaderLimits kBeforeLogin{40 << 10, 8 << 10, 40 << 10};

// Text that goes back to a client inside a reply: control characters (a CRLF in a mailbox
// name the client sent, say) cannot end the line early.
inline std::string reply_text(std::string_view text) {
  std::string out;
  for (char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) ? ' ' : c;
  return out;
}
using imap::CommandReader;
using imap::Cursor;
using imap::RawCommand;

// \Recent (RFC 3501 2.3.2) is the session's to know, never stored: kRecent (imap_search.h).
inline constexpr const char* kSystemFlags[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent"};
inline constexpr unsigned kFlagBits[] = {kSeen, kAnswered, kFlagged, kDeleted, kDraft, imap::kRecent};

inline std::string flags_text(unsigned flags, const std::string& keywords = {}) {
  std::string out = "(";
  for (std::size_t i = 0; i < 6; ++i)
    if (flags & kFlagBits[i]) out += (out.size() > 1 ? " " : "") + std::string(kSystemFlags[i]);
  if (!keywords.empty()) out += (out.size() > 1 ? " " : "") + keywords;
  return out + ")";
}

inline bool has_keyword(std::string_view keywords, std::string_view keyword) {
  const std::string wanted = ascii_lower(keyword);
  for (std::size_t at = 0; at < keywords.size();) {
    const auto end = std::min(keywords.find(' ', at), keywords.size());
    if (ascii_lower(keywords.substr(at, end - at)) == wanted) return true;
    at = end + 1;
  }
  return false;
}

inline std::string upper(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

inline bool loopback(const std::string& address) { return address == "127.0.0.1" || address == "::1" || address.rfind("127.", 0) == 0; }

// IMAP's list-mailbox wildcards (RFC 9051 6.3.9): * matches anything, % anything but "/".
inline bool wildcard_match(std::string_view pattern, std::string_view name) {
  if (pattern.empty()) return name.empty();
  if (pattern.front() == '*') {
    for (std::size_t i = 0; i <= name.size(); ++i)
      if (wildcard_match(pattern.substr(1), name.substr(i))) return true;
    return false;
  }
  if (pattern.front() == '%') {
    for (std::size_t i = 0; i <= name.size(); ++i) {
      if (wildcard_match(pattern.substr(1), name.substr(i))) return true;
      if (i < name.size() && name[i] == '/') return false;
    }
    return false;
  }
  return !name.empty() && pattern.front() == name.front() && wildcard_match(pattern.substr(1), name.substr(1));
}

// A message as this session last told the client of it; the rest (blob, subject) is in the
// store's shared MailboxCache. 40 bytes a message.
struct Message {
  int64_t uid = 0;
  unsigned flags = 0;
  int64_t size = 0, internal_date = 0, modseq = 0;
};

inline Message session_row(const CachedMessage& m) { return {m.uid, m.flags, m.size, m.internal_date, m.modseq}; }

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const ImapSettings> settings)
      : conn_(std::move(connection)), settings_(std::move(settings)), reader_(kBeforeLogin) {}

  ~Session() {
    if (live_id_ != 0) settings_->live->remove(handle_, live_id_);
    // The store keeps NOTIFY's watcher until told; errors do not matter on the way out.
    if (notify_ && notify_->watcher) {
      try {
        settings_->service->mailboxes().unwatch(handle_, notify_->watcher);
      } catch (...) {
      }
    }
  }

  void start();

 private:
  enum class State { not_authenticated, authenticated, selected, logout };

  // ---- I/O on the strand ---------------------------------------------------------------
  void flush();

  void read();

  void finish();

  void release_when_closed();

  // Lets go of the selected mailbox's messages (CLOSE, UNSELECT, another SELECT, the end).
  void unselect();

  // Takes commands from what was read until one needs the pool or more bytes are needed.
  void pump();

  // Runs work on the blocking pool, then writes what it wrote and goes on.
  void run_blocking(std::function<void()> work);

  std::string capabilities() const;

  bool secure() const { return conn_->is_tls() || (settings_->plaintext_loopback && loopback(conn_->remote_address())); }

  void tagged(const std::string& text) { out_ += current_tag_ + " " + text + "\r\n"; }
  void bad(const std::string& why) { tagged("BAD " + why); }

  // ---- commands ---------------------------------------------------------------------------
  void dispatch(RawCommand command);

  // ---- the command table --------------------------------------------------------------------
  enum class Needs { any, not_authenticated, authenticated, selected };
  using Handler = void (Session::*)(Cursor&, const std::string& name, bool uid);
  struct Command {
    std::string_view name;
    Needs needs;
    bool after_uid;  // may follow UID
    Handler run;
  };

  static const Command* find_command(std::string_view name);

  void cmd_capability(Cursor&, const std::string&, bool);
  void cmd_noop(Cursor&, const std::string& name, bool);
  void cmd_logout(Cursor&, const std::string&, bool);
  void cmd_id(Cursor&, const std::string&, bool);
  void cmd_compress(Cursor& c, const std::string&, bool);
  void cmd_starttls(Cursor& c, const std::string&, bool) { starttls(c); }
  void cmd_login(Cursor& c, const std::string&, bool) { login(c); }
  void cmd_authenticate(Cursor& c, const std::string&, bool) { authenticate(c); }
  void cmd_enable(Cursor& c, const std::string&, bool);
  void cmd_namespace(Cursor&, const std::string&, bool);
  void cmd_idle(Cursor& c, const std::string&, bool);
  void cmd_list(Cursor& c, const std::string& name, bool);
  void cmd_status(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { status(c); }); }
  void cmd_select(Cursor& c, const std::string& name, bool);
  void cmd_create(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { create(c); }); }
  void cmd_mailbox(Cursor& c, const std::string& name, bool);
  void cmd_rename(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { rename(c); }); }
  void cmd_quota(Cursor& c, const std::string& name, bool) { run_blocking([this, c, name]() mutable { quota(c, name); }); }
  void cmd_setquota(Cursor&, const std::string&, bool);
  void cmd_append(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { append(c); }); }
  void cmd_fetch(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { fetch(c, uid); }); }
  void cmd_search(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { search(c, uid); }); }
  void cmd_sort(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { sort(c, uid); }); }
  void cmd_thread(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { thread(c, uid); }); }
  void cmd_store(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { store(c, uid); }); }
  void cmd_copy(Cursor& c, const std::string& name, bool uid);
  void cmd_expunge(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { expunge(c, uid); }); }
  void cmd_close(Cursor&, const std::string& name, bool);

  MailService& service() { return *settings_->service; }

  // ---- mailbox names: UTF-8 after ENABLE IMAP4rev2 or UTF8=ACCEPT, modified UTF-7 before
  // (RFC 3501 5.1.3, RFC 6855 3); the store keeps UTF-8 ------------------------------------
  std::string from_client(const std::string& name) const;

  std::optional<std::string> mailbox_arg(Cursor& c) const;

  std::string mailbox_text(const std::string& name) const { return imap::quote(utf8_names_ ? name : imap::to_modified_utf7(name)); }

  // ---- keywords (RFC 9051 2.3.2) ----------------------------------------------------------
  const std::string& keywords_of(int64_t uid) const;

  // FLAGS of a message as this session shows them: the stored flags, the keywords, and
  // \Recent to an IMAP4rev1 client that was the first to see it (IMAP4rev2 dropped it).
  std::string flags_of(const Message& m) const {
    return flags_text(m.flags | (!rev2_ && recent_.count(m.uid) ? imap::kRecent : 0u), keywords_of(m.uid));
  }
  // Claims the UIDs of messages_ above `after` that no other session has been told are
  // \Recent (only a SELECT may; EXAMINE looks without claiming).
  void claim_recent(int64_t after);
  // "* n RECENT", which IMAP4rev2 has no more (RFC 9051 appendix E).
  std::string recent_response() const { return rev2_ ? std::string() : "* " + std::to_string(recent_.size()) + " RECENT\r\n"; }

  void set_keywords(int64_t uid, std::string words);

  std::string flag_list() const;

  // Adds these keywords to the FLAGS list; true when one was new.
  bool learn_keywords(std::string_view words);

  // RFC 9051 7.3.5: a client learns of a new keyword by a new FLAGS response, before the
  // FETCH responses that show it.
  void announce_keywords(std::string_view words);

  void starttls(Cursor& c);

  // A store refusal as its RFC 5530 response code (imap::response_code) and message.
  void refused(const Error& e) { tagged("NO [" + imap::response_code(e.code()) + "] " + reply_text(e.what())); }

  void authenticated(const std::string& handle);

  void verify(const std::string& user, const std::string& password);

  void login(Cursor& c);

  // RFC 9051 6.2.2 with SASL-IR (RFC 4959); PLAIN is RFC 4616.
  void authenticate(Cursor& c);

  void sasl_response(const RawCommand& command);

  void plain(const std::string& base64);
  std::optional<std::string> catenate_part(const std::string& url);
  // RFC 4731 ESEARCH: "* ESEARCH (TAG "t") [UID]", which the result items follow.
  static std::string esearch_head(const std::string& tag, bool uid) {
    return "* ESEARCH (TAG " + imap::quote(tag) + ")" + (uid ? " UID" : "");
  }
  // RFC 5267 CONTEXT=SEARCH.
  static bool parse_nz(const std::string& text, int64_t& out);
  void report_search_updates();
  void remove_from_searches(const std::vector<int64_t>& expunged);
  std::vector<int64_t> sequence_numbers(const std::vector<int64_t>& uids);
  void cancel_update(Cursor& c);
  void cmd_cancelupdate(Cursor& c, const std::string&, bool) { cancel_update(c); }
  void scram_step(const std::string& base64);

  // STATUS items (RFC 9051 6.3.11) from "(" item *(SP item) ")"; nullopt on a syntax error
  // or an unknown item.
  static std::optional<std::vector<std::string>> status_items(Cursor& c);

  std::string status_line(const MailboxInfo& box, const std::vector<std::string>& items) const;

  // LIST with LIST-EXTENDED (RFC 5258) selection and return options, several patterns, and
  // LIST-STATUS (RFC 5819); LSUB as RFC 3501 has it.
  void list(Cursor& c, bool lsub);

  void status(Cursor& c);

  void select(Cursor& c, bool examine);

  void create(Cursor& c);

  void mailbox_command(Cursor& c, const std::string& name);

  // RFC 9208: one quota root, "", for all of a member's mailboxes; STORAGE in KiB.
  void quota(Cursor& c, const std::string& name);
  // RFC 5464 METADATA of mailboxes and the server.
  void setmetadata(Cursor& c);
  void getmetadata(Cursor& c);
  void cmd_setmetadata(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { setmetadata(c); }); }
  void cmd_getmetadata(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { getmetadata(c); }); }

  void rename(Cursor& c);

  // The messages a sequence set names: by sequence number, or by UID with `uid`.
  std::optional<std::vector<std::size_t>> resolve(const std::string& text, bool uid);

  // Takes these UIDs (ascending) out of the session's view and tells the client: an EXPUNGE
  // per message, highest first, or with QRESYNC one VANISHED (RFC 7162 3.2.10).
  void forget(const std::vector<int64_t>& uids);

  // RFC 9051 7.4.1, 7.5.2: what changed since the last look, as untagged responses.
  // Both lists are in UID order, so one walk finds what went, what changed and what came.
  void sync();

  void fetch(Cursor& c, bool uid);

  // A FETCH answers in pieces of about kFetchChunk bytes, each written before the next is
  // made: a FETCH of a whole big mailbox never sits in memory at once (RFC 9051 7.5.2 allows
  // the responses to come as they are ready).
  struct FetchJob {
    std::vector<std::size_t> chosen;
    std::vector<imap::FetchItem> items;
    bool needs_bytes = false, needs_envelope = false;
    bool needs_structure = false;  // BODY, BODYSTRUCTURE, BINARY or a part number: the stored structure
    bool uid = false;       // UID FETCH
    bool expunged = false;  // some chosen message was expunged by another session meanwhile
    std::size_t next = 0;
    // What the store holds for chosen[next, prepared): blob ids and ENVELOPEs, by UID.
    std::size_t prepared = 0;
    std::unordered_map<int64_t, std::string> blobs, envelopes;
    std::unordered_map<int64_t, int64_t> saved;  // RFC 8514 save dates, by UID
  };
  static constexpr std::size_t kFetchChunk = 256 << 10;
  static constexpr std::size_t kFetchBatch = 512;

  // One lock and one query for the next kFetchBatch messages instead of one per message.
  void prepare_fetch(FetchJob& job);

  void fetch_step(const std::shared_ptr<FetchJob>& job);

  void store(Cursor& c, bool uid);

  std::string uid_set(const std::vector<int64_t>& uids);

  void copy(Cursor& c, bool uid, bool move);
  // A member's COPY or MOVE into Junk teaches the spam filter these messages are spam; out
  // of Junk (but not to Trash), that they are ham; at most kMaxLessonMessages a command.
  // Failures are logged, never the command's.
  static constexpr std::size_t kMaxLessonMessages = 1000;
  struct SpamLesson {
    bool spam = false;
    std::vector<std::string> blobs;
  };
  SpamLesson spam_lesson(const std::vector<int64_t>& uids, const std::string& target_use);
  void learn(const SpamLesson& lesson);
  void teach_spam_filter(const std::vector<int64_t>& uids, const std::string& target_use);

  void expunge(Cursor& c, bool uid);

  void append(Cursor& c);

  // SEARCH (RFC 9051 6.4.4): criteria parsed into a tree (imap_search.h), compiled here into
  // tests over this session's view of the mailbox.
  using Words = imap::SearchWords;

  // One message as SEARCH criteria see it: the session's row, the store's (subject, blob),
  // its header section and, only when a criterion asks, its bytes.
  class Probe {
   public:
    Probe(std::size_t index, const Message& m, const CachedMessage* row, std::optional<std::string_view> header, BlobStore& blobs)
        : index(index), m(m), row(row), header_(header), blobs_(blobs) {}
    std::size_t index;
    const Message& m;
    const CachedMessage* row;  // null: another session expunged it meanwhile
    const std::string& bytes() const {
      if (!bytes_) bytes_ = row ? blobs_.read(row->blob) : std::string();
      return *bytes_;
    }
    std::string_view header() const {
      if (header_) return *header_;
      const auto& all = bytes();
      return std::string_view(all).substr(0, imap::header_end(all));
    }

   private:
    std::optional<std::string_view> header_;
    BlobStore& blobs_;
    mutable std::optional<std::string> bytes_;
  };

  using Test = std::function<bool(const Probe&)>;

  // RFC 9051 6.4.4 HEADER: a field with this name (any case) whose unfolded body holds the
  // needle (any case; an empty needle matches every message with the field).
  static bool header_contains(std::string_view header, std::string_view name, std::string_view needle);

  std::optional<Test> criterion(Words& w, bool uid_mode);

  // A parsed key as a test; nullopt when a set it names does not resolve. Notes what the
  // search will need read (rows, header sections) and whether it asked for MODSEQ.
  std::optional<Test> compile(const imap::SearchKey& k);

  void search(Cursor& c, bool uid);

  // ---- SORT and THREAD (RFC 5256) ----------------------------------------------------------
  imap::SortKeys keys_of(std::size_t i);

  // The messages SEARCH criteria select, as sequence numbers or UIDs.
  std::optional<std::vector<int64_t>> matching(Cursor& c, bool uid);

  // The positions of what SEARCH found, and the sort keys of each (base subjects only when
  // `subjects`: SORT by date or address needs none).
  void sort_keys(const std::vector<int64_t>& found, bool uid, std::vector<std::size_t>& chosen, std::vector<imap::SortKeys>& keys, bool subjects);

  void sort(Cursor& c, bool uid);

  // RFC 5256 THREAD (imap_thread.h has the algorithms).
  void thread(Cursor& c, bool uid);

  // The header section of a stored message: from the index, else cut from its file.
  std::string header_of(std::size_t i);

  // The unfolded value of a header field (the last one of that name).
  static std::string header_field(std::string_view header, std::string_view name);

  // ---- IDLE (RFC 2177 / RFC 9051 6.3.13) -------------------------------------------------
  // On the connection's executor, after the store changed the selected mailbox.
  void changed_elsewhere();

  void idle_sync();

  void idle_line(const RawCommand& command);

  std::shared_ptr<net::Connection> conn_;
  std::shared_ptr<const ImapSettings> settings_;
  CommandReader reader_;
  net::ReadBuffer chunk_{16 << 10};  // commands and literals; 16 KB reads as before
  std::string out_, pending_;
  std::function<void()> after_write_;
  std::function<void()> more_;  // the rest of a command answered in pieces
  bool writing_ = false, reading_ = false, closed_ = false, busy_ = false;
  bool utf8_names_ = false;
  bool idle_changed_ = false;  // the store changed the mailbox while IDLE could not answer yet
  // RFC 5267 4.3: searches with RETURN (UPDATE), live until CANCELUPDATE or the mailbox is
  // closed; the criteria as sent, re-run when the mailbox changes, and the UIDs they found.
  struct SearchContext {
    std::string tag, criteria;
    bool uid = false;
    std::vector<int64_t> uids;
  };
  static constexpr std::size_t kMaxSearchContexts = 10;
  std::vector<SearchContext> contexts_;
  // RFC 5465 NOTIFY: what the client asked to hear, and what it was last told of.
  struct NotifyGroup {
    enum class Filter { selected, selected_delayed, personal, subscribed, subtree, mailboxes } filter = Filter::personal;
    std::vector<std::string> names;  // subtree, mailboxes
    std::set<std::string> events;    // "MessageNew", "FlagChange"...
    std::vector<std::string> fetch;  // MessageNew's fetch attributes (selected only)
  };
  struct NotifyState {
    std::vector<NotifyGroup> groups;  // empty: NOTIFY NONE
    uint64_t watcher = 0;
    std::map<std::string, MailboxInfo> boxes;
    std::set<std::string> subscribed;
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> metadata;
  };
  std::optional<NotifyState> notify_;
  bool notify_changed_ = false;
  void notify(Cursor& c);
  void notify_stop();
  void notify_collect();
  std::set<std::string> notify_events_for(const std::string& name) const;
  std::set<std::string> notify_events_for(const std::string& name, const std::set<std::string>& subscribed) const;
  const NotifyGroup* notify_selected() const;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> notify_metadata();
  void cmd_notify(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { notify(c); }); }
  std::unique_ptr<ScramExchange> scram_;  // an AUTHENTICATE SCRAM-SHA-256 under way
  std::string scram_proved_;              // proved and allowed: waiting for the empty answer
  bool sasl_pending_ = false, idling_ = false, rev2_ = false, condstore_ = false, searched_modseq_ = false, qresync_ = false;
  bool search_needs_row_ = false, search_needs_header_ = false;  // what the SEARCH being parsed reads
  std::vector<int64_t>* found_only_ = nullptr;  // SORT and THREAD borrow SEARCH's matching
  State state_ = State::not_authenticated;
  std::string current_tag_ = "*";
  RawCommand command_;
  std::string handle_;
  uint64_t live_id_ = 0;   // in settings_->live once logged in
  std::string revoked_;    // why the registry ended this session
  std::string mailbox_;
  bool read_only_ = false;
  std::vector<Message> messages_;
  std::unordered_set<int64_t> recent_;  // UIDs this session was the first to see
  std::unique_ptr<imap::DeflateStreams> deflate_;  // RFC 4978, once COMPRESS DEFLATE was answered
  bool deflate_writes_ = false;                     // from the write after that answer on
  std::vector<int64_t> saved_;          // RFC 5182 SEARCHRES: UIDs of the last SEARCH RETURN (SAVE), for "$"
  std::optional<std::vector<std::string>> esort_returns_;  // RFC 5267: the SORT being answered asked RETURN (...)
  std::unordered_map<int64_t, std::string> keywords_;  // of the messages that have any, by UID
  std::string announced_;                              // keywords the last FLAGS response named
  std::optional<MailboxStore::Hold> held_;  // the selected mailbox, while the store keeps its cache
  int64_t state_uidnext_ = 0, state_modseq_ = 0;
};

}  // namespace coop::mail::imap_server
