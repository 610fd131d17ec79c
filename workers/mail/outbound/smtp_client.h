// The sending side of SMTP (RFC 5321) for the outbound queue: one transaction to one host,
// STARTTLS when offered (RFC 3207; opportunistic unless required), AUTH PLAIN to a relay
// (RFC 4954), and the RFC 5321 4.5.2 dot-stuffing of the message.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace coop::mail {

struct SmtpHost {
  std::string name;                   // for SNI, certificate checks and reports
  std::vector<std::string> addresses; // tried in order
  uint16_t port = 25;
  enum class Tls { opportunistic, starttls, implicit, none } tls = Tls::opportunistic;
  bool verify = false;                // check the certificate against name (relays)
  std::string username, password;     // AUTH PLAIN, only over TLS
};

struct SmtpClientSettings {
  std::string helo;  // the shard's name
  std::chrono::milliseconds connect_timeout{30000};
  // RFC 5321 4.5.3.2: 5 minutes for the greeting and MAIL, RCPT; 10 for the end of DATA.
  std::chrono::milliseconds command_timeout{300000};
  std::chrono::milliseconds data_timeout{600000};
};

struct SmtpTransaction {
  // Reached a server that took the session as far as MAIL: its answers below count.
  bool reached = false;
  std::string remote;        // "name[address]:port" of the server that answered
  int code = 0;              // for all recipients when not per recipient (MAIL, DATA, a drop)
  std::string reply;         // the reply that goes with code, or why no server was reached
  std::vector<int> codes;    // per recipient: RCPT's reply, or DATA's for those accepted
  std::vector<std::string> replies;
};

// Runs one transaction against host's addresses in turn until one answers; done runs on io.
void smtp_send(boost::asio::io_context& io, std::shared_ptr<boost::asio::ssl::context> tls,
               const SmtpClientSettings& settings, const SmtpHost& host, const std::string& sender,
               const std::vector<std::string>& recipients, std::shared_ptr<const std::string> message, bool smtputf8,
               std::function<void(SmtpTransaction)> done);

// A client TLS context: TLS 1.2 and later, the system's trust store for verified hosts.
std::shared_ptr<boost::asio::ssl::context> make_client_tls_context();

}  // namespace coop::mail
