// CSV reading and writing for member import and export.
#include "workers/member/member_csv.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "common/error.h"
#include "common/text.h"
#include "workers/member/member_rules.h"

namespace coop::member {

namespace {

[[noreturn]] void bad(int line, const std::string& what) {
  throw Error(errc::kBadCsv, "line " + std::to_string(line) + ": " + what, 400);
}

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return std::string(s.substr(first, last - first + 1));
}

std::vector<std::string> split_list(const std::string& field) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= field.size()) {
    const auto end = field.find(';', start);
    auto item = trim(std::string_view(field).substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (!item.empty()) out.push_back(std::move(item));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::string quote(std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ";") + item;
  return out;
}

}  // namespace

std::vector<CsvRecord> parse_csv(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  if (!is_valid_utf8(text)) {
    // Name the line: find the first line that is not valid on its own.
    int line = 1;
    std::size_t start = 0;
    while (start < text.size()) {
      const auto end = text.find('\n', start);
      if (!is_valid_utf8(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start)))
        break;
      if (end == std::string_view::npos) break;
      start = end + 1;
      ++line;
    }
    bad(line, "not valid UTF-8");
  }

  std::vector<CsvRecord> records;
  std::size_t i = 0;
  int line = 1;
  while (i < text.size()) {
    CsvRecord record;
    record.line = line;
    std::string field;
    bool quoted = false, after_quote = false, record_done = false;
    while (!record_done) {
      if (i >= text.size()) {
        if (quoted) bad(record.line, "a quoted field is never closed");
        record.fields.push_back(std::move(field));
        break;
      }
      const char c = text[i++];
      if (quoted) {
        if (c == '"') {
          if (i < text.size() && text[i] == '"') {
            field += '"';
            ++i;
          } else {
            quoted = false;
            after_quote = true;
          }
        } else {
          if (c == '\n') ++line;
          field += c;
        }
        continue;
      }
      if (c == ',') {
        record.fields.push_back(std::move(field));
        field.clear();
        after_quote = false;
      } else if (c == '\r' && i < text.size() && text[i] == '\n') {
        continue;  // CRLF: the LF ends the record
      } else if (c == '\n') {
        ++line;
        record.fields.push_back(std::move(field));
        record_done = true;
      } else if (c == '"') {
        if (!field.empty() || after_quote) bad(line, "a quote inside an unquoted field (RFC 4180 2.5: quote the whole field and double the quote)");
        quoted = true;
      } else {
        if (after_quote) bad(line, "text after a closing quote");
        field += c;
      }
    }
    const bool blank = record.fields.size() == 1 && record.fields[0].empty();
    if (!blank) records.push_back(std::move(record));
  }
  return records;
}

std::vector<std::pair<NewMember, int>> members_from_csv(std::string_view text) {
  const auto records = parse_csv(text);
  if (records.empty()) throw Error(errc::kBadCsv, "the file is empty: expected a header line starting with 'handle'", 400);
  const auto& header = records.front();
  std::map<std::string, std::size_t> column;
  for (std::size_t i = 0; i < header.fields.size(); ++i) {
    auto name = ascii_lower(trim(header.fields[i]));
    if (name == "email") name = "emails";
    if (name == "display_name") name = "name";
    if (std::find_if(std::begin(kCsvColumns), std::end(kCsvColumns), [&](const char* c) { return name == c; }) ==
        std::end(kCsvColumns))
      bad(header.line, "unknown column '" + name + "' (handle, name, emails, groups, role, status, quota_bytes)");
    if (!column.emplace(name, i).second) bad(header.line, "column '" + name + "' appears twice");
  }
  if (!column.count("handle")) bad(header.line, "no 'handle' column");

  std::vector<std::pair<NewMember, int>> rows;
  for (std::size_t r = 1; r < records.size(); ++r) {
    const auto& record = records[r];
    if (record.fields.size() != header.fields.size())
      bad(record.line, "expected " + std::to_string(header.fields.size()) + " fields, found " +
                           std::to_string(record.fields.size()));
    auto get = [&](const char* name) -> std::string {
      auto it = column.find(name);
      return it == column.end() ? std::string() : trim(record.fields[it->second]);
    };
    NewMember m;
    m.handle = get("handle");
    m.display_name = get("name");
    m.emails = split_list(get("emails"));
    m.groups = split_list(get("groups"));
    if (auto role = get("role"); !role.empty()) m.role = role;
    if (auto status = get("status"); !status.empty()) m.status = status;
    if (auto quota = get("quota_bytes"); !quota.empty()) {
      const auto [end, ec] = std::from_chars(quota.data(), quota.data() + quota.size(), m.quota_bytes);
      if (ec != std::errc() || end != quota.data() + quota.size() || m.quota_bytes < 0)
        bad(record.line, "quota_bytes '" + quota + "' is not a whole number of bytes");
    }
    // Validate what needs no database here, so the error names the line.
    try {
      check_handle(m.handle);
      check_role(m.role);
      for (auto& e : m.emails) e = normalize_email(e);
      for (const auto& g : m.groups) check_group_name(g);
    } catch (const Error& e) {
      bad(record.line, e.what());
    }
    rows.emplace_back(std::move(m), record.line);
  }
  return rows;
}

std::string members_to_csv(const std::vector<Member>& members) {
  std::string out;
  for (const auto* column : kCsvColumns) out += (out.empty() ? "" : ",") + std::string(column);
  out += "\r\n";
  for (const auto& m : members) {
    out += quote(m.handle) + "," + quote(m.display_name) + "," + quote(join_list(m.emails)) + "," +
           quote(join_list(m.groups)) + "," + m.role + "," + m.status + "," + std::to_string(m.quota_bytes) + "\r\n";
  }
  return out;
}

}  // namespace coop::member
