// SASL SCRAM-SHA-256 (RFC 5802, RFC 7677) for IMAP AUTHENTICATE, on GNU SASL: one exchange,
// checked against the SCRAM secrets coop-member keeps of the account password.
#pragma once

#include <memory>
#include <string>

#include "common/auth/member_client.h"

namespace coop {
class Home;
}

namespace coop::mail {

class ScramExchange {
 public:
  // source: the client's address, for coop-member's throttle and audit.
  ScramExchange(const Home& home, std::string source);
  ~ScramExchange();
  ScramExchange(const ScramExchange&) = delete;
  ScramExchange& operator=(const ScramExchange&) = delete;

  enum class Outcome { more, proved, failed };
  struct Step {
    Outcome outcome = Outcome::failed;
    std::string reply;  // base64: the server-first message, or the server-final one once proved
  };
  // Blocking (the first step asks coop-member for the secrets). client: the client's message
  // in base64 ("" for none).
  Step step(const std::string& client);

  // After the proof (or its failure): the member, or coop::Error as auth::verify_credentials
  // throws it (401, 403 suspended, 429 throttled). Blocking.
  auth::VerifiedMember finish(bool proved);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::mail
