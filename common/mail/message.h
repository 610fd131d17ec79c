// What every mail parser agrees on about a message's shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// RFC 5322 2.2: every field of a header section as (name as written, raw value: what
// follows the colon, folds kept as CRLF), in order. Lines without a colon are skipped.
std::vector<std::pair<std::string, std::string>> header_fields(std::string_view header);

// RFC 5322 2.2.3: a raw value unfolded (its line breaks removed) and trimmed of blanks.
std::string unfolded(std::string_view raw);

// RFC 5322 3.3 date-time in UTC, "Sun, 06 Dec 2026 10:00:00 +0000", whatever the locale:
// for Date, Received and the dates of delivery reports.
std::string rfc5322_date(int64_t unix_seconds);

// 24 random hex digits: Message-ID left parts and MIME boundaries nobody can guess.
std::string unique_token();

}  // namespace coop::mail
