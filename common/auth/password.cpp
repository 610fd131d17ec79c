// argon2id password hashes through libsodium, and the rules for choosing a password.
#include "common/auth/password.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "common/error.h"

namespace coop::auth {

namespace {

constexpr std::size_t kMinPasswordCodePoints = 10;
constexpr std::size_t kMaxPasswordBytes = 1024;

// The most common passwords that are long enough to pass the length rule (shorter ones such as
// "123456" are already refused). Lowercase; compared case-insensitively.
constexpr std::array<std::string_view, 24> kCommonPasswords = {
    "1234567890",   "0123456789",   "12345678910",  "0987654321",   "123456789a",
    "1q2w3e4r5t",   "1qaz2wsx3edc", "qwertyuiop",   "qwerty1234",   "qwerty123456",
    "asdfghjkl1",   "password12",   "password123",  "password1234", "password1!",
    "passw0rd123",  "letmein123",   "iloveyou123",  "welcome123",   "changeme123",
    "administrator", "football123", "sunshine123",  "trustno1234",
};

// Decodes strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
std::optional<std::vector<char32_t>> decode_utf8(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    int extra = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if (lead < 0x80) {
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      extra = 1;
      cp = lead & 0x1F;
      min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      extra = 2;
      cp = lead & 0x0F;
      min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      extra = 3;
      cp = lead & 0x07;
      min = 0x10000;
    } else {
      return std::nullopt;
    }
    if (i + extra >= text.size() && extra > 0) return std::nullopt;
    for (int k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (next & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    out.push_back(cp);
    i += 1 + extra;
  }
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

[[noreturn]] void weak(const std::string& reason) { throw Error(errc::kWeakPassword, reason, 400); }

// libsodium reads the encoded hash as a NUL-terminated string of at most STRBYTES - 1 characters.
std::optional<std::string> c_string_hash(std::string_view encoded_hash) {
  if (encoded_hash.empty() || encoded_hash.size() >= crypto_pwhash_STRBYTES) return std::nullopt;
  if (encoded_hash.find('\0') != std::string_view::npos) return std::nullopt;
  return std::string(encoded_hash);
}

}  // namespace

void ensure_sodium() {
  static std::once_flag once;
  // A throwing call leaves the flag unset, so a later call tries again.
  std::call_once(once, [] {
    if (sodium_init() < 0) throw Error(errc::kInternal, "libsodium failed to initialise", 500);
  });
}

std::string random_grouped(std::string_view alphabet, int groups, int group_length) {
  ensure_sodium();
  std::string out;
  for (int g = 0; g < groups; ++g) {
    if (g > 0) out += '-';
    for (int k = 0; k < group_length; ++k) {
      // randombytes_uniform avoids the modulo bias of random % size.
      out += alphabet[randombytes_uniform(static_cast<std::uint32_t>(alphabet.size()))];
    }
  }
  return out;
}

HashParams production_params() { return {2, std::size_t{19456} * 1024}; }

HashParams test_params() { return {crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN}; }

std::string hash_password(std::string_view password, const HashParams& params) {
  ensure_sodium();
  char out[crypto_pwhash_STRBYTES];
  const char* data = password.empty() ? "" : password.data();
  if (crypto_pwhash_str_alg(out, data, password.size(), params.opslimit, params.memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw Error(errc::kInternal, "cannot hash password: out of memory", 500);
  }
  return out;
}

bool verify_password(std::string_view encoded_hash, std::string_view password) {
  ensure_sodium();
  const auto hash = c_string_hash(encoded_hash);
  if (!hash) return false;
  const char* data = password.empty() ? "" : password.data();
  return crypto_pwhash_str_verify(hash->c_str(), data, password.size()) == 0;
}

bool needs_rehash(std::string_view encoded_hash, const HashParams& params) {
  ensure_sodium();
  const auto hash = c_string_hash(encoded_hash);
  if (!hash) return true;
  // libsodium happily reports an argon2i hash with matching costs as current; we want argon2id.
  if (!hash->starts_with(crypto_pwhash_argon2id_STRPREFIX)) return true;
  return crypto_pwhash_str_needs_rehash(hash->c_str(), params.opslimit, params.memlimit) != 0;
}

// NIST SP 800-63B 5.1.1.2: require length rather than composition rules (no "one digit, one
// symbol"), accept any Unicode, and refuse passwords known to be common.
void check_password_strength(std::string_view password) {
  if (password.empty()) weak("password is empty");
  if (password.size() > kMaxPasswordBytes) {
    weak("password is longer than " + std::to_string(kMaxPasswordBytes) + " bytes");
  }
  const auto code_points = decode_utf8(password);
  if (!code_points) weak("password is not valid UTF-8");
  if (code_points->size() < kMinPasswordCodePoints) {
    weak("password must be at least " + std::to_string(kMinPasswordCodePoints) +
         " characters long");
  }
  const char32_t first = code_points->front();
  if (std::all_of(code_points->begin(), code_points->end(), [&](char32_t c) { return c == first; })) {
    weak("password is one character repeated");
  }
  const std::string lowered = ascii_lower(password);
  if (std::find(kCommonPasswords.begin(), kCommonPasswords.end(), lowered) !=
      kCommonPasswords.end()) {
    weak("password is one of the most common passwords");
  }
}

std::string generate_password() { return random_grouped(kUnambiguousAlphabet, 4, 5); }

}  // namespace coop::auth
