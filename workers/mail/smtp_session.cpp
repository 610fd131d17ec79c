// The SMTP server state machine.
#include "workers/mail/smtp_session.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <random>

#include "common/auth/member_client.h"
#include "common/base64.h"
#include "common/blob_store.h"
#include "common/error.h"
#include "common/mail/message.h"
#include "common/net/admission.h"
#include "common/net/read_buffer.h"
#include "common/net/tcp_listener.h"
#include "common/text.h"
#include "workers/mail/imap_parser.h"
#include "workers/mail/imip_forward.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/vacation.h"
#include "workers/mail/auth/auth_results.h"
#include "workers/mail/outbound/outbound.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/smtp_parser.h"
#include "workers/mail/spam/filter.h"
#include "workers/mail/spam/greylist.h"
#include "workers/mail/submission.h"

namespace coop::mail {

namespace {

namespace asio = boost::asio;

std::string session_id() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char out[32];
  std::snprintf(out, sizeof out, "%08llx%06llx", static_cast<unsigned long long>(::time(nullptr)),
                static_cast<unsigned long long>((counter++ ^ rng()) & 0xffffff));
  return out;
}

// Bytes of messages held in memory for DKIM, SPF and DMARC, across every session of the
// process; a taken share goes back when the last holder lets go.
class CheckBudget {
 public:
  static std::shared_ptr<CheckBudget> take(uint64_t bytes, uint64_t limit) {
    static std::atomic<uint64_t> in_use{0};
    uint64_t now = in_use.load();
    do {
      if (now + bytes > limit && now > 0) return nullptr;  // one message alone always fits
    } while (!in_use.compare_exchange_weak(now, now + bytes));
    return std::shared_ptr<CheckBudget>(new CheckBudget(in_use, bytes));
  }
  ~CheckBudget() { in_use_ -= bytes_; }

 private:
  CheckBudget(std::atomic<uint64_t>& in_use, uint64_t bytes) : in_use_(in_use), bytes_(bytes) {}
  std::atomic<uint64_t>& in_use_;
  uint64_t bytes_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const SmtpSettings> settings)
      : conn_(std::move(connection)), settings_(std::move(settings)), session_timer_(conn_->executor()) {}

