// Rich text in CryptPad's hyper-json form, to and from Markdown, HTML and text. Element names
// are upper case, as a browser's tagName gives them; the editor (workers/docs/web/app) makes
// the same elements: P, H1-H6, STRONG, EM, S, CODE, A, UL/OL/LI (a checklist is a UL with
// data-checklist and LI data-checked), BLOCKQUOTE, PRE>CODE, HR, BR, IMG, TABLE>TBODY>TR>TH|TD.
#include "workers/docs/rich_text.h"

#include <cmark.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <functional>
#include <memory>
#include <set>
#include <utility>

#include "common/text.h"

namespace coop::docs {

using nlohmann::json;

namespace {

json element(const std::string& tag, json attributes = json::object(), json children = json::array()) {
  return json::array({tag, std::move(attributes), std::move(children)});
}

bool is_element(const json& node) {
  return node.is_array() && node.size() >= 3 && node[0].is_string() && node[1].is_object() && node[2].is_array();
}

std::string tag_of(const json& node) { return is_element(node) ? node[0].get<std::string>() : std::string(); }

std::string attribute(const json& node, const char* name) {
  if (!is_element(node)) return {};
  auto it = node[1].find(name);
  return it != node[1].end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Addresses a document may link to: the web, mail, the page's own paths and attachments.
bool safe_address(const std::string& url) {
  if (url.empty()) return false;
  const std::string lower = ascii_lower(url);
  if (lower.rfind("http://", 0) == 0 || lower.rfind("https://", 0) == 0 || lower.rfind("mailto:", 0) == 0) return true;
  // Relative: no scheme before the first '/', '?' or '#'.
  const auto colon = lower.find(':');
  const auto stop = lower.find_first_of("/?#");
  return colon == std::string::npos || (stop != std::string::npos && stop < colon);
}

// Appends a child, joining it to a text before it.
void append(json& children, json child) {
  if (child.is_string() && !children.empty() && children.back().is_string()) {
    children.back() = children.back().get<std::string>() + child.get<std::string>();
    return;
  }
  children.push_back(std::move(child));
}

json convert(cmark_node* node, bool tight);

json convert_children(cmark_node* parent, bool tight) {
  json children = json::array();
  for (cmark_node* child = cmark_node_first_child(parent); child; child = cmark_node_next(child)) {
    json converted = convert(child, tight);
    if (converted.is_null()) continue;
    // A tight list's paragraphs are not paragraphs: their text goes into the item itself.
    if (tight && cmark_node_get_type(child) == CMARK_NODE_PARAGRAPH) {
      if (!children.empty()) append(children, element("BR"));
      for (auto& inline_child : converted[2]) append(children, std::move(inline_child));
      continue;
    }
    append(children, std::move(converted));
  }
  return children;
}

std::string literal(cmark_node* node) {
  const char* text = cmark_node_get_literal(node);
  return text ? text : "";
}

json convert(cmark_node* node, bool tight) {
  switch (cmark_node_get_type(node)) {
    case CMARK_NODE_PARAGRAPH: return element("P", json::object(), convert_children(node, false));
    case CMARK_NODE_HEADING:
      return element("H" + std::to_string(std::clamp(cmark_node_get_heading_level(node), 1, 6)), json::object(),
                     convert_children(node, false));
    case CMARK_NODE_BLOCK_QUOTE: return element("BLOCKQUOTE", json::object(), convert_children(node, false));
    case CMARK_NODE_THEMATIC_BREAK: return element("HR");
    case CMARK_NODE_CODE_BLOCK: {
      std::string text = literal(node);
      if (!text.empty() && text.back() == '\n') text.pop_back();
      json code_attributes = json::object();
      const char* info = cmark_node_get_fence_info(node);
      std::string language = info ? info : "";
      language = language.substr(0, language.find(' '));
      if (!language.empty()) code_attributes["class"] = "language-" + language;
      return element("PRE", json::object(), json::array({element("CODE", code_attributes, json::array({text}))}));
    }
    case CMARK_NODE_HTML_BLOCK: {
      std::string text = literal(node);
      while (!text.empty() && text.back() == '\n') text.pop_back();
      return element("P", json::object(), json::array({text}));
    }
    case CMARK_NODE_LIST: {
      const bool ordered = cmark_node_get_list_type(node) == CMARK_ORDERED_LIST;
      const bool list_tight = cmark_node_get_list_tight(node) != 0;
      json attributes = json::object();
      if (ordered && cmark_node_get_list_start(node) != 1)
        attributes["start"] = std::to_string(cmark_node_get_list_start(node));
      json items = json::array();
      bool checklist = !ordered;
      for (cmark_node* item = cmark_node_first_child(node); item; item = cmark_node_next(item)) {
        json li = element("LI", json::object(), convert_children(item, list_tight));
        // "[ ] " or "[x] " starting an item: a checklist item.
        json& kids = li[2];
        json* first_text = nullptr;
        if (!kids.empty() && kids[0].is_string()) first_text = &kids[0];
        else if (!kids.empty() && tag_of(kids[0]) == "P" && !kids[0][2].empty() && kids[0][2][0].is_string())
          first_text = &kids[0][2][0];
        std::string text = first_text ? first_text->get<std::string>() : "";
        if (text.size() >= 4 && text[0] == '[' && (text[1] == ' ' || text[1] == 'x' || text[1] == 'X') && text[2] == ']' &&
            text[3] == ' ') {
          li[1]["data-checked"] = text[1] == ' ' ? "false" : "true";
          *first_text = text.substr(4);
        } else {
          checklist = false;
        }
        items.push_back(std::move(li));
      }
      if (checklist) {
        attributes["data-checklist"] = "true";
      } else {
        // Not every item is a task: put back what was taken off.
        for (auto& li : items) {
          auto it = li[1].find("data-checked");
          if (it == li[1].end()) continue;
          const std::string mark = it->get<std::string>() == "true" ? "[x] " : "[ ] ";
          li[1].erase(it);
          json& kids = li[2];
          if (!kids.empty() && kids[0].is_string()) kids[0] = mark + kids[0].get<std::string>();
          else if (!kids.empty() && tag_of(kids[0]) == "P") kids[0][2][0] = mark + kids[0][2][0].get<std::string>();
        }
      }
      return element(ordered ? "OL" : "UL", attributes, items);
    }
    case CMARK_NODE_ITEM: return element("LI", json::object(), convert_children(node, tight));
    case CMARK_NODE_TEXT: return literal(node);
    case CMARK_NODE_SOFTBREAK: return " ";
    case CMARK_NODE_LINEBREAK: return element("BR");
    case CMARK_NODE_CODE: return element("CODE", json::object(), json::array({literal(node)}));
    case CMARK_NODE_HTML_INLINE: return literal(node);
    case CMARK_NODE_EMPH: return element("EM", json::object(), convert_children(node, false));
    case CMARK_NODE_STRONG: return element("STRONG", json::object(), convert_children(node, false));
    case CMARK_NODE_LINK: {
      const char* url = cmark_node_get_url(node);
      json children = convert_children(node, false);
      if (!url || !safe_address(url)) return element("SPAN", json::object(), children);
      json attributes{{"href", url}};
      if (const char* title = cmark_node_get_title(node); title && *title) attributes["title"] = title;
      return element("A", attributes, children);
    }
    case CMARK_NODE_IMAGE: {
      const char* url = cmark_node_get_url(node);
      std::string alt;
      for (cmark_node* child = cmark_node_first_child(node); child; child = cmark_node_next(child)) alt += literal(child);
      if (!url || !safe_address(url)) return alt;
      return element("IMG", json{{"src", url}, {"alt", alt}});
    }
    default: return nullptr;
  }
}

// --- Out: Markdown ---

std::string escape_markdown(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '*' || c == '_' || c == '`' || c == '[' || c == ']' || c == '<') out += '\\';
    out += c;
  }
  return out;
}

// Line starts that Markdown would read as structure get a backslash.
std::string guard_line_start(const std::string& line) {
  if (line.empty()) return line;
  const char c = line[0];
  if (c == '#' || c == '>' || c == '+' || c == '=' || (c == '-' && (line.size() == 1 || line[1] == ' ' || line[1] == '-')))
    return "\\" + line;
  std::size_t digits = 0;
  while (digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits]))) ++digits;
  if (digits > 0 && digits < line.size() && (line[digits] == '.' || line[digits] == ')'))
    return line.substr(0, digits) + "\\" + line.substr(digits);
  return line;
}

