// CSV import and export of the registry (RFC 4180), so a spreadsheet round-trips.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "workers/member/store/member_store.h"

namespace coop::member {

// The columns `coop member export --format csv` writes and import reads; import needs
// `handle` and takes any subset of the others, in any order.
inline constexpr const char* kCsvColumns[] = {"handle", "name", "emails", "groups", "role", "status", "quota_bytes"};

struct CsvRecord {
  int line = 0;  // where the record starts in the file, from 1
  std::vector<std::string> fields;
};

// RFC 4180 with LF or CRLF line ends and an optional UTF-8 BOM; blank lines are skipped.
// Throws coop::Error(errc::kBadCsv, "line N: ...") for bad quoting or invalid UTF-8.
std::vector<CsvRecord> parse_csv(std::string_view text);

// The rows of an import, each with its line number; throws coop::Error(errc::kBadCsv) naming the
// line for a wrong header, a wrong field count or a malformed value.
std::vector<std::pair<NewMember, int>> members_from_csv(std::string_view text);

std::string members_to_csv(const std::vector<Member>& members);

}  // namespace coop::member
