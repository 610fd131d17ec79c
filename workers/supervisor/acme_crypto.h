// The cryptography an ACME client needs (RFC 8555 6.2, RFC 7515, RFC 7638, RFC 8737), on
// OpenSSL 3: the account key and its JWS signatures, certificate keys and CSRs, and the
// self-signed certificate a TLS-ALPN-01 challenge presents.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace coop::acme {

// An EC P-256 account key; requests are signed ES256 (RFC 7518 3.4).
class AccountKey {
 public:
  // Reads the PEM key at file, or makes one and writes it there (0600).
  static AccountKey load_or_create(const std::filesystem::path& file);
  static AccountKey from_pem(const std::string& pem);
  static AccountKey generate();

  std::string private_pem() const;
  // The public key as a JWK (RFC 7517, RFC 7518 6.2).
  nlohmann::json jwk() const;
  // RFC 8555 6.2: a flattened JWS whose protected header has alg, nonce and url, and the
  // account's kid or, before the account exists (kid empty), its jwk. A null payload is a
  // POST-as-GET (RFC 8555 6.3): the empty string.
  nlohmann::json sign(const nlohmann::json& payload, const std::string& nonce, const std::string& url,
                      const std::string& kid) const;

 private:
  explicit AccountKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// RFC 7638 3: base64url(SHA-256) of the JWK's required members in lexicographic order.
std::string jwk_thumbprint(const nlohmann::json& jwk);

// RFC 8555 8.1: token "." thumbprint.
std::string key_authorization(const std::string& token, const nlohmann::json& account_jwk);

// A new certificate key ("ecdsa-p256" or "rsa-2048") as PEM, and a CSR for these DNS names
// (the first also the subject's CN), DER as RFC 8555 7.4 sends it.
struct KeyAndCsr {
  std::string key_pem;
  std::string csr_der;
};
KeyAndCsr make_key_and_csr(const std::vector<std::string>& names, const std::string& key_type);

// RFC 8737 3: a self-signed certificate for name whose critical acmeIdentifier extension
// holds SHA-256 of the key authorization; PEM certificate then PEM key.
std::string make_tls_alpn01_certificate(const std::string& name, const std::string& key_authorization);

}  // namespace coop::acme
