// Dates and tokens for messages coop writes.
#include "common/mail/message.h"

#include <openssl/rand.h>

#include <cstdio>
#include <ctime>

namespace coop::mail {

std::vector<std::pair<std::string, std::string>> header_fields(std::string_view header) {
  std::vector<std::pair<std::string, std::string>> out;
  bool in_field = false;
  for (std::size_t at = 0; at < header.size();) {
    auto eol = header.find('\n', at);
    if (eol == std::string_view::npos) eol = header.size();
    auto line = header.substr(at, eol - at);
    at = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (in_field) out.back().second += "\r\n" + std::string(line);
      continue;
    }
    const auto colon = line.find(':');
    in_field = colon != std::string_view::npos && colon > 0;
    if (in_field) out.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  return out;
}

std::string unfolded(std::string_view raw) {
  std::string out;
  for (char c : raw)
    if (c != '\r' && c != '\n') out += c;
  const auto first = out.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return out.substr(first, out.find_last_not_of(" \t") - first + 1);
}

std::string rfc5322_date(int64_t unix_seconds) {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return out;
}

std::string unique_token() {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof bytes);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

}  // namespace coop::mail