std::string inline_markdown(const json& children);

std::string text_of(const json& node) {
  if (node.is_string()) return node.get<std::string>();
  std::string out;
  if (is_element(node)) {
    if (tag_of(node) == "BR") return "\n";
    for (const auto& child : node[2]) out += text_of(child);
  }
  return out;
}

std::string inline_node_markdown(const json& node) {
  if (node.is_string()) return escape_markdown(node.get<std::string>());
  if (!is_element(node)) return {};
  const std::string tag = tag_of(node);
  const std::string inner = inline_markdown(node[2]);
  if (tag == "STRONG" || tag == "B") return inner.empty() ? "" : "**" + inner + "**";
  if (tag == "EM" || tag == "I") return inner.empty() ? "" : "*" + inner + "*";
  if (tag == "S" || tag == "DEL" || tag == "STRIKE") return inner.empty() ? "" : "~~" + inner + "~~";
  if (tag == "CODE") {
    const std::string code = text_of(node);
    const std::string fence = code.find('`') == std::string::npos ? "`" : "`` ";
    return fence + code + (fence == "`" ? "`" : " ``");
  }
  if (tag == "A") {
    const std::string href = attribute(node, "href");
    return safe_address(href) ? "[" + inner + "](" + href + ")" : inner;
  }
  if (tag == "IMG") {
    const std::string src = attribute(node, "src");
    return safe_address(src) ? "![" + escape_markdown(attribute(node, "alt")) + "](" + src + ")" : "";
  }
  if (tag == "BR") return "  \n";
  return inner;
}

