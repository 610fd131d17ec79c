// IMAP authentication: STARTTLS (RFC 9051 6.2.1), LOGIN (6.2.3), AUTHENTICATE (6.2.2) with PLAIN
// (RFC 4616) and SCRAM-SHA-256 (RFC 7677).
#include "workers/mail/imap_server.h"

#include "workers/mail/imap_scram.h"

namespace coop::mail::imap_server {

void Session::starttls(Cursor& c) {
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

void Session::authenticated(const std::string& handle) {
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

void Session::verify(const std::string& user, const std::string& password) {
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

void Session::login(Cursor& c) {
  if (!secure()) return tagged("NO [PRIVACYREQUIRED] use STARTTLS or port 993 first");
  std::optional<std::string> user, password;
  if (!c.space() || !(user = c.astring()) || !c.space() || !(password = c.astring()) || !c.at_end())
    return bad("LOGIN user password");
  verify(*user, *password);
}

void Session::authenticate(Cursor& c) {
  std::optional<std::string> mechanism;
  if (!c.space() || !(mechanism = c.atom())) return bad("AUTHENTICATE mechanism");
  const auto mech = upper(*mechanism);
  if (mech != "PLAIN" && mech != "SCRAM-SHA-256") return tagged("NO [CANNOT] PLAIN or SCRAM-SHA-256");
  if (!secure()) return tagged("NO [PRIVACYREQUIRED] use STARTTLS or port 993 first");
  if (mech == "SCRAM-SHA-256") {
    scram_ = std::make_unique<ScramExchange>(*settings_->home, conn_->remote_address());
    scram_proved_.clear();
  }
  if (c.space()) {
    auto initial = c.atom();
    if (!initial) return bad("the initial response is base64");
    const std::string response = *initial == "=" ? std::string() : *initial;
    return scram_ ? scram_step(response) : plain(response);
  }
  sasl_pending_ = true;
  out_ += "+ \r\n";
}

void Session::sasl_response(const RawCommand& command) {
  sasl_pending_ = false;
  const std::string line = command.lines.empty() ? std::string() : command.lines.front();
  if (line == "*") {
    scram_.reset();
    return bad("authentication cancelled");
  }
  if (scram_) return scram_step(line);
  plain(line);
}

// RFC 5802 5 in IMAP's continuations: client-first, server-first ("+ "), client-final; then
// the server-final message as one more continuation, answered with an empty line, before OK.
void Session::scram_step(const std::string& base64) {
  run_blocking([this, base64] {
    const auto fail = [this](const Error& e) {
      scram_.reset();
      const auto code = imap::response_code(e.code());
      tagged("NO [" + code + "] " + (code == "AUTHENTICATIONFAILED" ? "Authentication failed." : reply_text(e.what())));
    };
    if (!scram_proved_.empty()) {
      const auto handle = scram_proved_;
      scram_proved_.clear();
      scram_.reset();
      if (!base64.empty()) return tagged("NO [AUTHENTICATIONFAILED] Authentication failed.");
      return authenticated(handle);
    }
    const auto step = scram_->step(base64);
    if (step.outcome == ScramExchange::Outcome::more) {
      sasl_pending_ = true;
      out_ += "+ " + step.reply + "\r\n";
      return;
    }
    try {
      const auto member = scram_->finish(step.outcome == ScramExchange::Outcome::proved);
      scram_proved_ = member.handle;
      sasl_pending_ = true;
      out_ += "+ " + step.reply + "\r\n";  // the server's proof (v=)
    } catch (const Error& e) {
      fail(e);
    }
  });
}

void Session::plain(const std::string& base64) {
  const auto response = imap::decode_sasl_plain(base64);
  if (!response) return bad("PLAIN is base64 of authzid NUL authcid NUL password");
  if (!response->authzid.empty() && response->authzid != response->authcid)
    return tagged("NO [AUTHORIZATIONFAILED] no acting for others");
  verify(response->authcid, response->password);
}

}  // namespace coop::mail::imap_server
