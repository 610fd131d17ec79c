// The IMAP server state machine (RFC 9051 3: not authenticated, authenticated, selected,
// logout). Commands run one at a time on the blocking pool (registry and SQLite); reading
// and writing stay on the connection's strand.
#include "workers/mail/imap_session.h"

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

#include "common/auth/member_client.h"
#include "common/error.h"
#include "common/mail/mailbox_formats.h"
#include "common/net/read_buffer.h"
#include "common/net/tcp_listener.h"
#include "common/text.h"
#include "workers/mail/imap_fetch.h"
#include "workers/mail/imap_search.h"
#include "workers/mail/imap_thread.h"
#include "workers/mail/mail_service.h"

namespace coop::mail {

namespace {

namespace asio = boost::asio;

// Until a client has logged in it may send no more than a login needs.
constexpr imap::ReaderLimits kBeforeLogin{8 << 10, 8 << 10, 16 << 10};

// Text that goes back to a client inside a reply: control characters (a CRLF in a mailbox
// name the client sent, say) cannot end the line early.
std::string reply_text(std::string_view text) {
  std::string out;
  for (char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) ? ' ' : c;
  return out;
}
using imap::CommandReader;
using imap::Cursor;
using imap::RawCommand;

constexpr const char* kSystemFlags[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"};
constexpr unsigned kFlagBits[] = {kSeen, kAnswered, kFlagged, kDeleted, kDraft};

std::string flags_text(unsigned flags, const std::string& keywords = {}) {
  std::string out = "(";
  for (std::size_t i = 0; i < 5; ++i)
    if (flags & kFlagBits[i]) out += (out.size() > 1 ? " " : "") + std::string(kSystemFlags[i]);
  if (!keywords.empty()) out += (out.size() > 1 ? " " : "") + keywords;
  return out + ")";
}

bool has_keyword(std::string_view keywords, std::string_view keyword) {
  const std::string wanted = ascii_lower(keyword);
  for (std::size_t at = 0; at < keywords.size();) {
    const auto end = std::min(keywords.find(' ', at), keywords.size());
    if (ascii_lower(keywords.substr(at, end - at)) == wanted) return true;
    at = end + 1;
  }
  return false;
}

std::string upper(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

bool loopback(const std::string& address) { return address == "127.0.0.1" || address == "::1" || address.rfind("127.", 0) == 0; }

// IMAP's list-mailbox wildcards (RFC 9051 6.3.9): * matches anything, % anything but "/".
bool wildcard_match(std::string_view pattern, std::string_view name) {
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

Message session_row(const CachedMessage& m) { return {m.uid, m.flags, m.size, m.internal_date, m.modseq}; }

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const ImapSettings> settings)
      : conn_(std::move(connection)), settings_(std::move(settings)), reader_(kBeforeLogin) {}

  ~Session() {
    if (live_id_ != 0) settings_->live->remove(handle_, live_id_);
  }

  void start() {
    conn_->set_idle_timeout(settings_->login_timeout);
    out_ += "* OK [CAPABILITY " + capabilities() + "] " + settings_->hostname + " IMAP4rev2 ready\r\n";
    flush();
  }

 private:
  enum class State { not_authenticated, authenticated, selected, logout };

  // ---- I/O on the strand ---------------------------------------------------------------
  void flush() {
    // While a command runs on the pool it owns out_: its end posts the next flush().
    if (writing_ || closed_ || busy_) return;
    // RFC 9051 7.1.5: a session the registry revoked hears BYE and ends, IDLE or not.
    if (!revoked_.empty() && state_ != State::logout) {
      out_ += "* BYE " + revoked_ + "\r\n";
      state_ = State::logout;
      more_ = nullptr;
    }
    if (out_.empty()) {
      if (state_ == State::logout) return finish();
      if (more_ && !busy_) {
        auto step = std::move(more_);
        more_ = nullptr;
        return run_blocking(std::move(step));
      }
      if (idling_ && idle_changed_) return idle_sync();
      if (!busy_) pump();
      return;
    }
    writing_ = true;
    pending_.swap(out_);
    out_.clear();
    conn_->async_write(asio::buffer(pending_), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      self->writing_ = false;
      self->pending_.clear();
      if (ec) return self->finish();
      if (self->after_write_) {
        auto next = std::move(self->after_write_);
        self->after_write_ = nullptr;
        return next();
      }
      self->flush();
    });
  }

  void read() {
    if (reading_ || closed_) return;
    reading_ = true;
    conn_->async_read_some(asio::buffer(chunk_.data(), chunk_.size()), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      self->reading_ = false;
      if (ec) return self->finish();
      self->reader_.feed(self->chunk_.filled(n));
      if (!self->busy_ && !self->writing_) self->pump();
    });
  }

  void finish() {
    if (closed_) return;
    closed_ = true;
    conn_->close();
    // The store's lock may wait on a commit: not on this thread.
    release_when_closed();
  }

  void release_when_closed() {
    if (closed_ && held_ && !busy_) {
      busy_ = true;
      settings_->runner([self = shared_from_this()] { self->unselect(); });
    }
  }

  // Lets go of the selected mailbox's messages (CLOSE, UNSELECT, another SELECT, the end).
  void unselect() {
    messages_ = {};
    keywords_ = {};
    if (held_) service().mailboxes().release(handle_, *held_);
    held_.reset();
  }

  // Takes commands from what was read until one needs the pool or more bytes are needed.
  void pump() {
    if (state_ == State::logout) return flush();
    while (!closed_ && !busy_ && !writing_) {
      switch (reader_.next()) {
        case CommandReader::Status::need_more:
          if (!out_.empty()) return flush();  // replies to refused commands first
          read();
          return;
        case CommandReader::Status::need_continuation:
          out_ += "+ Ready for literal data\r\n";
          flush();
          return;
        case CommandReader::Status::refused:
          out_ += reader_.reply() + "\r\n";
          break;
        case CommandReader::Status::fatal:
          out_ += "* BYE " + reader_.reply() + "\r\n";
          state_ = State::logout;
          flush();
          return;
        case CommandReader::Status::command:
          dispatch(reader_.take());
          if (!out_.empty() || busy_) {
            flush();
            return;
          }
          break;
      }
    }
  }

  // Runs work on the blocking pool, then writes what it wrote and goes on.
  void run_blocking(std::function<void()> work) {
    busy_ = true;
    settings_->runner([self = shared_from_this(), work = std::move(work)] {
      try {
        work();
      } catch (const std::exception& e) {
        // Details (SQL, paths) go to the log, not to the client.
        spdlog::error("imap {}: {}", self->handle_, e.what());
        self->out_ += self->current_tag_ + " NO [SERVERBUG] the server could not do that\r\n";
      }
      asio::post(self->conn_->executor(), [self] {
        self->busy_ = false;
        if (self->closed_) return self->release_when_closed();
        self->flush();
      });
    });
  }

  std::string capabilities() const {
    std::string caps = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE CONDSTORE QUOTA QUOTA=RES-STORAGE LIST-EXTENDED LIST-STATUS SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES QRESYNC BINARY UTF8=ACCEPT";
    const bool secure = conn_->is_tls() || (settings_->plaintext_loopback && loopback(conn_->remote_address()));
    if (state_ == State::not_authenticated) {
      if (!conn_->is_tls() && settings_->tls) caps += " STARTTLS";
      caps += secure ? " AUTH=PLAIN" : " LOGINDISABLED";
    }
    return caps;
  }

  bool secure() const { return conn_->is_tls() || (settings_->plaintext_loopback && loopback(conn_->remote_address())); }

  void tagged(const std::string& text) { out_ += current_tag_ + " " + text + "\r\n"; }
  void bad(const std::string& why) { tagged("BAD " + why); }

  // ---- commands ---------------------------------------------------------------------------
  void dispatch(RawCommand command) {
    if (sasl_pending_) return sasl_response(command);
    if (idling_) return idle_line(command);
    // Kept until the next command: the cursor handed to the pool reads from it.
    command_ = std::move(command);
    Cursor c(command_);
    const auto tag = c.tag();
    current_tag_ = tag ? *tag : "*";
    if (!tag || !c.space()) {
      out_ += "* BAD a command starts with a tag and a space\r\n";
      return;
    }
    auto name_atom = c.atom();
    if (!name_atom) return bad("no command");
    std::string name = upper(*name_atom);
    bool uid = false;
    if (name == "UID") {
      if (!c.space() || !(name_atom = c.atom())) return bad("UID what?");
      name = upper(*name_atom);
      uid = true;
    }
    // One table says which commands there are, in which states they may be given and
    // which may follow UID (RFC 9051 6 and 6.4.9); the answers for a command given in the
    // wrong state follow from it.
    const Command* known = find_command(name);
    if (uid && (!known || !known->after_uid)) return bad("UID " + name + " is not a command");
    if (!known) return bad("unknown command " + name);
    switch (known->needs) {
      case Needs::any:
        break;
      case Needs::not_authenticated:
        if (state_ != State::not_authenticated) return bad("already authenticated");
        break;
      case Needs::authenticated:
        if (state_ == State::not_authenticated) return bad("log in first");
        break;
      case Needs::selected:
        if (state_ == State::not_authenticated) return bad("log in first");
        if (state_ != State::selected) return bad("select a mailbox first");
        break;
    }
    (this->*known->run)(c, name, uid);
  }

  // ---- the command table --------------------------------------------------------------------
  enum class Needs { any, not_authenticated, authenticated, selected };
  using Handler = void (Session::*)(Cursor&, const std::string& name, bool uid);
  struct Command {
    std::string_view name;
    Needs needs;
    bool after_uid;  // may follow UID
    Handler run;
  };

