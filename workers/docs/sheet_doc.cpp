// Spreadsheet documents and CSV.
#include "workers/docs/sheet_doc.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <vector>

#include "workers/docs/rich_text.h"

namespace coop::docs {

using nlohmann::json;

namespace {

std::string column_name(int x) {
  std::string name;
  for (int i = x + 1; i > 0; i = (i - 1) / 26) name.insert(name.begin(), static_cast<char>('A' + (i - 1) % 26));
  return name;
}

// "B12" as (column 1, row 11); nullopt for anything else.
std::optional<std::pair<int, int>> parse_ref(const std::string& ref) {
  std::size_t i = 0;
  int x = 0;
  while (i < ref.size() && i < 3 && ref[i] >= 'A' && ref[i] <= 'Z') x = x * 26 + (ref[i++] - 'A' + 1);
  if (i == 0 || i == ref.size() || ref[i] == '0' || ref.size() - i > 6) return std::nullopt;
  int y = 0;
  for (; i < ref.size(); ++i) {
    if (ref[i] < '0' || ref[i] > '9') return std::nullopt;
    y = y * 10 + (ref[i] - '0');
  }
  return std::make_pair(x - 1, y - 1);
}

// The cells as rows, trimmed to what holds something.
std::vector<std::vector<std::string>> rows_of(const json& sheet) {
  std::map<std::pair<int, int>, std::string> cells;
  int width = 0, height = 0;
  if (sheet.contains("cells") && sheet["cells"].is_object())
    for (const auto& [ref, value] : sheet["cells"].items()) {
      const auto at = parse_ref(ref);
      if (!at || !value.is_string()) continue;
      cells[{at->second, at->first}] = value.get<std::string>();
      width = std::max(width, at->first + 1);
      height = std::max(height, at->second + 1);
    }
  std::vector<std::vector<std::string>> rows(static_cast<std::size_t>(height), std::vector<std::string>(static_cast<std::size_t>(width)));
  for (const auto& [at, value] : cells) rows[static_cast<std::size_t>(at.first)][static_cast<std::size_t>(at.second)] = value;
  return rows;
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::optional<std::pair<json, std::string>> parse_sheet(const std::string& content) {
  if (content.empty() || content[0] != '{') return std::nullopt;
  const json document = json::parse(content, nullptr, false);
  if (!document.is_object() || !document.contains("sheets") || !document["sheets"].is_array()) return std::nullopt;
  std::string title;
  if (document.contains("metadata") && document["metadata"].is_object() && document["metadata"].contains("title") &&
      document["metadata"]["title"].is_string())
    title = document["metadata"]["title"].get<std::string>();
  return std::make_pair(document["sheets"], title);
}

std::string sheet_content(const json& sheets, const std::string& title) {
  json metadata{{"defaultTitle", "Spreadsheet"}, {"type", "sheet"}};
  if (!title.empty()) metadata["title"] = title;
  return json{{"metadata", metadata}, {"sheets", sheets}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

json csv_to_sheet(const std::string& csv, const std::string& name) {
  json cells = json::object();
  std::string field;
  int x = 0, y = 0;
  bool quoted = false, was_quoted = false;
  auto end_field = [&] {
    if (!field.empty() && x < 1000 && y < 100000) cells[column_name(x) + std::to_string(y + 1)] = field;
    field.clear();
    was_quoted = false;
    ++x;
  };
  for (std::size_t i = 0; i < csv.size(); ++i) {
    const char c = csv[i];
    if (quoted) {
      if (c == '"' && i + 1 < csv.size() && csv[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < csv.size() && csv[i + 1] == '\n') ++i;
      end_field();
      x = 0;
      ++y;
    } else {
      field += c;
    }
  }
  if (!field.empty() || x > 0) end_field();
  return json{{"name", name.empty() ? std::string("Sheet1") : name}, {"cells", cells}};
}

std::string sheet_to_csv(const json& sheet) {
  std::string out;
  for (const auto& row : rows_of(sheet)) {
    for (std::size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + csv_field(row[i]);
    out += "\r\n";
  }
  return out;
}

std::string sheets_to_markdown(const json& sheets) {
  std::string out;
  for (const auto& sheet : sheets) {
    if (!out.empty()) out += "\n";
    out += "## " + sheet.value("name", std::string("Sheet")) + "\n\n";
    out += markdown_table(rows_of(sheet));
  }
  return out;
}

}  // namespace coop::docs
