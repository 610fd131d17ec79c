// One IMAP session (RFC 9051 IMAP4rev2, RFC 3501 IMAP4rev1) on a listener connection:
// STARTTLS or implicit TLS, LOGIN and AUTHENTICATE PLAIN against the member registry,
// mailboxes, SELECT/EXAMINE, FETCH, SEARCH, STORE, COPY/MOVE, EXPUNGE, APPEND, IDLE.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/auth/live_sessions.h"
#include "common/control/router.h"
#include "workers/mail/imap_parser.h"

namespace boost::asio::ssl {
class context;
}

namespace coop {
class Home;
}

namespace coop::net {
class Connection;
}

namespace coop::mail::spam {
class SpamFilter;
}

namespace coop::mail {

class MailService;

struct ImapSettings {
  std::string hostname;
  std::shared_ptr<boost::asio::ssl::context> tls;  // STARTTLS; null: not offered
  // RFC 9051 11.1 / RFC 8314: passwords only over TLS, unless the client is on this machine
  // and workers.mail.imap_plaintext_loopback allows it.
  bool plaintext_loopback = false;
  imap::ReaderLimits limits;
  std::chrono::milliseconds autologout{30 * 60 * 1000};  // RFC 9051 5.4: at least 30 minutes, once logged in
  // Before login the 30 minutes do not apply (RFC 9051 5.4 speaks of authenticated clients):
  // a client that has not logged in by then is let go.
  std::chrono::milliseconds login_timeout{60 * 1000};
  control::Runner runner;
  MailService* service = nullptr;
  const Home* home = nullptr;
  // Logged-in sessions by member, ended with "* BYE" when the registry revokes them.
  std::shared_ptr<auth::LiveSessions> live;
  // Taught by moves into and out of Junk; null when [workers.mail.spam] is off.
  spam::SpamFilter* spam = nullptr;
};

void start_imap_session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const ImapSettings> settings);
// "* BYE ..." and close, for connections over the listener's limits.
void refuse_imap_connection(std::shared_ptr<net::Connection> connection, std::string_view reason);

}  // namespace coop::mail