  static const Command* find_command(std::string_view name) {
    static constexpr Command kCommands[] = {
        {"CAPABILITY", Needs::any, false, &Session::cmd_capability},
        {"NOOP", Needs::any, false, &Session::cmd_noop},
        {"CHECK", Needs::any, false, &Session::cmd_noop},
        {"LOGOUT", Needs::any, false, &Session::cmd_logout},
        {"ID", Needs::any, false, &Session::cmd_id},
        {"STARTTLS", Needs::not_authenticated, false, &Session::cmd_starttls},
        {"LOGIN", Needs::not_authenticated, false, &Session::cmd_login},
        {"AUTHENTICATE", Needs::not_authenticated, false, &Session::cmd_authenticate},
        {"ENABLE", Needs::authenticated, false, &Session::cmd_enable},
        {"NAMESPACE", Needs::authenticated, false, &Session::cmd_namespace},
        {"IDLE", Needs::authenticated, false, &Session::cmd_idle},
        {"LIST", Needs::authenticated, false, &Session::cmd_list},
        {"LSUB", Needs::authenticated, false, &Session::cmd_list},
        {"STATUS", Needs::authenticated, false, &Session::cmd_status},
        {"SELECT", Needs::authenticated, false, &Session::cmd_select},
        {"EXAMINE", Needs::authenticated, false, &Session::cmd_select},
        {"CREATE", Needs::authenticated, false, &Session::cmd_create},
        {"DELETE", Needs::authenticated, false, &Session::cmd_mailbox},
        {"SUBSCRIBE", Needs::authenticated, false, &Session::cmd_mailbox},
        {"UNSUBSCRIBE", Needs::authenticated, false, &Session::cmd_mailbox},
        {"RENAME", Needs::authenticated, false, &Session::cmd_rename},
        {"GETQUOTAROOT", Needs::authenticated, false, &Session::cmd_quota},
        {"GETQUOTA", Needs::authenticated, false, &Session::cmd_quota},
        {"SETQUOTA", Needs::authenticated, false, &Session::cmd_setquota},
        {"APPEND", Needs::authenticated, false, &Session::cmd_append},
        {"FETCH", Needs::selected, true, &Session::cmd_fetch},
        {"SEARCH", Needs::selected, true, &Session::cmd_search},
        {"SORT", Needs::selected, true, &Session::cmd_sort},
        {"THREAD", Needs::selected, true, &Session::cmd_thread},
        {"STORE", Needs::selected, true, &Session::cmd_store},
        {"COPY", Needs::selected, true, &Session::cmd_copy},
        {"MOVE", Needs::selected, true, &Session::cmd_copy},
        {"EXPUNGE", Needs::selected, true, &Session::cmd_expunge},
        {"CLOSE", Needs::selected, false, &Session::cmd_close},
        {"UNSELECT", Needs::selected, false, &Session::cmd_close},
    };
    for (const auto& command : kCommands)
      if (command.name == name) return &command;
    return nullptr;
  }

