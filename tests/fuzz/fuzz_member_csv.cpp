// libFuzzer target: the member CSV an administrator imports (`coop member import`). Checked:
// only "bad_csv" errors come out, records start on increasing lines, fields written back with
// RFC 4180 quoting parse to the same records, imported values are already normalised, and an
// export of the imported members imports again to the same members.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "workers/member/member_csv.h"
#include "workers/member/member_rules.h"

using namespace coop::member;

namespace {

// RFC 4180 2.5-2.7: every field quoted, quotes doubled; records end in CRLF.
std::string quoted_csv(const std::vector<CsvRecord>& records) {
  std::string out;
  for (const auto& record : records) {
    for (std::size_t i = 0; i < record.fields.size(); ++i) {
      out += i ? ",\"" : "\"";
      for (const char c : record.fields[i]) out += c == '"' ? std::string("\"\"") : std::string(1, c);
      out += '"';
    }
    out += "\r\n";
  }
  return out;
}

bool same_fields(const std::vector<CsvRecord>& a, const std::vector<CsvRecord>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].fields != b[i].fields) return false;
  return true;
}

bool same_member(const NewMember& a, const NewMember& b) {
  return a.handle == b.handle && a.display_name == b.display_name && a.emails == b.emails && a.groups == b.groups &&
         a.role == b.role && a.status == b.status && a.quota_bytes == b.quota_bytes;
}

// False when parse refused the text with "bad_csv"; any other error is a bug.
template <typename Parse>
bool parses(Parse parse) {
  try {
    parse();
    return true;
  } catch (const coop::Error& e) {
    if (e.code() != "bad_csv") std::abort();
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<CsvRecord> records;
  if (!parses([&] { records = parse_csv(input); })) return 0;
  int last_line = 0;
  for (const auto& record : records) {
    if (record.line <= last_line || record.fields.empty()) std::abort();
    last_line = record.line;
  }
  std::vector<CsvRecord> again;
  if (!parses([&] { again = parse_csv(quoted_csv(records)); }) || !same_fields(records, again)) std::abort();

  std::vector<std::pair<NewMember, int>> rows;
  if (!parses([&] { rows = members_from_csv(input); })) return 0;
  // What the registry keeps, and so what an export holds: the statuses check_status allows.
  std::vector<Member> members;
  std::vector<NewMember> kept;
  for (const auto& [row, line] : rows) {
    for (const auto& email : row.emails)
      if (normalize_email(email) != email) std::abort();
    try {
      check_status(row.status);
    } catch (const coop::Error&) {
      continue;
    }
    Member m;
    m.handle = row.handle;
    m.display_name = row.display_name;
    m.emails = row.emails;
    m.groups = row.groups;
    m.role = row.role;
    m.status = row.status;
    m.quota_bytes = row.quota_bytes;
    members.push_back(std::move(m));
    kept.push_back(row);
  }
  std::vector<std::pair<NewMember, int>> reimported;
  if (!parses([&] { reimported = members_from_csv(members_to_csv(members)); })) std::abort();
  if (reimported.size() != kept.size()) std::abort();
  for (std::size_t i = 0; i < kept.size(); ++i)
    if (!same_member(reimported[i].first, kept[i])) std::abort();
  return 0;
}
