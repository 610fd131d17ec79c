// What every mail parser agrees on about a message's shape.
#pragma once

#include <cstddef>
#include <string_view>

namespace coop::mail {

// Where the body starts: after the first empty line (RFC 5322 2.1), CRLF or bare LF; the
// message's size when there is no body.
inline std::size_t header_end(std::string_view message) {
  const auto crlf = message.find("\r\n\r\n");
  const auto lf = message.find("\n\n");
  if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf)) return crlf + 4;
  if (lf != std::string_view::npos) return lf + 2;
  return message.size();
}

}  // namespace coop::mail
