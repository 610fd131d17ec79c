// SHA-256 of a byte string as lowercase hex (OpenSSL), for tokens, ETags and content addresses.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace coop {

std::string sha256_hex(std::string_view bytes);
// Bytes as lowercase hex (a digest made elsewhere: a certificate's, a streamed file's).
std::string to_hex(const unsigned char* bytes, std::size_t length);
// `bytes` random bytes (libsodium's CSPRNG) as lowercase hex: tokens and ids.
std::string random_hex(std::size_t bytes);

}  // namespace coop
