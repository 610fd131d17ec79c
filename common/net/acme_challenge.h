// ACME challenge answers (RFC 8555 8.3 HTTP-01, RFC 8737 TLS-ALPN-01), published by the
// supervisor's ACME client under COOP_HOME/run/acme/ and answered by every worker: HTTP-01
// by every HTTP listener (http::Router), TLS-ALPN-01 by every TLS listener
// (server_certificate.cpp). Names from the network are checked here before they reach a path.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace coop::net {

// Where this process finds (and the supervisor writes) the answers; set once at start.
void set_acme_challenge_dir(const std::filesystem::path& dir);

// A token as RFC 8555 8.1 has it: base64url, at least 128 bits, here at most 256 characters.
bool valid_acme_token(std::string_view token);
// A DNS name as an ACME identifier holds it: lower-case letters, digits, '-' and dots
// between labels, 1 to 253 characters.
bool valid_acme_name(std::string_view name);

// The key authorization for a token, when the supervisor has published one.
std::optional<std::string> acme_http01_answer(std::string_view token);
// The PEM certificate and key (one file) to present for acme-tls/1 on this server name.
std::optional<std::string> acme_tls_alpn01_pem(std::string_view server_name);

// The supervisor's side: publish and withdraw (files written 0600, atomically).
void publish_acme_http01(std::string_view token, std::string_view key_authorization);
void publish_acme_tls_alpn01(std::string_view name, std::string_view pem);
void withdraw_acme_challenges();

}  // namespace coop::net