std::string inline_markdown(const json& children) {
  std::string out;
  for (const auto& child : children) out += inline_node_markdown(child);
  return out;
}

bool is_block(const std::string& tag) {
  static const std::set<std::string> kBlocks{"P",  "H1", "H2", "H3", "H4",         "H5",    "H6",    "UL",  "OL",
                                             "LI", "PRE", "BLOCKQUOTE", "HR", "TABLE", "TBODY", "THEAD", "TR", "DIV"};
  return kBlocks.count(tag) != 0;
}

// Prefixes every line after the first (and the first, when first is set).
std::string indent(const std::string& text, const std::string& first, const std::string& rest) {
  std::string out;
  bool at_start = true;
  bool first_line = true;
  for (char c : text) {
    if (at_start) {
      out += first_line ? first : rest;
      at_start = false;
      first_line = false;
    }
    out += c;
    if (c == '\n') at_start = true;
  }
  return out;
}

std::string blocks_markdown(const json& children);

std::string table_markdown(const json& table) {
  std::vector<std::vector<std::string>> rows;
  std::function<void(const json&)> collect = [&](const json& node) {
    if (!is_element(node)) return;
    if (tag_of(node) == "TR") {
      std::vector<std::string> row;
      for (const auto& cell : node[2]) {
        if (!is_element(cell)) continue;
        std::string text = inline_markdown(cell[2]);
        for (const auto& block : cell[2])
          if (is_element(block) && is_block(tag_of(block))) text = inline_markdown(block[2]);
        row.push_back(text);
      }
      rows.push_back(std::move(row));
      return;
    }
    for (const auto& child : node[2]) collect(child);
  };
  collect(table);
  return markdown_table(rows);
}

