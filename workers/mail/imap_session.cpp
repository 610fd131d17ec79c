// The IMAP server state machine (RFC 9051 3: not authenticated, authenticated, selected,
// logout): the connection, the command table that says which command may run in which
// state, and IDLE. Commands run one at a time on the blocking pool (registry and SQLite);
// reading and writing stay on the connection's strand. The commands themselves are in the
// files imap_server.h names.
#include "workers/mail/imap_session.h"

#include "workers/mail/imap_server.h"

namespace coop::mail::imap_server {

void Session::start() {
  conn_->set_idle_timeout(settings_->login_timeout);
  out_ += "* OK [CAPABILITY " + capabilities() + "] " + settings_->hostname + " IMAP4rev2 ready\r\n";
  flush();
}

void Session::flush() {
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
    // RFC 5465 NOTIFY: what changed is told between commands (and during IDLE) too.
    if (notify_changed_ && notify_ && !busy_) {
      notify_changed_ = false;
      return run_blocking([this] { notify_collect(); });
    }
    if (!busy_) pump();
    return;
  }
  writing_ = true;
  pending_.swap(out_);
  out_.clear();
  if (deflate_writes_) pending_ = deflate_->compress(pending_);
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

void Session::read() {
  if (reading_ || closed_) return;
  reading_ = true;
  conn_->async_read_some(asio::buffer(chunk_.data(), chunk_.size()), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
    self->reading_ = false;
    if (ec) return self->finish();
    if (self->deflate_) {
      // A 16 KiB read may inflate to at most 4 MiB: more is a compression bomb, not mail.
      const auto plain = self->deflate_->decompress(self->chunk_.filled(n), 4 << 20);
      if (!plain) {
        self->out_ += "* BYE compressed data that does not inflate sensibly\r\n";
        self->state_ = State::logout;
        return self->flush();
      }
      self->reader_.feed(*plain);
    } else {
      self->reader_.feed(self->chunk_.filled(n));
    }
    if (!self->busy_ && !self->writing_) self->pump();
  });
}

void Session::finish() {
  if (closed_) return;
  closed_ = true;
  // After BYE the client may still be sending (a refused literal, a compression bomb): the
  // connection drops that for a moment instead of resetting, so the BYE is read.
  if (state_ == State::logout) conn_->close_gracefully();
  else conn_->close();
  // The store's lock may wait on a commit: not on this thread.
  release_when_closed();
}

void Session::release_when_closed() {
  if (closed_ && held_ && !busy_) {
    busy_ = true;
    settings_->runner([self = shared_from_this()] { self->unselect(); });
  }
}

void Session::unselect() {
  contexts_.clear();  // RFC 5267 4.3: updates end when the mailbox is no longer selected
  messages_ = {};
  keywords_ = {};
  saved_ = {};
  if (held_) service().mailboxes().release(handle_, *held_);
  held_.reset();
}

