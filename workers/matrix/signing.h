// Ed25519 server signing keys and the Matrix JSON and event signatures made with them.
#pragma once

#include <sodium.h>

#include <array>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace coop::matrix {

// One Ed25519 signing key with its Matrix key ID ("ed25519:a_XyZ1"). Move-only, so the secret
// exists in as few places as possible; the destructor wipes it.
class SigningKey {
 public:
  // A new key from libsodium's random source. Key IDs must be "ed25519:" followed by one or
  // more of [A-Za-z0-9_] (spec "Server-Server API: Publishing Keys"); anything else throws
  // coop::Error(errc::kBadKeyId).
  static SigningKey generate(std::string key_id);
  // The key whose 32-byte seed is seed_base64 (padded or not, either alphabet), the form
  // Synapse's signing key file stores. A wrong length throws coop::Error(errc::kBadSigningKey).
  static SigningKey from_seed(std::string key_id, std::string_view seed_base64);

  SigningKey(SigningKey&& other) noexcept;
  SigningKey& operator=(SigningKey&& other) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  ~SigningKey();

  std::string public_key_base64() const;  // unpadded
  std::string seed_base64() const;        // unpadded; secret, handle with care
  std::string sign(std::string_view bytes) const;  // detached signature, unpadded base64
  const std::string& key_id() const { return key_id_; }

 private:
  SigningKey(std::string key_id, const unsigned char* seed);

  std::string key_id_;
  std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> public_key_{};
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> secret_key_{};  // seed followed by public key
};

// Matrix spec, Appendices: Signing JSON. Signs the canonical JSON of object without
// "signatures" and "unsigned", adds signatures.<server_name>.<key_id> next to any existing
// signatures and puts "unsigned" back. Throws coop::Error(errc::kBadJson) for a non-object or
// a value canonical JSON rejects.
nlohmann::json sign_json(nlohmann::json object, const std::string& server_name, const SigningKey& key);

// Matrix spec, Appendices: Checking for a signature. False when the signature is missing,
// malformed or wrong, when the public key is malformed, or when object has no canonical form.
bool verify_json_signature(const nlohmann::json& object, const std::string& server_name, const std::string& key_id,
                           std::string_view public_key_base64);

// Matrix spec, Appendices: Signing Events. Signs the redacted form of event (room_version's
// algorithm) and returns the whole event, full content included, with the new signature added.
// The event must already carry hashes.sha256 (see with_content_hash): the signature covers the
// hash, which is what protects the content. Missing hash: coop::Error(errc::kBadJson).
nlohmann::json sign_event(nlohmann::json event, const std::string& server_name, const SigningKey& key,
                          std::string_view room_version);

// Checks a server's signature on an event: verify_json_signature over the redacted form.
bool verify_event_signature(const nlohmann::json& event, const std::string& server_name, const std::string& key_id,
                            std::string_view public_key_base64, std::string_view room_version);

}  // namespace coop::matrix