std::string block_markdown(const json& node) {
  const std::string tag = tag_of(node);
  if (tag.size() == 2 && tag[0] == 'H' && tag[1] >= '1' && tag[1] <= '6')
    return std::string(static_cast<std::size_t>(tag[1] - '0'), '#') + " " + inline_markdown(node[2]) + "\n";
  if (tag == "P" || tag == "DIV") {
    bool has_blocks = false;
    for (const auto& child : node[2]) has_blocks = has_blocks || (is_element(child) && is_block(tag_of(child)));
    if (has_blocks) return blocks_markdown(node[2]);
    std::string text = inline_markdown(node[2]);
    std::string out;
    std::size_t start = 0;
    while (start <= text.size()) {
      auto end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      out += guard_line_start(text.substr(start, end - start)) + "\n";
      start = end + 1;
    }
    return out;
  }
  if (tag == "HR") return "---\n";
  if (tag == "PRE") {
    std::string language;
    for (const auto& child : node[2])
      if (tag_of(child) == "CODE") {
        const std::string cls = attribute(child, "class");
        if (cls.rfind("language-", 0) == 0) language = cls.substr(9);
      }
    std::string code = text_of(node);
    std::string fence = "```";
    while (code.find(fence) != std::string::npos) fence += '`';
    return fence + language + "\n" + code + (code.empty() || code.back() == '\n' ? "" : "\n") + fence + "\n";
  }
  if (tag == "BLOCKQUOTE") {
    std::string inner = blocks_markdown(node[2]);
    while (!inner.empty() && inner.back() == '\n') inner.pop_back();
    return indent(inner, "> ", "> ") + "\n";
  }
  if (tag == "UL" || tag == "OL") {
    const bool checklist = attribute(node, "data-checklist") == "true";
    int number = 1;
    if (const std::string start = attribute(node, "start"); !start.empty())
      number = std::max(0, std::atoi(start.c_str()));
    std::string out;
    for (const auto& item : node[2]) {
      if (!is_element(item)) continue;
      std::string marker = tag == "OL" ? std::to_string(number++) + ". " : "- ";
      if (checklist || !attribute(item, "data-checked").empty())
        marker += attribute(item, "data-checked") == "true" ? "[x] " : "[ ] ";
      // An item's inline text, then its nested blocks, indented under the marker.
      std::string inline_part, block_part;
      for (const auto& child : item[2]) {
        if (is_element(child) && is_block(tag_of(child))) {
          std::string b = block_markdown(child);
          if (inline_part.empty() && block_part.empty() && (tag_of(child) == "P" || tag_of(child) == "DIV")) {
            inline_part = b;
            while (!inline_part.empty() && inline_part.back() == '\n') inline_part.pop_back();
          } else {
            block_part += b;
          }
        } else {
          inline_part += inline_node_markdown(child);
        }
      }
      const std::string pad(marker.size() - (marker.find('[') != std::string::npos ? 4 : 0), ' ');
      out += indent(inline_part, marker, pad) + "\n";
      if (!block_part.empty()) {
        while (!block_part.empty() && block_part.back() == '\n') block_part.pop_back();
        out += indent(block_part, pad, pad) + "\n";
      }
    }
    return out;
  }
  if (tag == "TABLE") return table_markdown(node);
  return inline_markdown(json::array({node})) + "\n";
}

std::string blocks_markdown(const json& children) {
  std::string out;
  std::string pending_inline;
  auto flush = [&] {
    if (pending_inline.empty()) return;
    if (!out.empty()) out += "\n";
    out += guard_line_start(pending_inline) + "\n";
    pending_inline.clear();
  };
  for (const auto& child : children) {
    if (is_element(child) && is_block(tag_of(child))) {
      flush();
      const std::string block = block_markdown(child);
      if (block.empty()) continue;
      if (!out.empty()) out += "\n";
      out += block;
    } else {
      pending_inline += inline_node_markdown(child);
    }
  }
  flush();
  return out;
}

// --- Out: HTML and text ---

void html_node(const json& node, std::string& out) {
  if (node.is_string()) {
    out += html_escape(node.get<std::string>());
    return;
  }
  if (!is_element(node)) return;
  static const std::set<std::string> kAllowed{"P",  "H1",  "H2",  "H3",    "H4",    "H5", "H6", "STRONG", "B",
                                              "EM", "I",   "U",   "S",     "DEL",   "CODE", "PRE", "A",   "UL",
                                              "OL", "LI",  "BLOCKQUOTE", "HR", "BR", "IMG", "TABLE", "THEAD",
                                              "TBODY", "TR", "TH", "TD", "SPAN", "DIV", "SUP", "SUB"};
  const std::string tag = tag_of(node);
  if (!kAllowed.count(tag)) {
    // Unknown elements (a later editor's, or CryptPad's widgets): their content only.
    for (const auto& child : node[2]) html_node(child, out);
    return;
  }
  const std::string name = ascii_lower(tag);
  out += "<" + name;
  for (const char* key : {"href", "src", "alt", "title", "start", "colspan", "rowspan", "class", "data-checked",
                          "data-checklist"}) {
    std::string value = attribute(node, key);
    if (value.empty()) continue;
    if ((std::string(key) == "href" || std::string(key) == "src") && !safe_address(value)) continue;
    out += " " + std::string(key) + "=\"" + html_escape(value) + "\"";
  }
  out += ">";
  if (tag == "BR" || tag == "HR" || tag == "IMG") return;
  if (tag == "LI" && !attribute(node, "data-checked").empty())
    out += attribute(node, "data-checked") == "true" ? "<input type=\"checkbox\" checked disabled> "
                                                      : "<input type=\"checkbox\" disabled> ";
  for (const auto& child : node[2]) html_node(child, out);
  out += "</" + name + ">";
  if (is_block(tag)) out += "\n";
}