  void cmd_capability(Cursor&, const std::string&, bool) {
    out_ += "* CAPABILITY " + capabilities() + "\r\n";
    tagged("OK CAPABILITY completed");
  }
  void cmd_noop(Cursor&, const std::string& name, bool) {
    if (state_ != State::selected) return tagged("OK " + name + " completed");
    run_blocking([this, name] {
      sync();
      tagged("OK " + name + " completed");
    });
  }
  void cmd_logout(Cursor&, const std::string&, bool) {
    out_ += "* BYE " + settings_->hostname + " closing\r\n";
    tagged("OK LOGOUT completed");
    state_ = State::logout;
  }
  void cmd_id(Cursor&, const std::string&, bool) {
    // RFC 2971: who we are, whatever the client says.
    out_ += "* ID (\"name\" \"coop\" \"vendor\" \"coop\")\r\n";
    tagged("OK ID completed");
  }
  void cmd_starttls(Cursor& c, const std::string&, bool) { starttls(c); }
  void cmd_login(Cursor& c, const std::string&, bool) { login(c); }
  void cmd_authenticate(Cursor& c, const std::string&, bool) { authenticate(c); }
  void cmd_enable(Cursor& c, const std::string&, bool) {
    // Nothing to switch on beyond what every session has (RFC 9051 6.3.1).
    std::string enabled;
    while (c.space())
      if (auto what = c.atom(); what && upper(*what) == "IMAP4REV2") {
        enabled += " IMAP4rev2";
        rev2_ = utf8_names_ = true;
      } else if (what && upper(*what) == "UTF8=ACCEPT") {
        // RFC 6855 3: mailbox names and strings in UTF-8 from now on.
        enabled += " UTF8=ACCEPT";
        utf8_names_ = true;
      } else if (what && upper(*what) == "CONDSTORE") {
        enabled += " CONDSTORE";
        condstore_ = true;
      } else if (what && upper(*what) == "QRESYNC") {
        // RFC 7162 3.2.3: QRESYNC implies CONDSTORE.
        enabled += " QRESYNC";
        qresync_ = condstore_ = true;
      }
    out_ += "* ENABLED" + enabled + "\r\n";
    tagged("OK ENABLE completed");
  }
  void cmd_namespace(Cursor&, const std::string&, bool) {
    out_ += "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n";
    tagged("OK NAMESPACE completed");
  }
  void cmd_idle(Cursor& c, const std::string&, bool) {
    if (!c.at_end()) return bad("IDLE takes nothing");
    idling_ = true;
    idle_changed_ = true;  // what changed since the last command comes first
    out_ += "+ idling\r\n";
  }
  void cmd_list(Cursor& c, const std::string& name, bool) {
    run_blocking([this, c, name]() mutable { list(c, name == "LSUB"); });
  }
  void cmd_status(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { status(c); }); }
  void cmd_select(Cursor& c, const std::string& name, bool) {
    run_blocking([this, c, name]() mutable { select(c, name == "EXAMINE"); });
  }
  void cmd_create(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { create(c); }); }
  void cmd_mailbox(Cursor& c, const std::string& name, bool) {
    run_blocking([this, c, name]() mutable { mailbox_command(c, name); });
  }
  void cmd_rename(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { rename(c); }); }
  void cmd_quota(Cursor& c, const std::string& name, bool) { run_blocking([this, c, name]() mutable { quota(c, name); }); }
  void cmd_setquota(Cursor&, const std::string&, bool) {
    tagged("NO [NOPERM] quotas are set in the member registry (coop member set --quota)");
  }
  void cmd_append(Cursor& c, const std::string&, bool) { run_blocking([this, c]() mutable { append(c); }); }
  void cmd_fetch(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { fetch(c, uid); }); }
  void cmd_search(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { search(c, uid); }); }
  void cmd_sort(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { sort(c, uid); }); }
  void cmd_thread(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { thread(c, uid); }); }
  void cmd_store(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { store(c, uid); }); }
  void cmd_copy(Cursor& c, const std::string& name, bool uid) {
    run_blocking([this, c, uid, name]() mutable { copy(c, uid, name == "MOVE"); });
  }
  void cmd_expunge(Cursor& c, const std::string&, bool uid) { run_blocking([this, c, uid]() mutable { expunge(c, uid); }); }
  void cmd_close(Cursor&, const std::string& name, bool) {
    const bool expunging = name == "CLOSE" && !read_only_;
    run_blocking([this, expunging, name] {
      // RFC 9051 6.4.1: CLOSE expunges silently; UNSELECT does not.
      if (expunging) service().mailboxes().expunge(handle_, mailbox_, std::nullopt);
      state_ = State::authenticated;
      unselect();
      tagged("OK " + name + " completed");
    });
  }

  MailService& service() { return *settings_->service; }

  // ---- mailbox names: UTF-8 after ENABLE IMAP4rev2 or UTF8=ACCEPT, modified UTF-7 before
  // (RFC 3501 5.1.3, RFC 6855 3); the store keeps UTF-8 ------------------------------------
  std::string from_client(const std::string& name) const {
    // 8-bit bytes are UTF-8 whatever was enabled; text that is not modified UTF-7 is taken
    // as it is, and listed back in modified UTF-7 ("A&B" as "A&-B").
    if (utf8_names_ || std::any_of(name.begin(), name.end(), [](unsigned char ch) { return ch >= 0x80; })) return name;
    return imap::from_modified_utf7(name).value_or(name);
  }

  std::optional<std::string> mailbox_arg(Cursor& c) const {
    auto name = c.mailbox();
    if (name) name = imap::normalize_mailbox(from_client(*name));
    return name;
  }

  std::string mailbox_text(const std::string& name) const { return imap::quote(utf8_names_ ? name : imap::to_modified_utf7(name)); }

  // ---- keywords (RFC 9051 2.3.2) ----------------------------------------------------------
  const std::string& keywords_of(int64_t uid) const {
    static const std::string none;
    const auto it = keywords_.find(uid);
    return it == keywords_.end() ? none : it->second;
  }

  void set_keywords(int64_t uid, std::string words) {
    if (words.empty()) keywords_.erase(uid);
    else keywords_[uid] = std::move(words);
  }

  std::string flag_list() const {
    return "\\Answered \\Flagged \\Deleted \\Seen \\Draft" + (announced_.empty() ? std::string() : " " + announced_);
  }

  // Adds these keywords to the FLAGS list; true when one was new.
  bool learn_keywords(std::string_view words) {
    bool learned = false;
    for (std::size_t at = 0; at < words.size();) {
      const auto end = std::min(words.find(' ', at), words.size());
      const auto word = words.substr(at, end - at);
      if (!word.empty() && !has_keyword(announced_, word)) {
        announced_ += (announced_.empty() ? "" : " ") + std::string(word);
        learned = true;
      }
      at = end + 1;
    }
    return learned;
  }

  // RFC 9051 7.3.5: a client learns of a new keyword by a new FLAGS response, before the
  // FETCH responses that show it.
  void announce_keywords(std::string_view words) {
    if (learn_keywords(words)) out_ += "* FLAGS (" + flag_list() + ")\r\n";
  }

  void starttls(Cursor& c) {
    if (!c.at_end()) return bad("STARTTLS takes nothing");
    if (conn_->is_tls() || !settings_->tls) return bad("TLS is not available here");
    // RFC 9051 11.1: nothing the client sent after STARTTLS in the clear is kept.
    reader_.drop_buffered();
    tagged("OK begin TLS negotiation now");
    after_write_ = [self = shared_from_this()] {
      self->conn_->async_start_tls([self](boost::system::error_code ec) {
        if (ec) return self->finish();
        self->reader_.drop_buffered();
        self->pump();
      });
    };
  }

  // A store refusal as its RFC 5530 response code (imap::response_code) and message.
  void refused(const Error& e) { tagged("NO [" + imap::response_code(e.code()) + "] " + reply_text(e.what())); }

  void authenticated(const std::string& handle) {
    handle_ = handle;
    conn_->set_idle_timeout(settings_->autologout);
    conn_->mark_authenticated();
    if (settings_->live)
      live_id_ = settings_->live->add(handle, [weak = weak_from_this()](const std::string& reason) {
        if (auto self = weak.lock())
          asio::post(self->conn_->executor(), [self, reason] {
            self->revoked_ = reason;
            self->flush();
          });
      });
    reader_.set_limits(settings_->limits);
    state_ = State::authenticated;
    tagged("OK [CAPABILITY " + capabilities() + "] logged in");
  }

  void verify(const std::string& user, const std::string& password) {
    run_blocking([this, user, password] {
      try {
        const auto member = auth::verify_credentials(*settings_->home, user, password, "mail", conn_->remote_address());
        authenticated(member.handle);
      } catch (const Error& e) {
        // Why a login failed stays unsaid: a guesser learns nothing from it.
        const auto code = imap::response_code(e.code());
        tagged("NO [" + code + "] " + (code == "AUTHENTICATIONFAILED" ? "Authentication failed." : reply_text(e.what())));
      }
    });
  }

  void login(Cursor& c) {
    if (!secure()) return tagged("NO [PRIVACYREQUIRED] use STARTTLS or port 993 first");
    std::optional<std::string> user, password;
    if (!c.space() || !(user = c.astring()) || !c.space() || !(password = c.astring()) || !c.at_end())
      return bad("LOGIN user password");
    verify(*user, *password);
  }

  // RFC 9051 6.2.2 with SASL-IR (RFC 4959); PLAIN is RFC 4616.
  void authenticate(Cursor& c) {
    std::optional<std::string> mechanism;
    if (!c.space() || !(mechanism = c.atom())) return bad("AUTHENTICATE mechanism");
    if (upper(*mechanism) != "PLAIN") return tagged("NO [CANNOT] only PLAIN");
    if (!secure()) return tagged("NO [PRIVACYREQUIRED] use STARTTLS or port 993 first");
    if (c.space()) {
      auto initial = c.atom();
      if (!initial) return bad("the initial response is base64");
      return plain(*initial == "=" ? std::string() : *initial);
    }
    sasl_pending_ = true;
    out_ += "+ \r\n";
  }

  void sasl_response(const RawCommand& command) {
    sasl_pending_ = false;
    const std::string line = command.lines.empty() ? std::string() : command.lines.front();
    if (line == "*") return bad("authentication cancelled");
    plain(line);
  }

  void plain(const std::string& base64) {
    const auto response = imap::decode_sasl_plain(base64);
    if (!response) return bad("PLAIN is base64 of authzid NUL authcid NUL password");
    if (!response->authzid.empty() && response->authzid != response->authcid)
      return tagged("NO [AUTHORIZATIONFAILED] no acting for others");
    verify(response->authcid, response->password);
  }

  // STATUS items (RFC 9051 6.3.11) from "(" item *(SP item) ")"; nullopt on a syntax error
  // or an unknown item.
  static std::optional<std::vector<std::string>> status_items(Cursor& c) {
    std::vector<std::string> items;
    if (!c.take('(')) return std::nullopt;
    for (;;) {
      auto item = c.atom();
      if (!item) return std::nullopt;
      const std::string what = upper(*item);
      static const std::set<std::string> kKnown = {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "RECENT", "SIZE", "HIGHESTMODSEQ"};
      if (!kKnown.count(what)) return std::nullopt;
      items.push_back(what);
      if (c.take(')')) return items;
      if (!c.space()) return std::nullopt;
    }
  }

  std::string status_line(const MailboxInfo& box, const std::vector<std::string>& items) const {
    std::string out;
    for (const auto& what : items) {
      int64_t value = 0;
      if (what == "MESSAGES") value = box.messages;
      else if (what == "UIDNEXT") value = box.uidnext;
      else if (what == "UIDVALIDITY") value = box.uidvalidity;
      else if (what == "UNSEEN") value = box.unseen;
      else if (what == "SIZE") value = box.bytes;
      else if (what == "HIGHESTMODSEQ") value = box.highest_modseq;
      out += (out.empty() ? "" : " ") + what + " " + std::to_string(value);
    }
    return "* STATUS " + mailbox_text(box.name) + " (" + out + ")\r\n";
  }

  // LIST with LIST-EXTENDED (RFC 5258) selection and return options, several patterns, and
  // LIST-STATUS (RFC 5819); LSUB as RFC 3501 has it.
  void list(Cursor& c, bool lsub) {
    const std::string word = lsub ? "LSUB" : "LIST";
    if (!c.space()) return bad(word + " reference pattern");
    bool only_subscribed = false, only_special = false, return_subscribed = false;
    std::optional<std::vector<std::string>> return_status;
    if (!lsub && c.take('(')) {
      while (!c.take(')')) {
        c.take(' ');
        auto option = c.atom();
        if (!option) return bad("LIST selection options");
        const std::string o = upper(*option);
        if (o == "SUBSCRIBED") only_subscribed = return_subscribed = true;
        else if (o == "SPECIAL-USE") only_special = true;
        else if (o != "REMOTE" && o != "RECURSIVEMATCH") return bad("unknown LIST selection option " + o);
      }
      if (!c.space()) return bad("LIST reference");
    }
    std::optional<std::string> reference;
    if (!(reference = c.astring())) return bad(word + " reference pattern");
    reference = from_client(*reference);
    if (!c.space()) return bad(word + " reference pattern");
    std::vector<std::string> patterns;
    if (!lsub && c.take('(')) {
      while (!c.take(')')) {
        c.take(' ');
        auto pattern = c.list_mailbox();
        if (!pattern) return bad("LIST patterns");
        patterns.push_back(from_client(*pattern));
      }
    } else if (auto pattern = c.list_mailbox()) {
      patterns.push_back(from_client(*pattern));
    } else {
      return bad(word + " reference pattern");
    }
    if (!lsub && c.space()) {
      auto keyword = c.atom();
      if (!keyword || upper(*keyword) != "RETURN" || !c.space() || !c.take('(')) return bad("LIST ... RETURN (options)");
      while (!c.take(')')) {
        c.take(' ');
        auto option = c.atom();
        if (!option) return bad("LIST return options");
        const std::string o = upper(*option);
        if (o == "SUBSCRIBED") return_subscribed = true;
        else if (o == "STATUS") {
          if (!c.space() || !(return_status = status_items(c))) return bad("RETURN (STATUS (items))");
        } else if (o != "CHILDREN" && o != "SPECIAL-USE") {
          return bad("unknown LIST return option " + o);
        }
      }
    }
    if (!c.at_end()) return bad(word + " reference pattern");
    if (patterns.size() == 1 && patterns.front().empty()) {
      out_ += "* " + word + " (\\Noselect) \"/\" \"\"\r\n";
      return tagged("OK " + word + " completed");
    }
    auto boxes = service().mailboxes().mailboxes(handle_);
    std::set<std::string> names;
    for (const auto& b : boxes) names.insert(b.name);
    // RFC 9051 6.3.9: a parent that does not exist but has children is listed all the same,
    // \NonExistent (\Noselect to IMAP4rev1 clients), so clients can show the hierarchy.
    std::set<std::string> implied;
    for (const auto& name : names)
      for (auto slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1))
        if (!names.count(name.substr(0, slash))) implied.insert(name.substr(0, slash));
    const bool list_implied = !lsub && !only_subscribed && !only_special;
    for (const auto& name : implied) {
      MailboxInfo placeholder;
      placeholder.name = name;
      placeholder.subscribed = false;
      boxes.push_back(placeholder);
    }
    for (const auto& b : boxes) {
      const bool exists = !implied.count(b.name);
      if (!exists && !list_implied) continue;
      bool matches = false;
      for (const auto& pattern : patterns) {
        const std::string full = *reference + pattern;
        matches = matches || wildcard_match(full, b.name) || (b.name == "INBOX" && wildcard_match(upper(full), "INBOX"));
      }
      if (!matches || ((lsub || only_subscribed) && !b.subscribed) || (only_special && b.special_use.empty())) continue;
      bool children = false;
      for (const auto& n : names) children = children || n.rfind(b.name + "/", 0) == 0;
      std::string attributes = children ? "\\HasChildren" : "\\HasNoChildren";
      if (!exists) attributes = std::string(rev2_ ? "\\NonExistent" : "\\Noselect") + " \\HasChildren";
      if (!b.special_use.empty()) attributes += " " + b.special_use;
      if (return_subscribed && b.subscribed) attributes += " \\Subscribed";
      out_ += "* " + word + " (" + attributes + ") \"/\" " + mailbox_text(b.name) + "\r\n";
      if (return_status && exists) out_ += status_line(b, *return_status);
    }
    tagged("OK " + word + " completed");
  }

  void status(Cursor& c) {
    std::optional<std::string> mailbox;
    if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.space()) return bad("STATUS mailbox (items)");
    const auto items = status_items(c);
    if (!items || !c.at_end()) return bad("STATUS mailbox (items)");
    const auto boxes = service().mailboxes().mailboxes(handle_);
    const auto box = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.name == *mailbox; });
    if (box == boxes.end()) return tagged("NO [NONEXISTENT] no such mailbox");
    out_ += status_line(*box, *items);
    tagged("OK STATUS completed");
  }

  void select(Cursor& c, bool examine) {
    std::optional<std::string> mailbox;
    if (!c.space() || !(mailbox = mailbox_arg(c))) return bad("SELECT mailbox");
    // RFC 7162 3.1.8: SELECT mailbox (CONDSTORE) enables it.
    std::optional<std::tuple<int64_t, int64_t, std::string>> resync;  // uidvalidity, modseq, known UIDs
    if (c.space()) {
      const std::string parameters = upper(c.rest_of_line());
      if (parameters == "(CONDSTORE)") {
        condstore_ = true;
      } else if (parameters.rfind("(QRESYNC (", 0) == 0 && parameters.size() > 12 && parameters.compare(parameters.size() - 2, 2, "))") == 0) {
        // RFC 7162 3.2.5: (QRESYNC (uidvalidity modseq [known-uids])), after ENABLE QRESYNC.
        if (!qresync_) return bad("ENABLE QRESYNC first");
        const std::string inside = parameters.substr(10, parameters.size() - 12);
        std::vector<std::string> parts;
        for (std::size_t at = 0; at <= inside.size();) {
          const auto end = std::min(inside.find(' ', at), inside.size());
          if (end > at) parts.push_back(inside.substr(at, end - at));
          at = end + 1;
        }
        const bool numbers = parts.size() >= 2 && parts.size() <= 3 && parts[0].size() <= 18 && parts[1].size() <= 18 &&
                             parts[0].find_first_not_of("0123456789") == std::string::npos &&
                             parts[1].find_first_not_of("0123456789") == std::string::npos;
        if (!numbers || parts[0].empty() || parts[1].empty()) return bad("QRESYNC (uidvalidity modseq [known-uids])");
        resync.emplace(std::stoll(parts[0]), std::stoll(parts[1]), parts.size() == 3 ? parts[2] : std::string());
      } else {
        return bad("SELECT parameters: (CONDSTORE) or (QRESYNC (...))");
      }
    }
    state_ = State::authenticated;  // RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected
    // Held before the last one is let go: SELECT of the same mailbox keeps its cache.
    // The store tells of every change to the mailbox; an IDLE session answers at once.
    auto changed = [weak = weak_from_this(), executor = conn_->executor()] {
      asio::post(executor, [weak] {
        if (auto self = weak.lock()) self->changed_elsewhere();
      });
    };
    const auto held = service().mailboxes().hold(handle_, *mailbox, std::move(changed));
    unselect();
    held_ = held;
    if (!held_) return tagged("NO [NONEXISTENT] no such mailbox");
    mailbox_ = *mailbox;
    read_only_ = examine;
    int64_t uidvalidity = 0;
    keywords_.clear();
    announced_.clear();
    service().mailboxes().with_cache(handle_, mailbox_, [&](const MailboxCache& cache) {
      messages_.reserve(cache.messages.size());
      for (const auto& m : cache.messages) {
        messages_.push_back(session_row(m));
        if (!m.keywords.empty()) keywords_.emplace(m.uid, m.keywords);
      }
      uidvalidity = cache.uidvalidity;
      state_uidnext_ = cache.uidnext;
      state_modseq_ = cache.highest_modseq;
    });
    for (const auto& [uid, words] : keywords_) learn_keywords(words);
    out_ += "* FLAGS (" + flag_list() + ")\r\n";
    // RFC 9051 7.1: \\* says clients may make new keywords.
    out_ += examine ? "* OK [PERMANENTFLAGS ()] read-only\r\n" : "* OK [PERMANENTFLAGS (" + flag_list() + " \\*)] flags\r\n";
    out_ += "* " + std::to_string(messages_.size()) + " EXISTS\r\n* 0 RECENT\r\n";
    for (std::size_t i = 0; i < messages_.size(); ++i)
      if (!(messages_[i].flags & kSeen)) {
        out_ += "* OK [UNSEEN " + std::to_string(i + 1) + "] first unseen\r\n";
        break;
      }
    out_ += "* OK [UIDVALIDITY " + std::to_string(uidvalidity) + "] UIDs valid\r\n";
    out_ += "* OK [UIDNEXT " + std::to_string(state_uidnext_) + "] predicted next UID\r\n";
    out_ += "* OK [HIGHESTMODSEQ " + std::to_string(state_modseq_) + "] modseq\r\n";
    // RFC 9051 6.3.2: an IMAP4rev2 client also gets the mailbox's LIST.
    if (rev2_) out_ += "* LIST () \"/\" " + mailbox_text(mailbox_) + "\r\n";
    // RFC 7162 3.2.5.2: what went and what changed since the client's last look.
    if (resync && std::get<0>(*resync) == uidvalidity) {
      auto vanished = service().mailboxes().expunged_since(handle_, mailbox_, std::get<1>(*resync));
      if (!std::get<2>(*resync).empty()) {
        const auto known = imap::parse_sequence_set(std::get<2>(*resync), static_cast<uint32_t>(std::max<int64_t>(state_uidnext_, 1)));
        if (known)
          vanished.erase(std::remove_if(vanished.begin(), vanished.end(), [&](int64_t u) { return !known->contains(static_cast<uint32_t>(u)); }),
                         vanished.end());
      }
      if (!vanished.empty()) out_ += "* VANISHED (EARLIER) " + uid_set(vanished) + "\r\n";
      for (std::size_t i = 0; i < messages_.size(); ++i)
        if (messages_[i].modseq > std::get<1>(*resync))
          out_ += "* " + std::to_string(i + 1) + " FETCH (UID " + std::to_string(messages_[i].uid) + " FLAGS " +
                  flags_text(messages_[i].flags, keywords_of(messages_[i].uid)) + " MODSEQ (" + std::to_string(messages_[i].modseq) + "))\r\n";
    }
    state_ = State::selected;
    tagged(std::string(examine ? "OK [READ-ONLY]" : "OK [READ-WRITE]") + " " + (examine ? "EXAMINE" : "SELECT") + " completed");
  }

  void create(Cursor& c) {
    std::optional<std::string> mailbox;
    if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.at_end()) return bad("CREATE mailbox");
    if (!mailbox->empty() && mailbox->back() == '/') mailbox->pop_back();
    for (const auto& b : service().mailboxes().mailboxes(handle_))
      if (b.name == *mailbox) return tagged("NO [ALREADYEXISTS] it exists");
    try {
      service().mailboxes().ensure_mailbox(handle_, *mailbox);
    } catch (const Error& e) {
      return refused(e);
    }
    tagged("OK CREATE completed");
  }

  void mailbox_command(Cursor& c, const std::string& name) {
    std::optional<std::string> mailbox;
    if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.at_end()) return bad(name + " mailbox");
    try {
      if (name == "DELETE") {
        if (state_ == State::selected && mailbox_ == *mailbox) return tagged("NO [INUSE] close it first");
        service().mailboxes().delete_mailbox(handle_, *mailbox);
      } else {
        service().mailboxes().set_subscribed(handle_, *mailbox, name == "SUBSCRIBE");
      }
    } catch (const Error& e) {
      return refused(e);
    }
    tagged("OK " + name + " completed");
  }

  // RFC 9208: one quota root, "", for all of a member's mailboxes; STORAGE in KiB.
  void quota(Cursor& c, const std::string& name) {
    std::optional<std::string> argument;
    if (!c.space() || !(argument = c.astring()) || !c.at_end()) return bad(name + " argument");
    const int64_t limit = service().quota_of(handle_);
    const int64_t used = service().mailboxes().usage(handle_);
    const std::string line = "* QUOTA \"\" (STORAGE " + std::to_string((used + 1023) / 1024) + " " + std::to_string(limit / 1024) + ")\r\n";
    if (name == "GETQUOTA") {
      if (!argument->empty() || limit == 0) return tagged("NO [NONEXISTENT] no such quota root");
      out_ += line;
      return tagged("OK GETQUOTA completed");
    }
    const std::string mailbox = imap::normalize_mailbox(from_client(*argument));
    out_ += "* QUOTAROOT " + mailbox_text(mailbox) + (limit > 0 ? " \"\"" : "") + "\r\n";
    if (limit > 0) out_ += line;
    tagged("OK GETQUOTAROOT completed");
  }

  void rename(Cursor& c) {
    std::optional<std::string> from, to;
    if (!c.space() || !(from = mailbox_arg(c)) || !c.space() || !(to = mailbox_arg(c)) || !c.at_end()) return bad("RENAME from to");
    try {
      service().mailboxes().rename_mailbox(handle_, *from, *to);
    } catch (const Error& e) {
      return refused(e);
    }
    // The selected mailbox may be the one renamed or below it (INBOX stays where it is).
    if (state_ == State::selected && *from != "INBOX" && (mailbox_ == *from || mailbox_.rfind(*from + "/", 0) == 0))
      mailbox_ = *to + mailbox_.substr(from->size());
    tagged("OK RENAME completed");
  }

  // The messages a sequence set names: by sequence number, or by UID with `uid`.
  std::optional<std::vector<std::size_t>> resolve(const std::string& text, bool uid) {
    if (messages_.empty() && !uid) {
      auto empty = imap::parse_sequence_set(text, 1);
      if (!empty) return std::nullopt;
      return std::vector<std::size_t>{};
    }
    const uint32_t max = uid ? static_cast<uint32_t>(messages_.empty() ? 0 : messages_.back().uid)
                             : static_cast<uint32_t>(messages_.size());
    auto set = imap::parse_sequence_set(text, std::max<uint32_t>(max, 1));
    if (!set) return std::nullopt;
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < messages_.size(); ++i) {
      const uint32_t key = uid ? static_cast<uint32_t>(messages_[i].uid) : static_cast<uint32_t>(i + 1);
      // RFC 9051 6.4.8: "n:*" with n above the largest UID still names the last message.
      if (set->contains(key) || (uid && key == max && std::any_of(set->ranges.begin(), set->ranges.end(), [&](auto& r) {
                                   return r.first > max && r.second == std::max<uint32_t>(max, 1);
                                 })))
        out.push_back(i);
    }
    return out;
  }

  // Takes these UIDs (ascending) out of the session's view and tells the client: an EXPUNGE
  // per message, highest first, or with QRESYNC one VANISHED (RFC 7162 3.2.10).
  void forget(const std::vector<int64_t>& uids) {
    std::vector<int64_t> gone;
    for (std::size_t i = messages_.size(); i-- > 0;)
      if (std::binary_search(uids.begin(), uids.end(), messages_[i].uid)) {
        if (!qresync_) out_ += "* " + std::to_string(i + 1) + " EXPUNGE\r\n";
        gone.push_back(messages_[i].uid);
        messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(i));
      }
    if (qresync_ && !gone.empty()) {
      std::sort(gone.begin(), gone.end());
      out_ += "* VANISHED " + uid_set(gone) + "\r\n";
    }
  }

  // RFC 9051 7.4.1, 7.5.2: what changed since the last look, as untagged responses.
  // Both lists are in UID order, so one walk finds what went, what changed and what came.
  void sync() {
    std::vector<int64_t> gone;
    std::vector<Message> now;  // this session's list with the store's flags, gone ones left out
    std::vector<std::pair<int64_t, std::string>> keywords;  // of messages whose keywords changed
    bool changed = false;
    service().mailboxes().with_cache(handle_, mailbox_, [&](const MailboxCache& cache) {
      if (cache.uidnext == state_uidnext_ && cache.highest_modseq == state_modseq_) return;
      changed = true;
      state_uidnext_ = cache.uidnext;
      state_modseq_ = cache.highest_modseq;
      now.reserve(cache.messages.size());
      auto fresh = cache.messages.begin();
      for (const auto& mine : messages_) {
        while (fresh != cache.messages.end() && fresh->uid < mine.uid) ++fresh;
        if (fresh == cache.messages.end() || fresh->uid != mine.uid) {
          gone.push_back(mine.uid);
          continue;
        }
        now.push_back(session_row(*fresh));
        if (fresh->keywords != keywords_of(mine.uid)) keywords.emplace_back(mine.uid, fresh->keywords);
      }
      const int64_t last = messages_.empty() ? 0 : messages_.back().uid;
      for (const auto& m : cache.messages)
        if (m.uid > last) {
          now.push_back(session_row(m));
          if (!m.keywords.empty()) keywords.emplace_back(m.uid, m.keywords);
        }
    });
    if (!changed) return;
    forget(gone);  // EXPUNGE (or VANISHED) first, with the sequence numbers the client knows
    std::set<int64_t> rekeyed;
    for (auto& [uid, words] : keywords) {
      announce_keywords(words);
      set_keywords(uid, std::move(words));
      rekeyed.insert(uid);
    }
    for (std::size_t i = 0; i < messages_.size(); ++i) {
      const auto& fresh = now[i];
      if (fresh.flags != messages_[i].flags || rekeyed.count(fresh.uid))
        out_ += "* " + std::to_string(i + 1) + " FETCH (UID " + std::to_string(fresh.uid) + " FLAGS " +
                flags_text(fresh.flags, keywords_of(fresh.uid)) +
                (condstore_ ? " MODSEQ (" + std::to_string(fresh.modseq) + ")" : std::string()) + ")\r\n";
    }
    const bool grew = now.size() > messages_.size();
    messages_ = std::move(now);
    if (grew) out_ += "* " + std::to_string(messages_.size()) + " EXISTS\r\n";
  }

  void fetch(Cursor& c, bool uid) {
    std::optional<std::string> set_text;
    if (!c.space() || !(set_text = c.sequence_set()) || !c.space()) return bad("FETCH sequence-set items");
    std::string item_text = c.rest_of_line();
    // RFC 7162 3.1.4.1: FETCH ... (CHANGEDSINCE modseq) after the items.
    std::optional<int64_t> changed_since;
    bool vanished = false;
    if (const auto modifier = upper(item_text).rfind(" (CHANGEDSINCE "); modifier != std::string::npos && item_text.back() == ')') {
      std::string inside = upper(item_text.substr(modifier + 15, item_text.size() - modifier - 16));
      // RFC 7162 3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) also reports what went.
      if (const auto space = inside.find(' '); space != std::string::npos) {
        if (inside.substr(space + 1) != "VANISHED" || !uid || !qresync_) return bad("(CHANGEDSINCE n VANISHED) needs UID FETCH and QRESYNC");
        vanished = true;
        inside.resize(space);
      }
      if (inside.empty() || inside.size() > 18 || inside.find_first_not_of("0123456789") != std::string::npos)
        return bad("CHANGEDSINCE takes a number");
      changed_since = std::stoll(inside);
      item_text.resize(modifier);
      condstore_ = true;
    }
    auto items = imap::parse_fetch_items(item_text);
    if (!items) return bad("FETCH items");
    auto chosen = resolve(*set_text, uid);
    if (!chosen) return bad("not a sequence set");
    if (vanished) {
      const auto range = imap::parse_sequence_set(*set_text, static_cast<uint32_t>(state_uidnext_ > 0 ? state_uidnext_ : 1));
      auto gone = service().mailboxes().expunged_since(handle_, mailbox_, *changed_since);
      gone.erase(std::remove_if(gone.begin(), gone.end(), [&](int64_t u) { return !range || !range->contains(static_cast<uint32_t>(u)); }),
                 gone.end());
      if (!gone.empty()) out_ += "* VANISHED (EARLIER) " + uid_set(gone) + "\r\n";
    }
    if (changed_since)
      chosen->erase(std::remove_if(chosen->begin(), chosen->end(), [&](std::size_t i) { return messages_[i].modseq <= *changed_since; }),
                    chosen->end());
    // RFC 7162 3.1.4.1: with CONDSTORE on, FLAGS come with their MODSEQ.
    const bool has_flags = std::any_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::flags; });
    if ((changed_since || (condstore_ && has_flags)) &&
        std::none_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::modseq; })) {
      imap::FetchItem modseq_item;
      modseq_item.kind = imap::FetchItem::Kind::modseq;
      items->push_back(modseq_item);
    }
    bool needs_bytes = false, sets_seen = false;
    for (const auto& item : *items) {
      needs_bytes = needs_bytes || item.kind == imap::FetchItem::Kind::section || item.kind == imap::FetchItem::Kind::rfc822 ||
                    item.kind == imap::FetchItem::Kind::rfc822_header || item.kind == imap::FetchItem::Kind::rfc822_text;
      sets_seen = sets_seen || (item.kind == imap::FetchItem::Kind::section && !item.peek) ||
                  item.kind == imap::FetchItem::Kind::rfc822 || item.kind == imap::FetchItem::Kind::rfc822_text;
    }
    if (uid && std::none_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::uid; })) {
      imap::FetchItem uid_item;
      uid_item.kind = imap::FetchItem::Kind::uid;
      items->insert(items->begin(), uid_item);
    }
    // RFC 9051 6.4.5: BODY[] (not PEEK) sets \Seen, and the response shows the new flags.
    if (sets_seen && !read_only_) {
      std::vector<int64_t> uids;
      for (auto i : *chosen)
        if (!(messages_[i].flags & kSeen)) uids.push_back(messages_[i].uid);
      if (!uids.empty()) {
        for (const auto& m : service().mailboxes().change_flags(handle_, mailbox_, uids, MailboxStore::FlagChange::add, kSeen))
          for (auto& mine : messages_)
            if (mine.uid == m.uid) {
              mine.flags = m.meta.flags;
              mine.modseq = m.modseq;
            }
        if (std::none_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::flags; }))
          {
          imap::FetchItem flags_item;
          flags_item.kind = imap::FetchItem::Kind::flags;
          items->push_back(flags_item);
        }
      }
    }
    auto job = std::make_shared<FetchJob>();
    job->chosen = std::move(*chosen);
    job->items = std::move(*items);
    job->needs_bytes = needs_bytes;
    job->needs_envelope = std::any_of(job->items.begin(), job->items.end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::envelope; });
    fetch_step(job);
  }

  // A FETCH answers in pieces of about kFetchChunk bytes, each written before the next is
  // made: a FETCH of a whole big mailbox never sits in memory at once (RFC 9051 7.5.2 allows
  // the responses to come as they are ready).
  struct FetchJob {
    std::vector<std::size_t> chosen;
    std::vector<imap::FetchItem> items;
    bool needs_bytes = false, needs_envelope = false;
    std::size_t next = 0;
    // What the store holds for chosen[next, prepared): blob ids and ENVELOPEs, by UID.
    std::size_t prepared = 0;
    std::unordered_map<int64_t, std::string> blobs, envelopes;
  };
  static constexpr std::size_t kFetchChunk = 256 << 10;
  static constexpr std::size_t kFetchBatch = 512;

  // One lock and one query for the next kFetchBatch messages instead of one per message.
  void prepare_fetch(FetchJob& job) {
    const std::size_t end = std::min(job.next + kFetchBatch, job.chosen.size());
    std::vector<int64_t> uids;
    for (std::size_t k = job.next; k < end; ++k) uids.push_back(messages_[job.chosen[k]].uid);
    std::sort(uids.begin(), uids.end());
    job.blobs.clear();
    job.envelopes.clear();
    if (job.needs_bytes)
      service().mailboxes().with_cache(handle_, mailbox_, [&](const MailboxCache& cache) {
        for (const auto uid : uids)
          if (const auto* row = cache.find(uid)) job.blobs.emplace(uid, row->blob);
      });
    if (job.needs_envelope)
      for (auto& e : service().mailboxes().envelopes(handle_, mailbox_, uids))
        job.envelopes.emplace(e.uid, e.imap.empty() ? imap::envelope_text(e.json) : std::move(e.imap));
    job.prepared = end;
  }

  void fetch_step(const std::shared_ptr<FetchJob>& job) {
    const auto& items = job->items;
    const bool needs_bytes = job->needs_bytes;
    while (job->next < job->chosen.size() && out_.size() < kFetchChunk) {
      if (job->next >= job->prepared) prepare_fetch(*job);
      const std::size_t i = job->chosen[job->next++];
      const auto& m = messages_[i];
      std::string bytes, structure_json, envelope_json;
      const auto blob = job->blobs.find(m.uid);
      const auto envelope = job->envelopes.find(m.uid);
      // RFC 2180 4.1.2: a message another session expunged meanwhile is left out.
      if ((needs_bytes && blob == job->blobs.end()) || (job->needs_envelope && envelope == job->envelopes.end())) continue;
      if (needs_bytes) bytes = service().blobs().read(blob->second);
      std::string line = "* " + std::to_string(i + 1) + " FETCH (";
      bool first = true;
      for (const auto& item : items) {
        line += first ? "" : " ";
        first = false;
        using K = imap::FetchItem::Kind;
        switch (item.kind) {
          case K::uid: line += "UID " + std::to_string(m.uid); break;
          case K::flags: line += "FLAGS " + flags_text(m.flags, keywords_of(m.uid)); break;
          case K::internaldate: line += "INTERNALDATE " + imap::internal_date_text(m.internal_date); break;
          case K::size: line += "RFC822.SIZE " + std::to_string(m.size); break;
          case K::modseq: line += "MODSEQ (" + std::to_string(m.modseq) + ")"; break;
          case K::envelope: line += "ENVELOPE " + envelope->second; break;
          case K::bodystructure: {
            if (structure_json.empty()) std::tie(envelope_json, structure_json) = service().mailboxes().summaries(handle_, mailbox_, m.uid);
            line += "BODYSTRUCTURE " + imap::bodystructure_text(structure_json);
            break;
          }
          default: {
            if (item.kind == K::section && structure_json.empty() && !item.spec.empty() && std::isdigit(static_cast<unsigned char>(item.spec[0])))
              std::tie(envelope_json, structure_json) = service().mailboxes().summaries(handle_, mailbox_, m.uid);
            if (item.binary && structure_json.empty())
              std::tie(envelope_json, structure_json) = service().mailboxes().summaries(handle_, mailbox_, m.uid);
            const auto section = item.binary ? imap::binary_section(bytes, item, structure_json)
                                             : imap::message_section(bytes, item, structure_json);
            if (item.binary_size) {
              line += item.response_name() + " " + (section ? std::to_string(section->size()) : std::string("0"));
            } else if (item.binary && section) {
              // RFC 3516 4.2: literal8 when the bytes hold a NUL.
              line += item.response_name() + " " + (section->find('\0') != std::string::npos ? "~{" : "{") +
                      std::to_string(section->size()) + "}\r\n";
              line += *section;
            } else {
              line += item.response_name() + " ";
              if (section) {
                line += "{" + std::to_string(section->size()) + "}\r\n";
                line += *section;  // appended, not concatenated: message bytes are copied once here
              } else {
                line += "NIL";
              }
            }
          }
        }
      }
      out_ += line;
      out_ += ")\r\n";
    }
    if (job->next < job->chosen.size()) {
      more_ = [this, job] { fetch_step(job); };
      return;
    }
    tagged("OK FETCH completed");
  }

  void store(Cursor& c, bool uid) {
    std::optional<std::string> set_text, what;
    if (!c.space() || !(set_text = c.sequence_set()) || !c.space()) return bad("STORE sequence-set item flags");
    // RFC 7162 3.1.3: STORE set (UNCHANGEDSINCE modseq) item flags.
    std::optional<int64_t> unchanged_since;
    if (c.take('(')) {
      const auto word = c.atom();
      if (!word || upper(*word) != "UNCHANGEDSINCE" || !c.space()) return bad("STORE (UNCHANGEDSINCE modseq)");
      const std::string digits = c.sequence_set().value_or("");
      if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos || !c.take(')') ||
          !c.space())
        return bad("STORE (UNCHANGEDSINCE modseq)");
      unchanged_since = std::stoll(digits);
      condstore_ = true;
    }
    // "+FLAGS.SILENT" holds no atom-special, so one atom.
    if (!(what = c.atom()) || !c.space()) return bad("STORE item");
    const std::string item = upper(*what);
    MailboxStore::FlagChange change;
    if (item.rfind("+FLAGS", 0) == 0) change = MailboxStore::FlagChange::add;
    else if (item.rfind("-FLAGS", 0) == 0) change = MailboxStore::FlagChange::remove;
    else if (item.rfind("FLAGS", 0) == 0) change = MailboxStore::FlagChange::replace;
    else return bad("STORE +FLAGS, -FLAGS or FLAGS");
    const bool silent = item.find(".SILENT") != std::string::npos;
    if (read_only_) return tagged("NO [READ-ONLY] the mailbox was opened with EXAMINE");
    auto list = imap::parse_flag_list(c.rest_of_line());
    if (!list.ok) return bad("not a flag: " + reply_text(list.bad_word));
    const unsigned flags = list.system;
    std::vector<std::string> keywords = std::move(list.keywords);
    const auto chosen = resolve(*set_text, uid);
    if (!chosen) return bad("not a sequence set");
    std::vector<int64_t> uids, modified;
    for (auto i : *chosen) {
      // The conditional STORE leaves alone what changed since the client looked.
      if (unchanged_since && messages_[i].modseq > *unchanged_since) {
        modified.push_back(uid ? messages_[i].uid : static_cast<int64_t>(i + 1));
        continue;
      }
      uids.push_back(messages_[i].uid);
    }
    std::vector<StoredMessage> changed;
    try {
      changed = service().mailboxes().change_flags(handle_, mailbox_, uids, change, flags, keywords);
    } catch (const Error& e) {
      if (e.status() >= 500) throw;  // SERVERBUG, from run_blocking
      return refused(e);
    }
    std::map<int64_t, const StoredMessage*> now;
    for (const auto& m : changed) now[m.uid] = &m;
    for (const auto& m : changed) announce_keywords(m.meta.keywords);
    for (auto i : *chosen) {
      auto& m = messages_[i];
      const auto it = now.find(m.uid);
      if (it != now.end()) {
        m.flags = it->second->meta.flags;
        m.modseq = it->second->modseq;
        set_keywords(m.uid, it->second->meta.keywords);
      }
      if (silent && !(condstore_ && it != now.end())) continue;
      if (unchanged_since && std::find(uids.begin(), uids.end(), m.uid) == uids.end()) continue;
      out_ += "* " + std::to_string(i + 1) + " FETCH (" + (uid ? "UID " + std::to_string(m.uid) + " " : std::string()) + "FLAGS " +
              flags_text(m.flags, keywords_of(m.uid)) + (condstore_ ? " MODSEQ (" + std::to_string(m.modseq) + ")" : std::string()) + ")\r\n";
    }
    tagged(modified.empty() ? "OK STORE completed" : "OK [MODIFIED " + uid_set(modified) + "] conditional STORE failed for some");
  }

  std::string uid_set(const std::vector<int64_t>& uids) {
    std::string out;
    for (std::size_t i = 0; i < uids.size();) {
      std::size_t j = i;
      while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
      out += (out.empty() ? "" : ",") + std::to_string(uids[i]) + (j > i ? ":" + std::to_string(uids[j]) : "");
      i = j + 1;
    }
    return out;
  }

  void copy(Cursor& c, bool uid, bool move) {
    std::optional<std::string> set_text, target;
    if (!c.space() || !(set_text = c.sequence_set()) || !c.space() || !(target = mailbox_arg(c))) return bad("COPY sequence-set mailbox");
    const auto chosen = resolve(*set_text, uid);
    if (!chosen) return bad("not a sequence set");
    if (move && read_only_) return tagged("NO [READ-ONLY] the mailbox was opened with EXAMINE");
    const auto boxes = service().mailboxes().mailboxes(handle_);
    const auto box = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.name == *target; });
    if (box == boxes.end()) return tagged("NO [TRYCREATE] no such mailbox");
    std::vector<int64_t> uids;
    for (auto i : *chosen) uids.push_back(messages_[i].uid);
    const auto pairs = service().mailboxes().copy(handle_, mailbox_, *target, uids);
    std::vector<int64_t> from, to;
    for (const auto& [a, b] : pairs) {
      from.push_back(a);
      to.push_back(b);
    }
    // RFC 4315 COPYUID.
    const std::string code = pairs.empty() ? std::string()
                                           : "[COPYUID " + std::to_string(box->uidvalidity) + " " + uid_set(from) + " " + uid_set(to) + "] ";
    if (!move) return tagged("OK " + code + "COPY completed");
    // RFC 6851: MOVE is copy, then expunge of just those, the COPYUID untagged first.
    out_ += "* OK " + code + "moved\r\n";
    service().mailboxes().change_flags(handle_, mailbox_, from, MailboxStore::FlagChange::add, kDeleted);
    auto gone = service().mailboxes().expunge(handle_, mailbox_, from);
    forget(gone);
    tagged("OK MOVE completed");
  }

  void expunge(Cursor& c, bool uid) {
    if (read_only_) return tagged("NO [READ-ONLY] the mailbox was opened with EXAMINE");
    std::optional<std::vector<int64_t>> only;
    if (uid) {
      std::optional<std::string> set_text;
      if (!c.space() || !(set_text = c.sequence_set())) return bad("UID EXPUNGE sequence-set");
      const auto chosen = resolve(*set_text, true);
      if (!chosen) return bad("not a sequence set");
      only.emplace();
      for (auto i : *chosen) only->push_back(messages_[i].uid);
    }
    const auto gone = service().mailboxes().expunge(handle_, mailbox_, only);
    forget(gone);
    tagged("OK EXPUNGE completed");
  }

  void append(Cursor& c) {
    std::optional<std::string> mailbox;
    if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.space()) return bad("APPEND mailbox [flags] [date] literal");
    unsigned flags = 0;
    std::string keywords;
    if (c.take('(')) {
      while (!c.take(')')) {
        c.take(' ');
        std::string flag;
        if (c.take('\\')) flag = "\\";
        auto word = c.atom();
        if (!word) return bad("flag list");
        if (auto bit = imap::system_flag_bit(flag + *word)) flags |= *bit;
        else if (flag.empty() && imap::valid_keyword(*word) && !has_keyword(keywords, *word)) keywords += (keywords.empty() ? "" : " ") + *word;
      }
      if (!c.space()) return bad("APPEND message");
    }
    int64_t date = static_cast<int64_t>(::time(nullptr));
    if (c.peek('"')) {
      auto text = c.string();
      const auto parsed = text ? imap::parse_imap_date_time(*text) : std::nullopt;
      if (!parsed || !c.space()) return bad("date-time is \"dd-Mon-yyyy hh:mm:ss +zzzz\"");
      date = *parsed;
    }
    // RFC 6855 4: after UTF8=ACCEPT a message with UTF-8 headers comes as UTF8 (literal8).
    bool utf8_data = false;
    if (utf8_names_ && c.peek('U')) {
      const auto word = c.atom();
      if (!word || upper(*word) != "UTF8" || !c.space() || !c.take('(')) return bad("APPEND ... UTF8 (literal8)");
      utf8_data = true;
    }
    auto message = c.string();
    if (!message || (utf8_data && !c.take(')'))) return bad("APPEND needs the message as a literal");
    if (static_cast<std::size_t>(std::count(keywords.begin(), keywords.end(), ' ')) >= kMaxKeywords)
      return tagged("NO [LIMIT] a message takes at most " + std::to_string(kMaxKeywords) + " keywords");
    const auto boxes = service().mailboxes().mailboxes(handle_);
    const auto box = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.name == *mailbox; });
    if (box == boxes.end()) return tagged("NO [TRYCREATE] no such mailbox");
    StoredMessage stored;
    try {
      stored = service().append_new(handle_, *mailbox, *message, flags, date, keywords);
    } catch (const Error& e) {
      if (e.status() >= 500 && e.code() != errc::kQuotaExceeded) throw;  // SERVERBUG, from run_blocking
      return refused(e);
    }
    if (state_ == State::selected && *mailbox == mailbox_) sync();
    // RFC 4315 APPENDUID.
    tagged("OK [APPENDUID " + std::to_string(box->uidvalidity) + " " + std::to_string(stored.uid) + "] APPEND completed");
  }

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
  static bool header_contains(std::string_view header, std::string_view name, std::string_view needle) {
    bool in_field = false;
    std::string body;
    auto matches = [&] { return in_field && ascii_lower(body).find(needle) != std::string::npos; };
    for (std::size_t at = 0; at < header.size();) {
      auto eol = header.find('\n', at);
      if (eol == std::string_view::npos) eol = header.size();
      auto line = header.substr(at, eol - at);
      at = eol + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
        if (in_field) body += line;
        continue;
      }
      if (matches()) return true;
      const auto colon = line.find(':');
      in_field = colon == name.size() && ascii_lower(std::string(line.substr(0, colon))) == name;
      body = in_field ? std::string(line.substr(colon + 1)) : std::string();
    }
    return matches();
  }

  std::optional<Test> criterion(Words& w, bool uid_mode) {
    const auto key = imap::parse_search_key(w);
    if (!key) return std::nullopt;
    return compile(*key);
  }

  // A parsed key as a test; nullopt when a set it names does not resolve. Notes what the
  // search will need read (rows, header sections) and whether it asked for MODSEQ.
  std::optional<Test> compile(const imap::SearchKey& k) {
    using Kind = imap::SearchKey::Kind;
    auto set_test = [this](const std::string& text, bool uid) -> std::optional<Test> {
      const auto chosen = resolve(text, uid);
      if (!chosen) return std::nullopt;
      std::set<std::size_t> in(chosen->begin(), chosen->end());
      return Test([in](const Probe& p) { return in.count(p.index) > 0; });
    };
    std::vector<Test> children;
    for (const auto& child : k.children) {
      auto t = compile(child);
      if (!t) return std::nullopt;
      children.push_back(std::move(*t));
    }
    switch (k.kind) {
      case Kind::all: return Test([](const Probe&) { return true; });
      case Kind::none: return Test([](const Probe&) { return false; });
      case Kind::and_:
        return Test([all = std::move(children)](const Probe& p) {
          return std::all_of(all.begin(), all.end(), [&](const Test& t) { return t(p); });
        });
      case Kind::not_: return Test([t = children.at(0)](const Probe& p) { return !t(p); });
      case Kind::or_: return Test([a = children.at(0), b = children.at(1)](const Probe& p) { return a(p) || b(p); });
      case Kind::flag: return Test([bit = k.flag, set = k.set](const Probe& p) { return ((p.m.flags & bit) != 0) == set; });
      case Kind::keyword:
        // The keywords this session has shown, as flag criteria test the flags it has shown.
        return Test([this, word = k.text, set = k.set](const Probe& p) { return has_keyword(keywords_of(p.m.uid), word) == set; });
      case Kind::modseq:
        condstore_ = true;
        searched_modseq_ = true;
        return Test([n = k.number](const Probe& p) { return p.m.modseq >= n; });
      case Kind::larger: return Test([n = k.number](const Probe& p) { return p.m.size > n; });
      case Kind::smaller: return Test([n = k.number](const Probe& p) { return p.m.size < n; });
      case Kind::since: return Test([d = k.number](const Probe& p) { return p.m.internal_date >= d; });
      case Kind::before: return Test([d = k.number](const Probe& p) { return p.m.internal_date < d; });
      case Kind::on:
        return Test([d = k.number](const Probe& p) { return p.m.internal_date >= d && p.m.internal_date < d + 86400; });
      case Kind::uid_set: return set_test(k.text, true);
      case Kind::sequence_set: return set_test(k.text, false);
      case Kind::subject:
        // The decoded subject is in the index: no message needs reading.
        search_needs_row_ = true;
        return Test([needle = k.text](const Probe& p) {
          return p.row && ascii_lower(p.row->subject).find(needle) != std::string::npos;
        });
      case Kind::body:
      case Kind::text:
        // Matching reads the message's bytes (RFC 9051 6.4.4: case-insensitive substrings).
        search_needs_row_ = true;
        return Test([needle = k.text, body_only = k.kind == Kind::body](const Probe& p) {
          const auto& bytes = p.bytes();
          const auto split_at = body_only ? bytes.find("\r\n\r\n") : 0;
          return split_at != std::string::npos &&
                 ascii_lower(std::string_view(bytes).substr(split_at)).find(needle) != std::string::npos;
        });
      case Kind::header:
        // The header sections are kept apart in the index for these.
        search_needs_row_ = search_needs_header_ = true;
        return Test([field = k.field, needle = k.text](const Probe& p) {
          return p.row && header_contains(p.header(), field, needle);
        });
    }
    return std::nullopt;
  }

  void search(Cursor& c, bool uid) {
    if (!c.space()) return bad("SEARCH criteria");
    Words w = imap::search_words(c.rest_with_literals());
    std::vector<std::string> returns;
    bool extended = false;
    if (!w.done() && upper(w.items[w.at]) == "RETURN") {
      // RFC 4731 / RFC 9051 ESEARCH: RETURN (MIN MAX COUNT ALL)
      extended = true;
      w.next();
      if (w.next() != "(") return bad("RETURN (options)");
      while (!w.done() && w.items[w.at] != ")") returns.push_back(upper(w.next()));
      w.next();
      if (returns.empty()) returns.push_back("ALL");
    }
    if (!w.done() && upper(w.items[w.at]) == "CHARSET") {
      w.next();
      const std::string charset = upper(w.next());
      if (charset != "UTF-8" && charset != "US-ASCII") return tagged("NO [BADCHARSET (UTF-8)] UTF-8 only");
    }
    std::vector<Test> tests;
    searched_modseq_ = search_needs_row_ = search_needs_header_ = false;
    while (!w.done()) {
      auto t = criterion(w, uid);
      if (!t) return bad("SEARCH criteria");
      tests.push_back(*t);
    }
    if (tests.empty()) return bad("SEARCH criteria");
    std::vector<int64_t> found;
    // In batches: one lock for the store's rows and one query for the header sections.
    std::vector<const CachedMessage*> rows;
    std::vector<CachedMessage> copies;
    std::vector<std::pair<int64_t, std::string>> headers;
    for (std::size_t first = 0; first < messages_.size(); first += kFetchBatch) {
      const std::size_t end = std::min(first + kFetchBatch, messages_.size());
      rows.assign(end - first, nullptr);
      copies.clear();
      if (search_needs_row_) {
        copies.reserve(end - first);
        service().mailboxes().with_cache(handle_, mailbox_, [&](const MailboxCache& cache) {
          for (std::size_t i = first; i < end; ++i)
            if (const auto* row = cache.find(messages_[i].uid)) {
              copies.push_back(*row);
              rows[i - first] = &copies.back();
            }
        });
      }
      if (search_needs_header_) headers = service().mailboxes().headers(handle_, mailbox_, messages_[first].uid, messages_[end - 1].uid);
      auto header = headers.cbegin();
      for (std::size_t i = first; i < end; ++i) {
        std::optional<std::string_view> kept;
        if (search_needs_header_) {
          while (header != headers.cend() && header->first < messages_[i].uid) ++header;
          if (header != headers.cend() && header->first == messages_[i].uid) kept = header->second;
        }
        const Probe probe(i, messages_[i], rows[i - first], kept, service().blobs());
        if (std::all_of(tests.begin(), tests.end(), [&](const Test& t) { return t(probe); }))
          found.push_back(uid ? messages_[i].uid : static_cast<int64_t>(i + 1));
      }
    }
    if (found_only_) {
      *found_only_ = std::move(found);
      return;
    }
    if (extended) {
      std::string line = "* ESEARCH (TAG " + imap::quote(current_tag_) + ")" + (uid ? " UID" : "");
      for (const auto& r : returns) {
        if (r == "MIN" && !found.empty()) line += " MIN " + std::to_string(found.front());
        if (r == "MAX" && !found.empty()) line += " MAX " + std::to_string(found.back());
        if (r == "COUNT") line += " COUNT " + std::to_string(found.size());
        if (r == "ALL" && !found.empty()) line += " ALL " + uid_set(found);
      }
      out_ += line + "\r\n";
    } else {
      std::string line = "* SEARCH";
      int64_t highest = 0;
      for (std::size_t i = 0; i < messages_.size(); ++i) {
        const int64_t key = uid ? messages_[i].uid : static_cast<int64_t>(i + 1);
        if (std::binary_search(found.begin(), found.end(), key)) highest = std::max(highest, messages_[i].modseq);
      }
      for (auto n : found) line += " " + std::to_string(n);
      // RFC 7162 3.1.5: a search by MODSEQ tells the highest one among the results.
      if (searched_modseq_ && !found.empty()) line += " (MODSEQ " + std::to_string(highest) + ")";
      out_ += line + "\r\n";
    }
    tagged("OK SEARCH completed");
  }

  // ---- SORT and THREAD (RFC 5256) ----------------------------------------------------------
  imap::SortKeys keys_of(std::size_t i) {
    imap::SortKeys k;
    const auto envelope = nlohmann::json::parse(service().mailboxes().summaries(handle_, mailbox_, messages_[i].uid).first, nullptr, false);
    auto first_mailbox = [&](const char* field) {
      if (!envelope.is_object() || !envelope.contains(field) || !envelope[field].is_array() || envelope[field].empty()) return std::string();
      const auto& a = envelope[field][0];
      return ascii_lower(a.value("mailbox", nlohmann::json()).is_string() ? a["mailbox"].get<std::string>() : std::string());
    };
    const std::string subject = envelope.is_object() && envelope.value("subject", nlohmann::json()).is_string() ? envelope["subject"].get<std::string>() : "";
    k.subject = imap::base_subject(subject, &k.reply);
    const std::string date = envelope.is_object() && envelope.value("date", nlohmann::json()).is_string() ? envelope["date"].get<std::string>() : "";
    k.date = imap::sent_date(date).value_or(messages_[i].internal_date);
    k.from = first_mailbox("from");
    k.to = first_mailbox("to");
    k.cc = first_mailbox("cc");
    return k;
  }

  // The messages SEARCH criteria select, as sequence numbers or UIDs.
  std::optional<std::vector<int64_t>> matching(Cursor& c, bool uid) {
    std::vector<int64_t> found;
    found_only_ = &found;
    const std::size_t before = out_.size();
    search(c, uid);
    found_only_ = nullptr;
    if (out_.size() != before) return std::nullopt;  // search() answered BAD or NO
    return found;
  }

  // The positions of what SEARCH found, and the sort keys of each (base subjects only when
  // `subjects`: SORT by date or address needs none).
  void sort_keys(const std::vector<int64_t>& found, bool uid, std::vector<std::size_t>& chosen,
                 std::vector<imap::SortKeys>& keys, bool subjects) {
    for (std::size_t i = 0; i < messages_.size(); ++i)
      if (std::binary_search(found.begin(), found.end(), uid ? messages_[i].uid : static_cast<int64_t>(i + 1))) chosen.push_back(i);
    if (chosen.empty()) return;
    // One query for the keys kept at delivery and one lock for the subjects; messages from
    // before the keys were kept parse their envelope.
    const auto rows = service().mailboxes().sort_rows(handle_, mailbox_, messages_[chosen.front()].uid, messages_[chosen.back()].uid);
    std::unordered_map<int64_t, std::string> subject_of;
    if (subjects)
      service().mailboxes().with_cache(handle_, mailbox_, [&](const MailboxCache& cache) {
        for (const auto i : chosen)
          if (const auto* row = cache.find(messages_[i].uid)) subject_of.emplace(row->uid, row->subject);
      });
    auto row = rows.begin();
    keys.resize(chosen.size());
    for (std::size_t n = 0; n < chosen.size(); ++n) {
      const auto i = chosen[n];
      const int64_t id = messages_[i].uid;
      while (row != rows.end() && row->uid < id) ++row;
      const auto subject = subject_of.find(id);
      if (row == rows.end() || row->uid != id || (subjects && subject == subject_of.end())) {
        keys[n] = keys_of(i);
        continue;
      }
      auto& k = keys[n];
      if (subjects) k.subject = imap::base_subject(subject->second, &k.reply);
      k.date = row->sent_date != 0 ? row->sent_date : messages_[i].internal_date;  // RFC 5256 2.2
      k.from = row->from_mailbox;
      k.to = row->to_mailbox;
      k.cc = row->cc_mailbox;
    }
  }

  void sort(Cursor& c, bool uid) {
    if (!c.space() || !c.take('(')) return bad("SORT (criteria) charset search");
    enum class By { arrival, cc, date, from, size, subject, to };
    static const std::map<std::string, By> kKeys = {{"ARRIVAL", By::arrival}, {"CC", By::cc},     {"DATE", By::date},
                                                    {"FROM", By::from},       {"SIZE", By::size}, {"SUBJECT", By::subject},
                                                    {"TO", By::to}};
    std::vector<std::pair<By, bool>> criteria;  // key, reversed
    bool reverse = false;
    while (!c.take(')')) {
      c.take(' ');
      auto key = c.atom();
      if (!key) return bad("SORT criteria");
      const std::string k = upper(*key);
      if (k == "REVERSE") {
        reverse = true;
        continue;
      }
      const auto by = kKeys.find(k);
      if (by == kKeys.end()) return bad("unknown SORT key " + k);
      criteria.emplace_back(by->second, reverse);
      reverse = false;
    }
    std::optional<std::string> charset;
    if (!c.space() || !(charset = c.astring())) return bad("SORT charset");
    if (upper(*charset) != "UTF-8" && upper(*charset) != "US-ASCII") return tagged("NO [BADCHARSET (UTF-8)] UTF-8 only");
    auto found = matching(c, uid);
    if (!found) return;
    std::vector<std::size_t> chosen;
    std::vector<imap::SortKeys> keys;  // keys[n] for chosen[n]
    sort_keys(*found, uid, chosen, keys,
              std::any_of(criteria.begin(), criteria.end(), [](const auto& c) { return c.first == By::subject; }));
    std::vector<std::size_t> order(chosen.size());
    for (std::size_t n = 0; n < order.size(); ++n) order[n] = n;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const auto& ka = keys[a];
      const auto& kb = keys[b];
      const auto& ma = messages_[chosen[a]];
      const auto& mb = messages_[chosen[b]];
      for (const auto& [key, reversed] : criteria) {
        auto compare = [](const auto& x, const auto& y) { return x < y ? -1 : (y < x ? 1 : 0); };
        int by = 0;
        switch (key) {
          case By::arrival: by = compare(ma.internal_date, mb.internal_date); break;
          case By::cc: by = compare(ka.cc, kb.cc); break;
          case By::date: by = compare(ka.date, kb.date); break;
          case By::from: by = compare(ka.from, kb.from); break;
          case By::size: by = compare(ma.size, mb.size); break;
          case By::subject: by = compare(ka.subject, kb.subject); break;
          case By::to: by = compare(ka.to, kb.to); break;
        }
        if (by != 0) return reversed ? by > 0 : by < 0;
      }
      return a < b;  // RFC 5256 3: ties go by sequence number (chosen is ascending)
    });
    std::string line = "* SORT";
    for (const auto n : order) {
      const auto i = chosen[n];
      line += " " + std::to_string(uid ? messages_[i].uid : static_cast<int64_t>(i + 1));
    }
    out_ += line + "\r\n";
    tagged("OK SORT completed");
  }

  // RFC 5256 THREAD (imap_thread.h has the algorithms).
  void thread(Cursor& c, bool uid) {
    std::optional<std::string> algorithm, charset;
    if (!c.space() || !(algorithm = c.atom()) || !c.space() || !(charset = c.astring())) return bad("THREAD algorithm charset search");
    const std::string method = upper(*algorithm);
    if (method != "ORDEREDSUBJECT" && method != "REFERENCES") return tagged("NO [CANNOT] ORDEREDSUBJECT or REFERENCES");
    if (upper(*charset) != "UTF-8" && upper(*charset) != "US-ASCII") return tagged("NO [BADCHARSET (UTF-8)] UTF-8 only");
    auto found = matching(c, uid);
    if (!found) return;
    std::vector<std::size_t> chosen;
    std::vector<imap::SortKeys> keys;  // keys[n] for chosen[n]
    sort_keys(*found, uid, chosen, keys, true);
    // REFERENCES reads Message-ID, References and In-Reply-To: the header sections in one query.
    std::unordered_map<int64_t, std::string> headers;
    if (method == "REFERENCES" && !chosen.empty())
      for (auto& [id, header] : service().mailboxes().headers(handle_, mailbox_, messages_[chosen.front()].uid, messages_[chosen.back()].uid))
        headers.emplace(id, std::move(header));
    std::vector<imap::SortKeys> listed;
    for (std::size_t n = 0; n < chosen.size(); ++n) {
      const auto i = chosen[n];
      auto k = std::move(keys[n]);
      if (method == "REFERENCES") {
        const auto kept = headers.find(messages_[i].uid);
        const std::string header = kept != headers.end() ? kept->second : header_of(i);
        const auto own = imap::message_ids(header_field(header, "message-id"));
        if (!own.empty()) k.message_id = own.front();
        k.references = imap::message_ids(header_field(header, "references"));
        if (const auto reply_to = imap::message_ids(header_field(header, "in-reply-to")); k.references.empty() && !reply_to.empty())
          k.references.push_back(reply_to.front());
      }
      listed.push_back(std::move(k));
    }
    auto name = [&](std::size_t k) { return std::to_string(uid ? messages_[chosen[k]].uid : static_cast<int64_t>(chosen[k] + 1)); };
    out_ += "* THREAD " + (method == "REFERENCES" ? imap::thread_references(listed, name) : imap::thread_ordered_subject(listed, name)) +
            "\r\n";
    tagged("OK THREAD completed");
  }

  // The header section of a stored message: from the index, else cut from its file.
  std::string header_of(std::size_t i) {
    const int64_t uid = messages_[i].uid;
    auto kept = service().mailboxes().headers(handle_, mailbox_, uid, uid);
    if (!kept.empty()) return std::move(kept.front().second);
    std::string blob;
    service().mailboxes().with_cache(handle_, mailbox_, [&](const MailboxCache& cache) {
      if (const auto* row = cache.find(uid)) blob = row->blob;
    });
    if (blob.empty()) return {};
    std::string header = service().blobs().read(blob);
    header.resize(imap::header_end(header));
    return header;
  }

  // The unfolded value of a header field (the last one of that name).
  static std::string header_field(const std::string& header, std::string_view name) {
    std::string value;
    bool in_field = false;
    for (std::size_t at = 0; at < header.size();) {
      auto eol = header.find('\n', at);
      if (eol == std::string::npos) eol = header.size();
      std::string line = header.substr(at, eol - at);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      at = eol + 1;
      if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
        if (in_field) value += line;
        continue;
      }
      in_field = ascii_lower(line.substr(0, line.find(':'))) == ascii_lower(name) && line.find(':') != std::string::npos;
      if (in_field) value = line.substr(line.find(':') + 1);
    }
    return value;
  }

  // ---- IDLE (RFC 2177 / RFC 9051 6.3.13) -------------------------------------------------
  // On the connection's executor, after the store changed the selected mailbox.
  void changed_elsewhere() {
    if (!idling_ || closed_) return;
    idle_changed_ = true;
    // A client that is not reading what IDLE already sent gets nothing more piled up: the
    // end of the write (or of the sync under way) looks again.
    if (!busy_ && !writing_) idle_sync();
  }

  void idle_sync() {
    idle_changed_ = false;
    if (state_ != State::selected) return pump();  // IDLE before SELECT: only DONE to wait for
    run_blocking([this] { sync(); });
  }

  void idle_line(const RawCommand& command) {
    idling_ = false;
    const std::string line = command.lines.empty() ? std::string() : upper(command.lines.front());
    if (line != "DONE") return bad("expected DONE");
    tagged("OK IDLE terminated");
  }

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
  std::unordered_map<int64_t, std::string> keywords_;  // of the messages that have any, by UID
  std::string announced_;                              // keywords the last FLAGS response named
  std::optional<MailboxStore::Hold> held_;  // the selected mailbox, while the store keeps its cache
  int64_t state_uidnext_ = 0, state_modseq_ = 0;
};

}  // namespace

void start_imap_session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const ImapSettings> settings) {
  std::make_shared<Session>(std::move(connection), std::move(settings))->start();
}

void refuse_imap_connection(std::shared_ptr<net::Connection> connection, std::string_view reason) {
  auto text = std::make_shared<std::string>("* BYE " + std::string(reason) + "\r\n");
  connection->async_write(asio::buffer(*text), [connection, text](boost::system::error_code, std::size_t) { connection->close(); });
}

}  // namespace coop::mail