void Session::pump() {
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

void Session::run_blocking(std::function<void()> work) {
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

std::string Session::capabilities() const {
  std::string caps = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE ESEARCH CONTEXT=SEARCH NOTIFY NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE CONDSTORE QUOTA QUOTA=RES-STORAGE LIST-EXTENDED LIST-STATUS SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES QRESYNC BINARY UTF8=ACCEPT STATUS=SIZE WITHIN SEARCHRES MULTIAPPEND CATENATE PREVIEW COMPRESS=DEFLATE SAVEDATE METADATA";
  const bool secure = conn_->is_tls() || (settings_->plaintext_loopback && loopback(conn_->remote_address()));
  if (state_ == State::not_authenticated) {
    if (!conn_->is_tls() && settings_->tls) caps += " STARTTLS";
    caps += secure ? " AUTH=PLAIN AUTH=SCRAM-SHA-256" : " LOGINDISABLED";
  }
  return caps;
}

void Session::dispatch(RawCommand command) {
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

auto Session::find_command(std::string_view name) -> const Command* {
  static constexpr Command kCommands[] = {
      {"CAPABILITY", Needs::any, false, &Session::cmd_capability},
      {"NOOP", Needs::any, false, &Session::cmd_noop},
      {"CHECK", Needs::any, false, &Session::cmd_noop},
      {"LOGOUT", Needs::any, false, &Session::cmd_logout},
      {"ID", Needs::any, false, &Session::cmd_id},
      {"COMPRESS", Needs::authenticated, false, &Session::cmd_compress},
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
      {"SETMETADATA", Needs::authenticated, false, &Session::cmd_setmetadata},
      {"GETMETADATA", Needs::authenticated, false, &Session::cmd_getmetadata},
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
      {"CANCELUPDATE", Needs::selected, false, &Session::cmd_cancelupdate},
      {"NOTIFY", Needs::authenticated, false, &Session::cmd_notify},
  };
  for (const auto& command : kCommands)
    if (command.name == name) return &command;
  return nullptr;
}

void Session::cmd_capability(Cursor&, const std::string&, bool) {
  out_ += "* CAPABILITY " + capabilities() + "\r\n";
  tagged("OK CAPABILITY completed");
}

void Session::cmd_noop(Cursor&, const std::string& name, bool) {
  if (state_ != State::selected) return tagged("OK " + name + " completed");
  run_blocking([this, name] {
    sync();
    tagged("OK " + name + " completed");
  });
}

void Session::cmd_logout(Cursor&, const std::string&, bool) {
  out_ += "* BYE " + settings_->hostname + " closing\r\n";
  tagged("OK LOGOUT completed");
  state_ = State::logout;
}

void Session::cmd_id(Cursor& c, const std::string&, bool) {
  // RFC 2971 3.3: "ID" SP ("(" *(string SP nstring) ")" / NIL), at most 30 pairs of a field
  // up to 30 octets and a value up to 1,024. We say who we are, whatever the client is.
  if (!c.space()) return bad("ID (field value ...) or ID NIL");
  if (!c.take('(')) {
    const auto nil = c.atom();
    if (!nil || upper(*nil) != "NIL" || !c.at_end()) return bad("ID (field value ...) or ID NIL");
  } else {
    int pairs = 0;
    while (!c.take(')')) {
      if (pairs > 0 && !c.space()) return bad("ID pairs are separated by one space");
      const auto field = c.string();
      if (!field || !c.space()) return bad("ID field value");
      const auto value = c.nstring();
      if (!value) return bad("ID field value");
      if (++pairs > 30 || field->size() > 30 || value->size() > 1024)
        return bad("ID takes at most 30 fields of 30 octets with values of 1,024 (RFC 2971)");
    }
    if (!c.at_end()) return bad("ID (field value ...)");
  }
  out_ += "* ID (\"name\" \"coop\" \"vendor\" \"coop\")\r\n";
  tagged("OK ID completed");
}

void Session::cmd_compress(Cursor& c, const std::string&, bool) {
  // RFC 4978 3: COMPRESS DEFLATE; the OK goes out plain, everything after it compressed.
  const auto how = c.space() ? c.atom() : std::nullopt;
  if (!how || upper(*how) != "DEFLATE" || !c.at_end()) return bad("COMPRESS DEFLATE");
  if (deflate_) return tagged("NO [COMPRESSIONACTIVE] compression is on already");
  deflate_ = std::make_unique<imap::DeflateStreams>();
  tagged("OK DEFLATE active");
  after_write_ = [this] {
    deflate_writes_ = true;
    flush();
  };
}

void Session::cmd_enable(Cursor& c, const std::string&, bool) {
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

void Session::cmd_namespace(Cursor&, const std::string&, bool) {
  out_ += "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n";
  tagged("OK NAMESPACE completed");
}

void Session::cmd_idle(Cursor& c, const std::string&, bool) {
  if (!c.at_end()) return bad("IDLE takes nothing");
  idling_ = true;
  idle_changed_ = true;  // what changed since the last command comes first
  out_ += "+ idling\r\n";
}

void Session::cmd_list(Cursor& c, const std::string& name, bool) {
  run_blocking([this, c, name]() mutable { list(c, name == "LSUB"); });
}

void Session::cmd_select(Cursor& c, const std::string& name, bool) {
  run_blocking([this, c, name]() mutable { select(c, name == "EXAMINE"); });
}

void Session::cmd_mailbox(Cursor& c, const std::string& name, bool) {
  run_blocking([this, c, name]() mutable { mailbox_command(c, name); });
}

void Session::cmd_setquota(Cursor&, const std::string&, bool) {
  tagged("NO [NOPERM] quotas are set in the member registry (coop member set --quota)");
}

void Session::cmd_copy(Cursor& c, const std::string& name, bool uid) {
  run_blocking([this, c, uid, name]() mutable { copy(c, uid, name == "MOVE"); });
}

void Session::cmd_close(Cursor&, const std::string& name, bool) {
  const bool expunging = name == "CLOSE" && !read_only_;
  run_blocking([this, expunging, name] {
    // RFC 9051 6.4.1: CLOSE expunges silently; UNSELECT does not.
    if (expunging) service().mailboxes().expunge(handle_, held_->key, std::nullopt);
    state_ = State::authenticated;
    unselect();
    tagged("OK " + name + " completed");
  });
}

void Session::changed_elsewhere() {
  if (!idling_ || closed_) return;
  idle_changed_ = true;
  // A client that is not reading what IDLE already sent gets nothing more piled up: the
  // end of the write (or of the sync under way) looks again.
  if (!busy_ && !writing_) idle_sync();
}

void Session::idle_sync() {
  idle_changed_ = false;
  if (state_ != State::selected) return pump();  // IDLE before SELECT: only DONE to wait for
  run_blocking([this] { sync(); });
}

void Session::idle_line(const RawCommand& command) {
  idling_ = false;
  const std::string line = command.lines.empty() ? std::string() : upper(command.lines.front());
  if (line != "DONE") return bad("expected DONE");
  tagged("OK IDLE terminated");
}

}  // namespace coop::mail::imap_server

namespace coop::mail {

using imap_server::Session;

void start_imap_session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const ImapSettings> settings) {
  std::make_shared<Session>(std::move(connection), std::move(settings))->start();
}

void refuse_imap_connection(std::shared_ptr<net::Connection> connection, std::string_view reason) {
  auto text = std::make_shared<std::string>("* BYE " + std::string(reason) + "\r\n");
  connection->async_write(boost::asio::buffer(*text), [connection, text](boost::system::error_code, std::size_t) { connection->close(); });
}

}  // namespace coop::mail
