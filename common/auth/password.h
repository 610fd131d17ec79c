// Account passwords: argon2id hashing, strength rules and generated passwords.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace coop::auth {

// argon2id cost. libsodium always uses one lane (p=1).
struct HashParams {
  unsigned long long opslimit;  // argon2 t (passes)
  std::size_t memlimit;         // bytes
};

// argon2id t=2, m=19 MiB, p=1: the OWASP Password Storage Cheat Sheet minimum.
HashParams production_params();

// libsodium's minimum cost, for fast unit tests only.
HashParams test_params();

// Returns the encoded "$argon2id$v=19$m=...,t=...,p=1$salt$hash" string (random salt included).
// Throws coop::Error(errc::kInternal, ..., 500) when libsodium fails (out of memory).
std::string hash_password(std::string_view password, const HashParams& params);

// Constant-time check of password against an encoded hash; false for an empty or malformed hash.
bool verify_password(std::string_view encoded_hash, std::string_view password);

// True when encoded_hash is not argon2id with exactly these parameters (or is malformed), so the
// password should be hashed again after the next successful login.
bool needs_rehash(std::string_view encoded_hash, const HashParams& params);

// Throws coop::Error(errc::kWeakPassword, one-line reason, 400) when a member may not choose password.
void check_password_strength(std::string_view password);

// 20 characters from kUnambiguousAlphabet as xxxxx-xxxxx-xxxxx-xxxxx (about 117 bits).
std::string generate_password();

// Shared with app passwords. No 0/O, no 1/l/I: people read these aloud and copy them by hand.
inline constexpr std::string_view kUnambiguousAlphabet =
    "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

// Initialises libsodium once per process; throws coop::Error(errc::kInternal, ..., 500) if it cannot.
// Every function in coop::auth calls it before touching libsodium.
void ensure_sodium();

// groups * group_length uniformly random characters of alphabet, groups joined by '-'.
std::string random_grouped(std::string_view alphabet, int groups, int group_length);

}  // namespace coop::auth