  void start() {
    conn_->set_idle_timeout(settings_->limits.command_timeout);
    session_timer_.expires_after(settings_->limits.session_timeout);
    session_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->closed_) return;
      self->out_ += "421 4.4.2 " + self->settings_->hostname + " Session time limit reached, closing\r\n";
      self->closing_ = true;
      self->flush();
    });
    reply("220 " + settings_->hostname + " ESMTP coop");
    flush_then_read();
  }

 private:
  enum class Phase { command, data, bdat, bdat_discard, auth_plain, auth_login_user, auth_login_password };

  // ---- I/O -------------------------------------------------------------------------------

  void reply(const std::string& line) { out_ += line + "\r\n"; }

  void flush_then_read() {
    if (!out_.empty()) {
      flush();
      return;
    }
    read();
  }

  // Writes what is queued; reads again afterwards unless the session is ending.
  void flush() {
    if (writing_ || closed_) return;
    if (out_.empty()) {
      if (closing_) finish();
      else if (!waiting_) read();
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
    if (reading_ || closed_ || closing_ || waiting_) return;
    reading_ = true;
    conn_->async_read_some(asio::buffer(chunk_.data(), chunk_.size()), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      self->reading_ = false;
      if (ec) return self->finish();
      self->in_.append(self->chunk_.filled(n));
      self->process();
    });
  }

  void finish() {
    if (closed_) return;
    closed_ = true;
    session_timer_.cancel();
    writer_.reset();
    conn_->close();
  }

  // ---- input -----------------------------------------------------------------------------

  void process() {
    while (!waiting_ && !closing_ && !closed_) {
      if (phase_ == Phase::data) {
        if (!consume_data()) break;
        continue;
      }
      if (phase_ == Phase::bdat || phase_ == Phase::bdat_discard) {
        if (!consume_bdat()) break;
        continue;
      }
      const auto eol = in_.find('\n');
      if (eol == std::string::npos) {
        if (in_.size() > settings_->limits.max_command_line) {
          in_.clear();
          // One reply for one long line, however many reads it takes to arrive.
          if (!discarding_long_line_) bad_command("500 5.5.2 Line too long");
          discarding_long_line_ = true;
        }
        break;
      }
      std::string line = in_.substr(0, eol);
      in_.erase(0, eol + 1);
      if (discarding_long_line_) {  // the tail of a line already refused
        discarding_long_line_ = false;
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > settings_->limits.max_command_line) {
        phase_ = Phase::command;
        bad_command("500 5.5.2 Line too long");
        continue;
      }
      if (phase_ != Phase::command) {
        auth_response(line);
        continue;
      }
      command(line);
    }
    if (!waiting_) flush();
  }

  void bad_command(const std::string& text) {
    reply(text);
    if (++bad_commands_ >= settings_->limits.max_bad_commands) {
      reply("421 4.7.0 " + settings_->hostname + " Too many errors, closing");
      closing_ = true;
    }
  }

  void command(const std::string& line) {
    const auto cmd = parse_command(line);
    switch (cmd.verb) {
      case SmtpVerb::ehlo:
      case SmtpVerb::helo: return hello(cmd);
      case SmtpVerb::mail: return mail(cmd.argument);
      case SmtpVerb::rcpt: return rcpt(cmd.argument);
      case SmtpVerb::data: return data();
      case SmtpVerb::bdat: return bdat(cmd.argument);
      case SmtpVerb::rset:
        reset_transaction();
        return reply("250 2.0.0 Ok");
      case SmtpVerb::noop: return reply("250 2.0.0 Ok");
      case SmtpVerb::quit:
        reply("221 2.0.0 " + settings_->hostname + " Bye");
        closing_ = true;
        return;
      case SmtpVerb::vrfy: return reply("252 2.5.0 Cannot VRFY; send some mail and it will be delivered if it can");
      case SmtpVerb::help: return reply("214 2.0.0 See RFC 5321");
      case SmtpVerb::starttls: return starttls(cmd.argument);
      case SmtpVerb::auth:
        if (!settings_->submission) return bad_command("502 5.5.1 AUTH is offered on the submission port, not here");
        return auth(cmd.argument);
      case SmtpVerb::unknown: return bad_command("500 5.5.2 Command not recognised");
    }
  }

  void hello(const SmtpCommand& cmd) {
    if (cmd.argument.empty()) return bad_command("501 5.5.4 Syntax: EHLO hostname");
    reset_transaction();
    helo_ = cmd.argument.substr(0, 255);
    esmtp_ = cmd.verb == SmtpVerb::ehlo;
    if (!esmtp_) return reply("250 " + settings_->hostname);
    reply("250-" + settings_->hostname + " greets " + helo_);
    reply("250-PIPELINING");
    reply("250-SIZE " + std::to_string(settings_->limits.max_message_bytes));
    reply("250-8BITMIME");
    reply("250-SMTPUTF8");
    reply("250-ENHANCEDSTATUSCODES");
    reply("250-CHUNKING");
    if (settings_->tls && !conn_->is_tls()) reply("250-STARTTLS");
    // RFC 4954 4 and RFC 8314 3: no password over a connection in the clear.
    if (settings_->submission && conn_->is_tls() && handle_.empty()) reply("250-AUTH PLAIN LOGIN");
    reply("250 HELP");
  }

  void starttls(const std::string& argument) {
    if (!settings_->tls || conn_->is_tls()) return bad_command("503 5.5.1 TLS is already active or not offered");
    if (!argument.empty()) return bad_command("501 5.5.4 Syntax: STARTTLS");
    // RFC 3207 4.2 / RFC 3207 6: nothing the client pipelined after STARTTLS may be acted on.
    in_.clear();
    reply("220 2.0.0 Ready to start TLS");
    waiting_ = true;
    after_write_ = [self = shared_from_this()] {
      self->conn_->async_start_tls([self](boost::system::error_code ec) {
        if (ec) return self->finish();
        // RFC 3207 4.2: the session starts over, EHLO included.
        self->helo_.clear();
        self->reset_transaction();
        self->waiting_ = false;
        self->read();
      });
    };
    flush();
  }

  // ---- AUTH (RFC 4954) ---------------------------------------------------------------------

  void auth(const std::string& argument) {
    if (helo_.empty()) return bad_command("503 5.5.1 Send EHLO first");
    if (!handle_.empty()) return bad_command("503 5.5.1 Already authenticated");
    if (in_transaction_) return bad_command("503 5.5.1 AUTH is not allowed during a mail transaction");
    if (!conn_->is_tls()) return bad_command("538 5.7.11 Encryption required for requested authentication mechanism");
    const auto space = argument.find(' ');
    const auto mechanism = ascii_lower(argument.substr(0, space));
    const std::string initial = space == std::string::npos ? std::string() : argument.substr(space + 1);
    if (mechanism == "plain") {
      if (initial.empty()) {
        phase_ = Phase::auth_plain;
        return reply("334 ");
      }
      return auth_plain(initial);
    }
    if (mechanism == "login") {
      if (initial.empty()) {
        phase_ = Phase::auth_login_user;
        return reply("334 VXNlcm5hbWU6");  // "Username:"
      }
      phase_ = Phase::auth_login_user;
      return auth_response(initial);
    }
    bad_command("504 5.5.4 Unrecognized authentication type; PLAIN and LOGIN are offered");
  }

  // A line of the SASL exchange (RFC 4954 4): base64, or "*" to give up.
  void auth_response(const std::string& line) {
    const Phase phase = phase_;
    phase_ = Phase::command;
    if (line == "*") return bad_command("501 5.0.0 Authentication cancelled");
    if (phase == Phase::auth_plain) return auth_plain(line);
    const auto decoded = base64_decode(line == "=" ? std::string() : line);
    if (!decoded) return bad_command("501 5.5.2 Cannot decode the response (base64)");
    if (phase == Phase::auth_login_user) {
      login_user_ = *decoded;
      phase_ = Phase::auth_login_password;
      return reply("334 UGFzc3dvcmQ6");  // "Password:"
    }
    verify(login_user_, *decoded);
  }

  void auth_plain(const std::string& response) {
    const auto plain = imap::decode_sasl_plain(response == "=" ? std::string() : response);
    if (!plain) return bad_command("501 5.5.2 Cannot decode the response (RFC 4616 PLAIN)");
    // Nobody may act for another member here: an authorization identity must be oneself.
    if (!plain->authzid.empty() && ascii_lower(plain->authzid) != ascii_lower(plain->authcid))
      return bad_command("535 5.7.8 Authentication credentials invalid");
    verify(plain->authcid, plain->password);
  }

  void verify(const std::string& user, const std::string& password) {
    waiting_ = true;
    settings_->runner([self = shared_from_this(), user, password] {
      std::string answer, handle;
      std::vector<std::string> sendable;
      try {
        const auto member = auth::verify_credentials(*self->settings_->home, user, password, "mail",
                                                     self->conn_->remote_address());
        sendable = sendable_addresses(self->settings_->service->directory(), member.handle, member.emails);
        handle = member.handle;
        answer = "235 2.7.0 Authentication successful";
      } catch (const Error& e) {
        // Why stays unsaid (a guesser learns nothing), except when trying later may help.
        const bool later = e.code() == errc::kThrottled || e.code() == errc::kNotRunning;
        answer = later ? "454 4.7.0 Temporary authentication failure, try again later"
                       : "535 5.7.8 Authentication credentials invalid";
      } catch (const std::exception& e) {
        spdlog::warn("submission: verifying {} failed: {}", user, e.what());
        answer = "454 4.7.0 Temporary authentication failure, try again later";
      }
      asio::post(self->conn_->executor(), [self, answer, handle, sendable] {
        self->waiting_ = false;
        if (!handle.empty()) {
          self->handle_ = handle;
          self->sendable_ = sendable;
          self->conn_->mark_authenticated();
          self->reply(answer);
        } else {
          self->bad_command(answer);
        }
        self->process();
      });
    });
  }

  // ---- transaction ------------------------------------------------------------------------

  void reset_transaction() {
    if (in_transaction_) conn_->set_idle_timeout(settings_->limits.command_timeout);
    in_transaction_ = false;
    sender_.clear();
    recipients_.clear();
    recipient_addresses_.clear();
    declared_size_ = 0;
    smtputf8_ = false;
    eight_bit_ = false;
    writer_.reset();
    submitted_.clear();
    message_bytes_ = 0;
    too_big_ = false;
    chunking_ = false;
  }

  void mail(const std::string& argument) {
    if (helo_.empty()) return bad_command("503 5.5.1 Send EHLO first");
    if (in_transaction_) return bad_command("503 5.5.1 Nested MAIL command");
    auto from = parse_mail_from(argument);
    if (!from.error.empty()) return bad_command(from.error);
    if (from.size && *from.size > settings_->limits.max_message_bytes)
      return reply("552 5.3.4 Message size exceeds the limit of " + std::to_string(settings_->limits.max_message_bytes));
    if (settings_->submission) {
      // RFC 6409 4.3 and 6.1: only a member, and only as one of their own addresses.
      if (handle_.empty()) return bad_command("530 5.7.0 Authentication required");
      if (from.address.empty() || !std::binary_search(sendable_.begin(), sendable_.end(), ascii_lower(from.address)))
        return reply("553 5.7.1 You may not send as <" + from.address + ">");
      return accept_sender(from);
    }
    // A sender in a domain this shard hosts is one of its members, who send through
    // submission with AUTH; on this port only trusted_networks may use such an address, so
    // nobody outside can pose as a member to another member.
    const std::string domain = from.address.empty() ? std::string() : split_address(from.address).second;
    if (domain.empty() || trusted(conn_->remote_address())) return accept_sender(from);
    waiting_ = true;
    settings_->runner([self = shared_from_this(), from, domain] {
      bool hosted = true;  // when the lookup fails, refuse for now rather than let a forgery in
      try {
        hosted = self->settings_->service->directory().find_domain(domain).has_value();
      } catch (const std::exception& e) {
        spdlog::warn("smtp: domain lookup for {} failed: {}", domain, e.what());
      }
      asio::post(self->conn_->executor(), [self, from, hosted] {
        self->waiting_ = false;
        if (hosted)
          self->reply("550 5.7.1 Mail from a domain hosted here must be sent through submission with AUTH");
        else
          self->accept_sender(from);
        self->process();
      });
    });
  }

  bool trusted(const std::string& address) const {
    for (const auto& network : settings_->trusted_networks)
      if (network.contains(address)) return true;
    return false;
  }

  void accept_sender(const MailFrom& from) {
    in_transaction_ = true;
    conn_->set_idle_timeout(settings_->limits.idle_timeout);
    sender_ = from.address;
    declared_size_ = from.size.value_or(0);
    smtputf8_ = from.smtputf8;
    eight_bit_ = from.eight_bit;
    reply("250 2.1.0 Sender ok");
  }

  void rcpt(const std::string& argument) {
    if (!in_transaction_) return bad_command("503 5.5.1 Need MAIL before RCPT");
    auto to = parse_rcpt_to(argument, smtputf8_);
    if (!to.error.empty()) return bad_command(to.error);
    if (recipient_addresses_.size() >= settings_->limits.max_recipients)
      return reply("452 4.5.3 Too many recipients");
    // The registry lookup blocks: park the session until it answers.
    waiting_ = true;
    auto self = shared_from_this();
    settings_->runner([self, address = to.address] {
      RecipientCheck check;
      try {
        // Submission relays anywhere for a member; hosted domains are checked now, so that
        // a typo in a colleague's address is refused at once instead of bounced later.
        const auto domain = split_address(address).second;
        if (self->settings_->submission && !domain.empty() &&
            !self->settings_->service->directory().find_domain(domain)) {
          check.accepted = true;
          check.reply = "250 2.1.5 Recipient ok";
        } else {
          check = self->settings_->service->check_recipient(address, self->declared_size_);
          if (check.accepted && self->settings_->greylist && !self->trusted(self->conn_->remote_address()))
            self->greylist(address, check);
        }
      } catch (const std::exception& e) {
        spdlog::warn("smtp: recipient check for {} failed: {}", address, e.what());
        check.reply = "451 4.3.0 Temporary failure looking up the recipient, try again later";
      }
      asio::post(self->conn_->executor(), [self, address, check = std::move(check)] {
        self->waiting_ = false;
        if (check.accepted) {
          self->recipient_addresses_.push_back(address);
          if (self->settings_->submission) self->recipients_.push_back({address, 0});
          for (const auto& r : check.recipients) {
            bool dup = false;
            for (const auto& have : self->recipients_) dup = dup || have.handle == r.handle;
            if (!dup) self->recipients_.push_back(r);
          }
        }
        self->reply(check.reply);
        self->process();
      });
    });
  }

  // RFC 6647: an unknown (network, sender, recipient) is told to come back later. On the
  // blocking pool.
  void greylist(const std::string& address, RecipientCheck& check) {
    const auto now = static_cast<int64_t>(::time(nullptr));
    const auto wait = settings_->greylist->check(net::network_of(conn_->remote_address()), sender_, address, now);
    if (wait == 0) return;
    spdlog::info("smtp: greylisted <{}> -> <{}> from {} for {} s", sender_, address, conn_->remote_address(), wait);
    check.accepted = false;
    check.recipients.clear();
    check.reply = "451 4.7.1 Greylisted, please try again in " + std::to_string(wait) + " seconds (RFC 6647)";
  }

  // Return-Path (RFC 5321 4.4) and a Received trace line go on top of every message.
  void begin_message() {
    message_id_ = session_id();
    const bool tls = conn_->is_tls();
    // RFC 3848: ESMTPSA for an authenticated session over TLS.
    const std::string with = std::string(smtputf8_ ? "UTF8SMTP" : "ESMTP") + (tls ? "S" : "") + (handle_.empty() ? "" : "A");
    std::string trace;
    if (settings_->submission) {
      submitted_.clear();
    } else {
      writer_.emplace(settings_->service->blobs().writer());
      trace = "Return-Path: <" + sender_ + ">\r\n";
    }
    trace += "Received: from " + helo_ + " ([" + conn_->remote_address() + "])\r\n\tby " + settings_->hostname +
             " (coop) with " + with + " id " + message_id_;
    if (recipient_addresses_.size() == 1) trace += "\r\n\tfor <" + recipient_addresses_.front() + ">";
    trace += "; " + rfc5322_date(::time(nullptr)) + "\r\n";
    trace_size_ = trace.size();
    if (settings_->submission) submitted_ = trace;
    else writer_->append(trace);
  }

  void data() {
    if (chunking_) return bad_command("503 5.5.1 DATA after BDAT is not allowed");
    if (!in_transaction_) return bad_command("503 5.5.1 Need MAIL first");
    if (recipients_.empty()) return bad_command("554 5.5.1 No valid recipients");
    begin_message();
    phase_ = Phase::data;
    data_reader_ = DataReader();
    reply("354 End data with <CR><LF>.<CR><LF>");
  }

  void append_body(std::string_view bytes) {
    message_bytes_ += bytes.size();
    if (message_bytes_ > settings_->limits.max_message_bytes) {
      too_big_ = true;  // keep reading to the end, store nothing more
      return;
    }
    if (settings_->submission) submitted_.append(bytes);
    else writer_->append(bytes);
  }

  // RFC 5321 4.1.1.4: up to <CRLF>.<CRLF> and nothing else (DataReader). Returns false when
  // more input is needed.
  bool consume_data() {
    content_.clear();
    const bool done = data_reader_.consume(in_, content_);
    append_body(content_);
    if (!done) return false;
    if (data_reader_.bare_line_feeds() > 0)
      spdlog::info("smtp {}: {} bare LF line ends taken as CRLF", conn_->remote_address(), data_reader_.bare_line_feeds());
    end_of_message();
    return true;
  }

  void bdat(const std::string& argument) {
    const auto chunk = parse_bdat(argument);
    if (!chunk.error.empty()) return bad_command(chunk.error);
    bdat_remaining_ = chunk.size;
    bdat_last_ = chunk.last;
    // RFC 3030 2: the chunk's bytes follow whatever we answer, so they are always read.
    if (!in_transaction_ || recipients_.empty()) {
      phase_ = Phase::bdat_discard;
      bdat_error_ = in_transaction_ ? "554 5.5.1 No valid recipients" : "503 5.5.1 Need MAIL and RCPT first";
      return;
    }
    if (!chunking_) {
      chunking_ = true;
      bdat_previous_ = '\n';
      begin_message();
    }
    phase_ = Phase::bdat;
  }

  bool consume_bdat() {
    const auto take = static_cast<std::size_t>(std::min<uint64_t>(bdat_remaining_, in_.size()));
    if (phase_ == Phase::bdat) {
      content_.clear();
      append_crlf_normalised(std::string_view(in_).substr(0, take), bdat_previous_, content_);
      append_body(content_);
    }
    in_.erase(0, take);
    bdat_remaining_ -= take;
    if (bdat_remaining_ > 0) return false;
    if (phase_ == Phase::bdat_discard) {
      phase_ = Phase::command;
      bad_command(bdat_error_);
      return true;
    }
    phase_ = Phase::command;
    if (bdat_last_) {
      end_of_message();
    } else {
      reply("250 2.0.0 " + std::to_string(message_bytes_) + " octets received");
    }
    return true;
  }

  void end_of_message() {
    phase_ = Phase::command;
    if (too_big_) {
      reply("552 5.3.4 Message size exceeds the limit of " + std::to_string(settings_->limits.max_message_bytes));
      reset_transaction();
      return;
    }
    if (settings_->submission) return end_of_submission();
    if (settings_->dns || (settings_->spam && !trusted(conn_->remote_address()))) return end_of_checked_message();
    // Blob fsync and index commits block: the reply waits for them, as it must.
    waiting_ = true;
    auto self = shared_from_this();
    auto writer = std::make_shared<BlobStore::Writer>(std::move(*writer_));
    writer_.reset();
    settings_->runner([self, writer] {
      std::string answer;
      try {
        const auto size = writer->size();
        const auto blob = writer->commit();
        const auto delivered = self->settings_->service->deliver(blob, size, self->recipients_,
                                                                 static_cast<int64_t>(::time(nullptr)));
        answer = "250 2.0.0 Ok: delivered as " + self->message_id_;
        spdlog::info("smtp {}: from=<{}> size={} delivered to {} member(s) blob={}", self->message_id_,
                     self->sender_, size, delivered.uids.size(), blob.substr(0, 12));
      } catch (const Error& e) {
        answer = e.code() == errc::kQuotaExceeded ? std::string(e.what())
                                              : "451 4.3.0 Local error in processing, message not accepted";
        if (e.code() != errc::kQuotaExceeded) spdlog::error("smtp {}: delivery failed: {}", self->message_id_, e.what());
      } catch (const std::exception& e) {
        answer = "451 4.3.0 Local error in processing, message not accepted";
        spdlog::error("smtp {}: delivery failed: {}", self->message_id_, e.what());
      }
      self->answer_later(answer);
    });
  }

  // Port 25 with checks: the message is read back from its temporary file, DKIM and SPF
  // run side by side, then DMARC on their results; what is stored is the trace, our
  // Authentication-Results (RFC 8601) and the message without forged ones.
  void end_of_checked_message() {
    waiting_ = true;
    auto self = shared_from_this();
    auto writer = std::make_shared<BlobStore::Writer>(std::move(*writer_));
    writer_.reset();
    // Checking holds the message in memory: all sessions together stay within
    // check_memory_bytes, and a message over the budget is deferred, never judged unchecked.
    auto budget = CheckBudget::take(writer->size(), settings_->limits.check_memory_bytes);
    if (!budget) {
      spdlog::warn("smtp {}: {} bytes to check would exceed check_memory_bytes; deferred", message_id_, writer->size());
      return answer_later("451 4.3.2 Too busy to check this message now, try again later");
    }
    settings_->runner([self, writer, budget] {
      try {
        auto all = std::make_shared<std::string>(writer->contents());
        std::string trace = all->substr(0, self->trace_size_);
        all->erase(0, self->trace_size_);
        std::shared_ptr<const std::string> message = std::move(all);
        asio::post(self->conn_->executor(), [self, writer, message, trace = std::move(trace), budget] {
          self->check_message(writer, message, trace, budget);
        });
      } catch (const std::exception& e) {
        spdlog::error("smtp {}: reading the message back failed: {}", self->message_id_, e.what());
        self->answer_later("451 4.3.0 Local error in processing, message not accepted");
      }
    });
  }

  void answer_later(std::string answer) {
    asio::post(conn_->executor(), [self = shared_from_this(), answer = std::move(answer)] {
      self->waiting_ = false;
      self->reset_transaction();
      self->reply(answer);
      self->process();
    });
  }

  void check_message(std::shared_ptr<BlobStore::Writer> writer, std::shared_ptr<const std::string> message,
                     std::string trace, std::shared_ptr<CheckBudget> budget) {
    struct Join {
      std::mutex mutex;
      int left = 2;
      InboundAuth auth;
    };
    auto self = shared_from_this();
    if (!settings_->dns)  // [workers.mail] check_inbound = false: only the spam score
      return settings_->runner([self, message, trace, budget] { self->store_checked(*message, trace, nullptr); });
    auto join = std::make_shared<Join>();
    join->auth.mail_from = sender_;
    join->auth.helo = helo_;
    // Both answers in: DMARC, then store.
    auto next = [self, join, writer, message, trace, budget] {
      const auto domain = from_domain(*message);
      dmarc::evaluate(*self->settings_->dns, domain, join->auth.dkim, join->auth.spf,
                      [self, join, writer, message, trace, budget](dmarc::Outcome outcome) {
                        join->auth.dmarc = std::move(outcome);
                        self->settings_->runner([self, join, message, trace, budget] {
                          self->store_checked(*message, trace, &join->auth);
                        });
                      });
    };
    const auto now = static_cast<int64_t>(::time(nullptr));
    dkim::verify_message(*settings_->dns, message, now, [join, next](std::vector<dkim::Verdict> verdicts) {
      std::unique_lock lock(join->mutex);
      join->auth.dkim = std::move(verdicts);
      if (--join->left == 0) {
        lock.unlock();
        next();
      }
    });
    spf::check_host(*settings_->dns, spf::Query{conn_->remote_address(), sender_, helo_, settings_->hostname},
                    [join, next](spf::Outcome outcome) {
                      std::unique_lock lock(join->mutex);
                      join->auth.spf = std::move(outcome);
                      if (--join->left == 0) {
                        lock.unlock();
                        next();
                      }
                    });
  }

  // On the blocking pool. auth: null when [workers.mail] check_inbound is off.
  void store_checked(const std::string& message, const std::string& trace, const InboundAuth* auth) {
    const dmarc::Outcome no_dmarc;
    const auto& d = auth ? auth->dmarc : no_dmarc;
    if (auth) {
      std::string verdicts;
      for (const auto& v : auth->dkim) verdicts += (verdicts.empty() ? "" : ",") + v.result;
      spdlog::info("smtp {}: from=<{}> dkim={} spf={} dmarc={}{}", message_id_, sender_, verdicts.empty() ? "none" : verdicts,
                   spf::result_name(auth->spf.result), d.result, d.result == "fail" ? " p=" + d.policy : "");
    }
    // RFC 7489 6.6.2 and 10.3: a reject policy is refused with 550 at the end of DATA.
    if (d.result == "fail" && d.policy == "reject")
      return answer_later("550 5.7.1 Rejected by the DMARC policy of " + d.from_domain +
                          ": neither SPF nor DKIM passed for it");
    std::string answer;
    std::vector<Recipient> in_inbox;  // whose calendars hear of invitations in the message
    try {
      const auto now = static_cast<int64_t>(::time(nullptr));
      // What goes on top: the Return-Path, our Authentication-Results and spam verdict, then
      // the Received trace; from the message, fields that claim to be ours are dropped.
      const std::string return_path = trace.substr(0, trace.find("\r\n") + 2);
      const std::string results = auth ? authentication_results(settings_->hostname, *auth) : std::string();
      const std::string received = trace.substr(trace.find("\r\n") + 2);
      std::string body = auth ? strip_our_results(message, settings_->hostname) : message;
      // One copy of the message for every recipient; each is filed in INBOX or Junk.
      std::string verdict;
      std::vector<Recipient> to_inbox, to_junk;
      const bool quarantine = d.result == "fail" && d.policy == "quarantine";
      if (auto* filter = settings_->spam; filter && !trusted(conn_->remote_address())) {
        body = spam::strip_spam_headers(body);
        const auto facts = message_text(body);
        auto score = filter->score(facts, auth, now);
        if (settings_->blocklist_dns)
          for (auto& h : spam::blocklist_hits(*settings_->blocklist_dns, filter->settings(), conn_->remote_address(), facts))
            score.add(std::move(h));
        std::string tests;
        for (const auto& h : score.hits) tests += (tests.empty() ? "" : ",") + h.name;
        spdlog::info("smtp {}: spam score {:.1f} ({})", message_id_, score.total, tests.empty() ? "no tests" : tests);
        if (score.total >= filter->settings().reject)
          return answer_later("550 5.7.1 Message refused as spam (score " + std::to_string(static_cast<int>(score.total)) +
                              "); ask the recipient to add you as a contact");
        // The fields tell the shard's verdict; a member's own classifier (per_member) may
        // still file their copy in Junk or INBOX.
        verdict = spam::spam_headers(score, filter->settings().junk);
        for (const auto& r : recipients_) {
          const auto own = filter->for_member(score, facts, r.handle);
          if (own.total != score.total)
            spdlog::info("smtp {}: {}'s own classifier scores it {:.1f}", message_id_, r.handle, own.total);
          (quarantine || own.total >= filter->settings().junk ? to_junk : to_inbox).push_back(r);
        }
      } else {
        (quarantine ? to_junk : to_inbox) = recipients_;
      }
      const std::string bytes = return_path + results + verdict + received + body;
      // Quotas first for everyone: the message goes to all of them or, with 552, to none.
      settings_->service->check_quota(recipients_, bytes.size());
      const auto blob = settings_->service->blobs().put(bytes);
      std::size_t delivered = 0;
      std::string mailboxes;
      for (const auto* group : {&to_inbox, &to_junk}) {
        if (group->empty()) continue;
        const std::string mailbox = group == &to_junk ? "Junk" : "INBOX";
        delivered += settings_->service->deliver(blob, bytes.size(), *group, now, mailbox).uids.size();
        mailboxes += (mailboxes.empty() ? "" : ",") + mailbox;
      }
      in_inbox = to_inbox;
      answer = "250 2.0.0 Ok: delivered as " + message_id_;
      spdlog::info("smtp {}: size={} delivered to {} member(s) in {} blob={}", message_id_, bytes.size(), delivered,
                   mailboxes, blob.substr(0, 12));
    } catch (const Error& e) {
      answer = e.code() == errc::kQuotaExceeded ? std::string(e.what())
                                               : "451 4.3.0 Local error in processing, message not accepted";
      if (e.code() != errc::kQuotaExceeded) spdlog::error("smtp {}: delivery failed: {}", message_id_, e.what());
    } catch (const std::exception& e) {
      answer = "451 4.3.0 Local error in processing, message not accepted";
      spdlog::error("smtp {}: delivery failed: {}", message_id_, e.what());
    }
    // The envelope, read before the answer lets the client start its next transaction.
    const auto envelope_sender = sender_;
    const auto addresses = recipient_addresses_;
    answer_later(answer);
    // After the answer: invitations and replies by mail reach the calendars (RFC 6047), and
    // only when DMARC vouches for the From: address they claim to come from.
    if (!in_inbox.empty() && settings_->home)
      forward_calendar_mail(*settings_->home, message, in_inbox, d.result == "pass");
    // Vacation responses (RFC 3834), to the envelope sender.
    if (!in_inbox.empty() && settings_->vacation) {
      const bool verified = !auth || std::string_view(spf::result_name(auth->spf.result)) == "pass" || d.result == "pass";
      settings_->vacation->after_delivery(message, envelope_sender, verified, addresses, in_inbox, static_cast<int64_t>(::time(nullptr)));
    }
  }

  // RFC 6409 8: check and complete the message, sign it, queue it durably, then 250.
  void end_of_submission() {
    waiting_ = true;
    auto self = shared_from_this();
    auto message = std::make_shared<std::string>(std::move(submitted_));
    submitted_.clear();
    settings_->runner([self, message] {
      std::string answer;
      try {
        const auto now = static_cast<int64_t>(::time(nullptr));
        // The Received field stays on top; what follows it is the member's message.
        const auto trace_end = self->trace_size_;
        auto prepared = prepare_submission(std::string_view(*message).substr(trace_end), self->sendable_, now);
        if (prepared.code != 250) {
          answer = prepared.reply;
        } else {
          const auto id = self->settings_->outbound->submit(self->handle_, self->sender_, self->recipient_addresses_,
                                                            prepared.from_domain, message->substr(0, trace_end) + prepared.message,
                                                            message->substr(0, trace_end) + prepared.sent_copy,
                                                            self->smtputf8_);
          answer = "250 2.0.0 Ok: queued as " + std::to_string(id);
          spdlog::info("submission {}: {} from=<{}> rcpts={} size={} queued as {}", self->message_id_, self->handle_,
                       self->sender_, self->recipient_addresses_.size(), message->size(), id);
        }
      } catch (const std::exception& e) {
        answer = "451 4.3.0 Local error in processing, message not accepted";
        spdlog::error("submission {}: queueing failed: {}", self->message_id_, e.what());
      }
      self->answer_later(answer);
    });
  }

  std::shared_ptr<net::Connection> conn_;
  std::shared_ptr<const SmtpSettings> settings_;
  asio::steady_timer session_timer_;
  net::ReadBuffer chunk_{64 << 10};
  std::string in_, out_, pending_;
  std::function<void()> after_write_;
  bool reading_ = false, writing_ = false, waiting_ = false, closing_ = false, closed_ = false;
  bool discarding_long_line_ = false;
  int bad_commands_ = 0;
  Phase phase_ = Phase::command;

  std::string helo_;
  bool esmtp_ = false;
  bool in_transaction_ = false;
  std::string sender_;
  std::vector<Recipient> recipients_;
  std::vector<std::string> recipient_addresses_;
  uint64_t declared_size_ = 0;
  bool smtputf8_ = false, eight_bit_ = false;
  std::optional<BlobStore::Writer> writer_;
  uint64_t message_bytes_ = 0;
  bool too_big_ = false;
  DataReader data_reader_;
  std::string content_;  // what one read of DATA yields, on its way to the blob
  bool chunking_ = false;
  uint64_t bdat_remaining_ = 0;
  bool bdat_last_ = false;
  char bdat_previous_ = '\n';  // the last byte of the chunk before
  std::string bdat_error_;
  std::string message_id_;
  // Submission:
  std::string handle_;                 // the member, once AUTH succeeded
  std::vector<std::string> sendable_;  // their addresses, sorted, lowercase
  std::string login_user_;             // AUTH LOGIN's first answer
  std::string submitted_;              // the message, whole (it is signed before queueing)
  std::size_t trace_size_ = 0;         // of the Received field on top of it
};

}  // namespace

void start_smtp_session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const SmtpSettings> settings) {
  auto executor = connection->executor();
  auto session = std::make_shared<Session>(std::move(connection), std::move(settings));
  asio::post(executor, [session] { session->start(); });
}

void refuse_smtp_connection(std::shared_ptr<net::Connection> connection, std::string_view reason,
                            const std::string& hostname) {
  auto text = std::make_shared<std::string>("421 4.7.0 " + hostname + " " + std::string(reason) + ", try again later\r\n");
  connection->async_write(asio::buffer(*text), [connection, text](boost::system::error_code, std::size_t) {
    connection->close();
  });
}

}  // namespace coop::mail
