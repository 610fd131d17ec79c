// Unit tests for rich text in CryptPad's hyper-json form: Markdown in and out, HTML and text
// out, the document string as CryptPad's editor writes it.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "workers/docs/rich_text.h"

using namespace coop::docs;
using nlohmann::json;

TEST_CASE("Markdown goes to hyper-json elements and back unchanged") {
  const std::string markdown =
      "# Minutes\n\n"
      "Some **bold** and *italic* text with a [link](https://coop.example/a).\n\n"
      "- one\n- two\n\n"
      "1. first\n2. second\n\n"
      "- [ ] buy bread\n- [x] book the room\n\n"
      "```cpp\nint x = 1;\n```\n\n"
      "> quoted\n\n"
      "---\n\n"
      "An image ![logo](/docs/blob/abc#key) and `code`.\n";
  const json children = markdown_to_children(markdown);
  CHECK(children[0] == json::parse(R"(["H1",{},["Minutes"]])"));
  CHECK(children[1][2][1] == json::parse(R"(["STRONG",{},["bold"]])"));
  CHECK(children[1][2][5] == json::parse(R"(["A",{"href":"https://coop.example/a"},["link"]])"));
  CHECK(children[2] == json::parse(R"(["UL",{},[["LI",{},["one"]],["LI",{},["two"]]]])"));
  CHECK(children[4][1]["data-checklist"] == "true");
  CHECK(children[4][2][1] == json::parse(R"(["LI",{"data-checked":"true"},["book the room"]])"));
  CHECK(children[5] == json::parse(R"(["PRE",{},[["CODE",{"class":"language-cpp"},["int x = 1;"]]]])"));
  CHECK(children_to_markdown(children) == markdown);
}

TEST_CASE("raw HTML stays text and unsafe addresses are dropped") {
  const json children = markdown_to_children("<script>alert(1)</script>\n\n[x](javascript:alert(1)) ![i](data:x)\n");
  CHECK(children[0] == json::parse(R"(["P",{},["<script>alert(1)</script>"]])"));
  CHECK(children[1][2][0] == json::parse(R"(["SPAN",{},["x"]])"));
  const std::string html = children_to_html(children, "T <1>");
  CHECK(html.find("<script>") == std::string::npos);
  CHECK(html.find("&lt;script&gt;") != std::string::npos);
  CHECK(html.find("<title>T &lt;1&gt;</title>") != std::string::npos);
  CHECK(html.find("javascript") == std::string::npos);
}

TEST_CASE("HTML export keeps the editor's elements and checks attributes") {
  const json children = json::parse(R"J([
    ["H2",{},["Plan"]],
    ["P",{"onclick":"x()"},["a ",["STRONG",{},["b"]]," ",["A",{"href":"javascript:x()"},["c"]]]],
    ["UL",{"data-checklist":"true"},[["LI",{"data-checked":"true"},["done"]]]],
    ["TABLE",{},[["TBODY",{},[["TR",{},[["TH",{},["k"]],["TH",{},["v"]]]],["TR",{},[["TD",{},["1"]],["TD",{},["2|3"]]]]]]]],
    ["FORM",{},["kept text"]]
  ])J");
  const std::string html = children_to_html(children, "Plan");
  CHECK(html.find("<h2>Plan</h2>") != std::string::npos);
  CHECK(html.find("onclick") == std::string::npos);
  CHECK(html.find("<a>c</a>") != std::string::npos);
  CHECK(html.find("<input type=\"checkbox\" checked disabled> done") != std::string::npos);
  CHECK(html.find("<th>k</th>") != std::string::npos);
  CHECK(html.find("<form") == std::string::npos);
  CHECK(html.find("kept text") != std::string::npos);
  CHECK(children_to_markdown(children) ==
        "## Plan\n\na **b** c\n\n- [x] done\n\n| k | v |\n| --- | --- |\n| 1 | 2\\|3 |\n\nkept text\n");
  CHECK(children_to_text(children) == "Plan\na b c\ndone\nk\tv\n1\t2|3\nkept text\n");
}

TEST_CASE("the document string is CryptPad's: BODY, sorted keys, metadata last") {
  const json children = markdown_to_children("Hello *you*\n");
  const std::string content = rich_text_content(children, "Greeting");
  CHECK(content.rfind(R"(["BODY",{"class":"cke_editable cke_editable_themed cke_contents_ltr cke_show_borders",)"
                      R"("contenteditable":"true","spellcheck":"false"},[["P",{},["Hello ",["EM",{},["you"]]]]],)", 0) == 0);
  CHECK(content.find(R"({"metadata":{"defaultTitle":"Rich text","title":"Greeting","type":"pad"}}])") != std::string::npos);
  const auto parsed = parse_rich_text(content);
  REQUIRE(parsed);
  CHECK(parsed->first == children);
  CHECK(parsed->second == "Greeting");
  CHECK_FALSE(parse_rich_text("Plain text from an older coop"));
  CHECK_FALSE(parse_rich_text("[1, 2"));
  CHECK_FALSE(parse_rich_text("[\"DIV\", {}, []]"));
  CHECK(rich_text_title(children, "") == "Hello you");
  CHECK(rich_text_title(children, "Set") == "Set");
}

TEST_CASE("text that looks like Markdown structure stays text on the way out") {
  const json children = json::parse(R"([["P",{},["# not a heading *or* [link]"]],["P",{},["1. not a list"]]])");
  const std::string markdown = children_to_markdown(children);
  CHECK(markdown == "\\# not a heading \\*or\\* \\[link\\]\n\n1\\. not a list\n");
  CHECK(markdown_to_children(markdown) == children);
}
