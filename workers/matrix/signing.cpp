// Ed25519 signing keys (libsodium) and the Matrix JSON/event signing and checking built on them.
#include "workers/matrix/signing.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/matrix/base64.h"
#include "workers/matrix/canonical_json.h"
#include "workers/matrix/event_hash.h"

namespace coop::matrix {

namespace {

void ensure_sodium() {
  static const int result = sodium_init();  // magic static: runs once, thread-safely
  if (result < 0) throw coop::Error(errc::kCryptoUnavailable, "libsodium failed to initialise", 500);
}

bool is_valid_key_id(std::string_view key_id) {
  constexpr std::string_view kPrefix = "ed25519:";
  if (key_id.substr(0, kPrefix.size()) != kPrefix || key_id.size() == kPrefix.size()) return false;
  return std::all_of(key_id.begin() + kPrefix.size(), key_id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string as_string(const unsigned char* bytes, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(bytes), size);
}

}  // namespace

SigningKey::SigningKey(std::string key_id, const unsigned char* seed) : key_id_(std::move(key_id)) {
  if (!is_valid_key_id(key_id_)) throw coop::Error(errc::kBadKeyId, "signing key ID \"" + key_id_ + "\" is not ed25519:<version>", 400);
  ensure_sodium();
  crypto_sign_seed_keypair(public_key_.data(), secret_key_.data(), seed);
}

SigningKey SigningKey::generate(std::string key_id) {
  ensure_sodium();
  std::array<unsigned char, crypto_sign_SEEDBYTES> seed{};
  randombytes_buf(seed.data(), seed.size());
  try {
    SigningKey key(std::move(key_id), seed.data());
    sodium_memzero(seed.data(), seed.size());
    return key;
  } catch (...) {
    sodium_memzero(seed.data(), seed.size());
    throw;
  }
}

SigningKey SigningKey::from_seed(std::string key_id, std::string_view seed_base64) {
  auto seed = decode_base64(seed_base64);
  if (!seed || seed->size() != crypto_sign_SEEDBYTES) {
    if (seed) sodium_memzero(seed->data(), seed->size());
    throw coop::Error(errc::kBadSigningKey, "signing key seed is not 32 bytes of base64", 400);
  }
  try {
    SigningKey key(std::move(key_id), reinterpret_cast<const unsigned char*>(seed->data()));
    sodium_memzero(seed->data(), seed->size());
    return key;
  } catch (...) {
    sodium_memzero(seed->data(), seed->size());
    throw;
  }
}

SigningKey::SigningKey(SigningKey&& other) noexcept
    : key_id_(std::move(other.key_id_)), public_key_(other.public_key_), secret_key_(other.secret_key_) {
  sodium_memzero(other.secret_key_.data(), other.secret_key_.size());
}

SigningKey& SigningKey::operator=(SigningKey&& other) noexcept {
  if (this != &other) {
    key_id_ = std::move(other.key_id_);
    public_key_ = other.public_key_;
    secret_key_ = other.secret_key_;
    sodium_memzero(other.secret_key_.data(), other.secret_key_.size());
  }
  return *this;
}

SigningKey::~SigningKey() { sodium_memzero(secret_key_.data(), secret_key_.size()); }

std::string SigningKey::public_key_base64() const {
  return unpadded_base64(as_string(public_key_.data(), public_key_.size()));
}

std::string SigningKey::seed_base64() const {
  // libsodium's Ed25519 secret key is the seed followed by the public key.
  std::string seed = as_string(secret_key_.data(), crypto_sign_SEEDBYTES);
  std::string encoded = unpadded_base64(seed);
  sodium_memzero(seed.data(), seed.size());
  return encoded;
}

std::string SigningKey::sign(std::string_view bytes) const {
  std::array<unsigned char, crypto_sign_BYTES> signature{};
  crypto_sign_detached(signature.data(), nullptr, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                       secret_key_.data());
  return unpadded_base64(as_string(signature.data(), signature.size()));
}

nlohmann::json sign_json(nlohmann::json object, const std::string& server_name, const SigningKey& key) {
  if (!object.is_object()) throw coop::Error(errc::kBadJson, "only JSON objects can be signed", 400);
  nlohmann::json signatures = nlohmann::json::object();
  if (auto found = object.find("signatures"); found != object.end()) {
    if (found->is_object()) signatures = std::move(*found);
    object.erase(found);
  }
  nlohmann::json unsigned_part;
  const auto found_unsigned = object.find("unsigned");
  const bool had_unsigned = found_unsigned != object.end();
  if (had_unsigned) {
    unsigned_part = std::move(*found_unsigned);
    object.erase(found_unsigned);
  }

  const std::string signature = key.sign(canonical_json(object));
  if (!signatures[server_name].is_object()) signatures[server_name] = nlohmann::json::object();
  signatures[server_name][key.key_id()] = signature;
  object["signatures"] = std::move(signatures);
  if (had_unsigned) object["unsigned"] = std::move(unsigned_part);
  return object;
}

bool verify_json_signature(const nlohmann::json& object, const std::string& server_name, const std::string& key_id,
                           std::string_view public_key_base64) {
  if (!object.is_object()) return false;
  const auto signatures = object.find("signatures");
  if (signatures == object.end() || !signatures->is_object()) return false;
  const auto by_server = signatures->find(server_name);
  if (by_server == signatures->end() || !by_server->is_object()) return false;
  const auto encoded = by_server->find(key_id);
  if (encoded == by_server->end() || !encoded->is_string()) return false;

  const auto signature = decode_base64(encoded->get_ref<const std::string&>());
  const auto public_key = decode_base64(public_key_base64);
  if (!signature || signature->size() != crypto_sign_BYTES) return false;
  if (!public_key || public_key->size() != crypto_sign_PUBLICKEYBYTES) return false;

  nlohmann::json signed_part = object;
  signed_part.erase("signatures");
  signed_part.erase("unsigned");
  std::string message;
  try {
    message = canonical_json(signed_part);
  } catch (const coop::Error&) {
    return false;
  }
  ensure_sodium();
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature->data()),
                                     reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                                     reinterpret_cast<const unsigned char*>(public_key->data())) == 0;
}

nlohmann::json sign_event(nlohmann::json event, const std::string& server_name, const SigningKey& key,
                          std::string_view room_version) {
  if (!event.is_object()) throw coop::Error(errc::kBadJson, "event is not an object", 400);
  const auto hashes = event.find("hashes");
  if (hashes == event.end() || !hashes->is_object() || !hashes->contains("sha256"))
    throw coop::Error(errc::kBadJson, "event has no content hash to sign", 400);
  // Redaction keeps "signatures", so existing signatures carry through sign_json.
  nlohmann::json signed_redacted = sign_json(redact(event, room_version), server_name, key);
  event["signatures"] = std::move(signed_redacted["signatures"]);
  return event;
}

bool verify_event_signature(const nlohmann::json& event, const std::string& server_name, const std::string& key_id,
                            std::string_view public_key_base64, std::string_view room_version) {
  if (!event.is_object()) return false;
  nlohmann::json redacted;
  try {
    redacted = redact(event, room_version);
  } catch (const coop::Error&) {
    return false;
  }
  return verify_json_signature(redacted, server_name, key_id, public_key_base64);
}

}  // namespace coop::matrix
