// HTTP dates (RFC 9110 5.6.7), written once for every worker that sends Last-Modified.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coop::http {

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", whatever the process's locale.
std::string http_date(int64_t unix_seconds);

// RFC 3339 in UTC, "2026-12-06T18:07:00Z": how every time in coop's JSON is written.
std::string iso8601(int64_t unix_seconds);

// The IMF-fixdate form only (what every current client sends); nullopt for anything else.
std::optional<int64_t> parse_http_date(std::string_view text);

}  // namespace coop::http
