// An ACME client (RFC 8555): from the directory to a certificate chain, answering each
// authorization by HTTP-01 (8.3) or TLS-ALPN-01 (RFC 8737) through the challenge files every
// worker serves (common/net/acme_challenge.h). Blocking; the supervisor runs it on its own
// thread (certificate_renewer.h).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "workers/supervisor/acme_crypto.h"

namespace coop::acme {

struct Settings {
  std::string directory;             // the directory URL, [tls] acme
  std::vector<std::string> contact;  // "mailto:" URLs
  std::string challenge = "http-01";  // or "tls-alpn-01"
  std::string key_type = "ecdsa-p256";
  std::string ca_file;                // trusted for the ACME server's HTTPS; empty: the system's
  std::chrono::seconds deadline{300};  // for one whole order
};

struct Issued {
  std::string chain_pem;  // the certificate first, then its issuers
  std::string key_pem;
};

// Orders a certificate for names (DNS names, the first the subject) and waits for it.
// progress hears each step ("authorizing example.org"). Throws coop::Error with the ACME
// server's problem document (type and detail) when the order fails.
Issued obtain_certificate(const Settings& settings, const AccountKey& account, const std::vector<std::string>& names,
                          const std::function<void(const std::string&)>& progress);

}  // namespace coop::acme
