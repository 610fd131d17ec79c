// OpenSSL's error queue made a coop::Error.
#include "common/openssl_util.h"

#include <openssl/err.h>

#include <array>

#include "common/error.h"

namespace coop::openssl {

void fail(const std::string& what) {
  std::string message = what;
  if (const unsigned long code = ERR_get_error(); code != 0) {
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    message += ": ";
    message += text.data();
  }
  ERR_clear_error();
  throw Error(errc::kTlsError, message, 500);
}

}  // namespace coop::openssl
