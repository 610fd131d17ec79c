// SHA-256 of a byte string as lowercase hex (OpenSSL), for tokens, ETags and content addresses.
#pragma once

#include <string>
#include <string_view>

namespace coop {

std::string sha256_hex(std::string_view bytes);

}  // namespace coop
