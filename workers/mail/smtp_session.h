// One SMTP session (RFC 5321) on a listener connection: ESMTP with PIPELINING, 8BITMIME,
// SMTPUTF8, SIZE, ENHANCEDSTATUSCODES, STARTTLS and CHUNKING; on the submission listeners
// also AUTH PLAIN and LOGIN (RFC 4954).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/control/router.h"
#include "common/net/cidr.h"

namespace boost::asio::ssl {
class context;
}

namespace coop {
class Home;
}

namespace coop::net {
class Connection;
class DnsResolver;
}

namespace coop::mail::spam {
class SpamFilter;
class Greylist;
}  // namespace coop::mail::spam

namespace coop::mail {

class MailService;
class Outbound;
class Vacation;

struct SmtpLimits {
  uint64_t max_message_bytes = 50 << 20;      // RFC 1870 SIZE
  std::size_t max_recipients = 100;           // RFC 5321 4.5.3.1.8 asks for at least 100
  std::size_t max_command_line = 2048;        // RFC 5321 4.5.3.1.4 says 512; extensions need more
  int max_bad_commands = 10;                  // then 421 and goodbye
  std::chrono::milliseconds idle_timeout{300000};     // RFC 5321 4.5.3.2.7: 5 minutes, in a transaction
  // Waiting for a first or next MAIL: an idle client outside a transaction holds a slot for
  // no mail, so it goes sooner (Postfix shortens smtpd_timeout the same way under stress).
  std::chrono::milliseconds command_timeout{60000};
  std::chrono::milliseconds session_timeout{1800000};  // whole session: no slowloris
  // Messages being checked (DKIM, SPF, DMARC) are read into memory; all sessions together
  // hold at most this much, and a message that would go over is deferred with 451.
  uint64_t check_memory_bytes = 256 << 20;
};

struct SmtpSettings {
  std::string hostname;  // the shard's domain, in the greeting and Received
  SmtpLimits limits;
  std::shared_ptr<boost::asio::ssl::context> tls;  // STARTTLS; null: not offered
  control::Runner runner;                         // for blocking work
  MailService* service = nullptr;
  // [workers.mail] trusted_networks: clients that may send as a hosted domain without AUTH.
  std::vector<net::Cidr> trusted_networks;
  // Message submission (RFC 6409) on the submission and submissions listeners: AUTH (only
  // over TLS) before MAIL, the sender checked against the member's addresses, any
  // recipient, and the message queued through outbound instead of delivered here.
  bool submission = false;
  const Home* home = nullptr;
  Outbound* outbound = nullptr;
  // Inbound (port 25): DKIM, SPF and DMARC checked at the end of DATA and recorded in an
  // Authentication-Results field; DMARC p=reject refused, p=quarantine filed in Junk.
  // Null: not checked ([workers.mail] check_inbound = false).
  net::DnsResolver* dns = nullptr;
  // Inbound: the spam score at the end of DATA (null: [workers.mail.spam] enabled = false),
  // and greylisting at RCPT (null: off). Neither applies to trusted_networks or submission.
  spam::SpamFilter* spam = nullptr;
  spam::Greylist* greylist = nullptr;
  net::DnsResolver* blocklist_dns = nullptr;  // for [workers.mail.spam] dnsbl and uribl
  // Inbound: members' vacation responses (RFC 8621 8), answered after delivery to INBOX.
  Vacation* vacation = nullptr;
};

// Runs the session until QUIT, a timeout or the client leaving; keeps itself alive.
void start_smtp_session(std::shared_ptr<net::Connection> connection, std::shared_ptr<const SmtpSettings> settings);

// Writes "421 4.7.0 ..." and closes: for connections over the listener's limits.
void refuse_smtp_connection(std::shared_ptr<net::Connection> connection, std::string_view reason,
                            const std::string& hostname);

}  // namespace coop::mail
