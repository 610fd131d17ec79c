// Rich-text documents as CryptPad stores them ("pad" documents): the ChainPad document is
// JSON.sortify of ["BODY", {attributes}, [children], {"metadata": {...}}], where each element
// is [TAG, {attribute: value}, [children]] and each text node a string (the hyper-json form
// CryptPad's pad editor writes and reads). Here: reading and writing that form, and turning it
// into and out of Markdown, HTML and plain text for `coop docs new|push|pull`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace coop::docs {

// The children of a pad's BODY and its title, or nullopt when content is not a rich-text
// document (older coop documents hold plain text).
std::optional<std::pair<nlohmann::json, std::string>> parse_rich_text(const std::string& content);

// The ChainPad document for these children and title, exactly as CryptPad's editor writes it
// (keys sorted at every level, JSON.stringify's escapes).
std::string rich_text_content(const nlohmann::json& children, const std::string& title);

// Markdown (CommonMark, by cmark) to children; raw HTML in it stays text; "- [ ] " and
// "- [x] " items become a checklist; links and images keep only http(s), mailto, relative and
// attachment (/docs/blob/) addresses.
nlohmann::json markdown_to_children(const std::string& markdown);

std::string children_to_markdown(const nlohmann::json& children);
// A whole HTML page: only the tags and attributes the editor makes, addresses checked.
std::string children_to_html(const nlohmann::json& children, const std::string& title);
std::string children_to_text(const nlohmann::json& children);

// A Markdown (GFM) pipe table, the first row its header; '|' in cells escaped, newlines as spaces.
std::string markdown_table(const std::vector<std::vector<std::string>>& rows);

// The title a document shows: its metadata's, else its first heading's or line's text.
std::string rich_text_title(const nlohmann::json& children, const std::string& metadata_title);

}  // namespace coop::docs
