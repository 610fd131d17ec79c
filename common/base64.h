// Base64 (RFC 4648 4) through libsodium, for the protocols that carry binary in text:
// DKIM keys and signatures, SASL, DSN attachments.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace coop {

std::string base64_encode(std::string_view bytes);
// Base64url without padding (RFC 4648 5), as JOSE (RFC 7515 2) and ACME use it.
std::string base64url_encode(std::string_view bytes);
// Padding optional; whitespace (folded header values, CRLF-wrapped bodies) is skipped.
// nullopt on any other character that is not base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace coop