void text_node(const json& node, std::string& out) {
  if (node.is_string()) {
    out += node.get<std::string>();
    return;
  }
  if (!is_element(node)) return;
  const std::string tag = tag_of(node);
  if (tag == "BR") {
    out += "\n";
    return;
  }
  const bool block = is_block(tag) && tag != "UL" && tag != "OL" && tag != "TABLE" && tag != "TBODY" && tag != "THEAD";
  if (block && !out.empty() && out.back() != '\n') out += "\n";
  bool first_cell = true;
  for (const auto& child : node[2]) {
    if (tag == "TR" && is_element(child) && !std::exchange(first_cell, false)) out += "\t";
    text_node(child, out);
  }
  if (block && !out.empty() && out.back() != '\n') out += "\n";
}

}  // namespace

std::string markdown_table(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return {};
  std::size_t columns = 0;
  for (const auto& row : rows) columns = std::max(columns, row.size());
  auto cell = [](const std::string& text) {
    std::string escaped;
    for (char c : text) escaped += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    return escaped;
  };
  std::string out;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    out += "|";
    for (std::size_t c = 0; c < columns; ++c) out += " " + (c < rows[r].size() ? cell(rows[r][c]) : std::string()) + " |";
    out += "\n";
    if (r == 0) {
      out += "|";
      for (std::size_t c = 0; c < columns; ++c) out += " --- |";
      out += "\n";
    }
  }
  return out;
}

std::optional<std::pair<json, std::string>> parse_rich_text(const std::string& content) {
  if (content.empty() || content[0] != '[') return std::nullopt;
  json document = json::parse(content, nullptr, false);
  if (!document.is_array() || document.size() < 3 || document[0] != "BODY" || !document[2].is_array())
    return std::nullopt;
  std::string title;
  const json& last = document.back();
  if (last.is_object() && last.contains("metadata") && last["metadata"].is_object()) {
    const json& metadata = last["metadata"];
    if (metadata.contains("title") && metadata["title"].is_string()) title = metadata["title"].get<std::string>();
  }
  return std::make_pair(document[2], title);
}

std::string rich_text_content(const json& children, const std::string& title) {
  json metadata{{"defaultTitle", "Rich text"}, {"type", "pad"}};
  if (!title.empty()) metadata["title"] = title;
  // CryptPad's pad editor normalizes BODY's attributes to these.
  const json document = json::array(
      {"BODY",
       {{"class", "cke_editable cke_editable_themed cke_contents_ltr cke_show_borders"}, {"contenteditable", "true"},
        {"spellcheck", "false"}},
       children,
       {{"metadata", metadata}}});
  // nlohmann's objects keep their keys sorted, as JSON.sortify writes them.
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

json markdown_to_children(const std::string& markdown) {
  std::unique_ptr<cmark_node, decltype(&cmark_node_free)> root(
      cmark_parse_document(markdown.data(), markdown.size(), CMARK_OPT_DEFAULT | CMARK_OPT_VALIDATE_UTF8),
      cmark_node_free);
  if (!root) return json::array();
  return convert_children(root.get(), false);
}

std::string children_to_markdown(const json& children) {
  std::string out = blocks_markdown(children);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? out : out + "\n";
}

std::string children_to_html(const json& children, const std::string& title) {
  std::string body;
  for (const auto& child : children) html_node(child, body);
  return "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>" + html_escape(title) +
         "</title>\n</head>\n<body>\n" + body + "</body>\n</html>\n";
}

std::string children_to_text(const json& children) {
  std::string out;
  for (const auto& child : children) text_node(child, out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.empty() ? out : out + "\n";
}

std::string rich_text_title(const json& children, const std::string& metadata_title) {
  if (!metadata_title.empty()) return metadata_title;
  for (const auto& child : children) {
    std::string text = text_of(child);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    std::size_t start = 0;
    while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
    text = text.substr(start, text.find('\n', start) - start);
    if (!text.empty()) return text.size() > 120 ? text.substr(0, 120) : text;
  }
  return {};
}

}  // namespace coop::docs
