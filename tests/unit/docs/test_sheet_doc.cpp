// Unit tests for spreadsheet documents: CSV in and out, the document string, Markdown tables.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "workers/docs/sheet_doc.h"

using namespace coop::docs;
using nlohmann::json;

TEST_CASE("CSV goes into cells and back (RFC 4180 quoting)") {
  const std::string csv = "Item,Cost\r\nRent,500\r\n\"Food, drink\",200\r\n\"Say \"\"hi\"\"\",\r\nTotal,=SUM(B2:B3)\r\n";
  const json sheet = csv_to_sheet(csv, "Budget");
  CHECK(sheet["name"] == "Budget");
  CHECK(sheet["cells"]["A3"] == "Food, drink");
  CHECK(sheet["cells"]["A4"] == "Say \"hi\"");
  CHECK_FALSE(sheet["cells"].contains("B4"));
  CHECK(sheet["cells"]["B5"] == "=SUM(B2:B3)");
  CHECK(sheet_to_csv(sheet) == "Item,Cost\r\nRent,500\r\n\"Food, drink\",200\r\n\"Say \"\"hi\"\"\",\r\nTotal,=SUM(B2:B3)\r\n");
  // LF line ends and a last line without one.
  CHECK(csv_to_sheet("a,b\nc,d", "")["cells"] == json{{"A1", "a"}, {"B1", "b"}, {"A2", "c"}, {"B2", "d"}});
  CHECK(csv_to_sheet("", "")["cells"].empty());
}

TEST_CASE("the document string holds sheets and metadata, keys sorted") {
  const json sheets = json::array({csv_to_sheet("1,2", "One"), csv_to_sheet("x", "Two")});
  const std::string content = sheet_content(sheets, "Budget 2027");
  CHECK(content == R"({"metadata":{"defaultTitle":"Spreadsheet","title":"Budget 2027","type":"sheet"},)"
                   R"("sheets":[{"cells":{"A1":"1","B1":"2"},"name":"One"},{"cells":{"A1":"x"},"name":"Two"}]})");
  const auto parsed = parse_sheet(content);
  REQUIRE(parsed);
  CHECK(parsed->first == sheets);
  CHECK(parsed->second == "Budget 2027");
  CHECK_FALSE(parse_sheet("[\"BODY\",{},[]]"));
  CHECK_FALSE(parse_sheet("{\"sheets\": 3}"));
  CHECK_FALSE(parse_sheet("plain text"));
}

TEST_CASE("sheets as Markdown tables; cells with bad references are left out") {
  json sheet = csv_to_sheet("k,v\n1,a|b", "S");
  sheet["cells"]["ZZZZ1"] = "too far";
  sheet["cells"]["A0"] = "no row 0";
  CHECK(sheets_to_markdown(json::array({sheet})) == "## S\n\n| k | v |\n| --- | --- |\n| 1 | a\\|b |\n");
}
