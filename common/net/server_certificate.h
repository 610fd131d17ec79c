// The certificate and key every TLS listener of a process serves (HTTPS, IMAPS, SMTPS, and
// STARTTLS on SMTP and IMAP), reloadable without a restart: each handshake takes the pair
// that is current when it starts (OpenSSL's certificate callback), so a reload never fails a
// handshake in flight and no listener has to be rebuilt.
#pragma once

#include <openssl/ossl_typ.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace coop::net {

// What a certificate says of itself, for `coop tls status` and the workers' status.
struct CertificateInfo {
  std::vector<std::string> names;  // subjectAltName DNS names and IP addresses
  std::string subject, issuer;
  int64_t not_before = 0, not_after = 0;  // Unix seconds
  std::string sha256;                    // fingerprint of the DER, lowercase hex
  bool self_signed = false;
};

// Reads and checks a PEM certificate chain and its key: the key must match the leaf, and
// coop::Error(errc::kTlsError) says which file is wrong otherwise.
CertificateInfo check_certificate_pair(const std::filesystem::path& cert, const std::filesystem::path& key);
CertificateInfo certificate_info(const std::filesystem::path& cert);

// Makes ctx serve the pair at these paths, loaded now (coop::Error when it cannot be) and
// again at every reload_server_certificates().
void serve_certificate(SSL_CTX* ctx, const std::filesystem::path& cert, const std::filesystem::path& key);

// Re-reads every pair this process serves. A pair that no longer loads (a half-written
// file, a key that does not match) keeps the previous one being served; the errors come
// back, one line each.
std::vector<std::string> reload_server_certificates();

// The pair served now for this certificate path; nullopt when the process serves none.
std::unique_ptr<CertificateInfo> served_certificate(const std::filesystem::path& cert);

}  // namespace coop::net
