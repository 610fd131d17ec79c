// FETCH data items and message sections.
#include "workers/mail/imap_fetch.h"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "common/text.h"
#include "workers/mail/imap_parser.h"

namespace coop::mail::imap {

namespace {

using nlohmann::json;

std::string upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

FetchItem simple(FetchItem::Kind kind) {
  FetchItem item;
  item.kind = kind;
  return item;
}

class ItemParser {
 public:
  explicit ItemParser(std::string_view text) : text_(text) {}

  std::optional<std::vector<FetchItem>> parse() {
    std::vector<FetchItem> items;
    if (take('(')) {
      for (;;) {
        if (!item(items)) return std::nullopt;
        if (take(')')) break;
        if (!take(' ')) return std::nullopt;
      }
    } else {
      const auto word = peek_word();
      if (word == "ALL" || word == "FAST" || word == "FULL") {
        at_ += word.size();
        // RFC 9051 6.4.5 macros.
        for (auto kind : {FetchItem::Kind::flags, FetchItem::Kind::internaldate, FetchItem::Kind::size}) items.push_back(simple(kind));
        if (word != "FAST") items.push_back(simple(FetchItem::Kind::envelope));
        if (word == "FULL") items.push_back(simple(FetchItem::Kind::body));
      } else if (!item(items)) {
        return std::nullopt;
      }
    }
    if (at_ != text_.size()) return std::nullopt;
    return items;
  }

 private:
  bool take(char c) {
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  std::string peek_word() const {
    std::size_t end = at_;
    while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '.' || text_[end] == '8'))
      ++end;
    return upper(text_.substr(at_, end - at_));
  }

  bool item(std::vector<FetchItem>& items) {
    const std::string word = peek_word();
    at_ += word.size();
    using K = FetchItem::Kind;
    static const std::pair<const char*, K> kSimple[] = {
        {"UID", K::uid}, {"FLAGS", K::flags}, {"INTERNALDATE", K::internaldate}, {"RFC822.SIZE", K::size},
        {"ENVELOPE", K::envelope}, {"BODYSTRUCTURE", K::bodystructure}, {"RFC822", K::rfc822},
        {"RFC822.HEADER", K::rfc822_header}, {"RFC822.TEXT", K::rfc822_text}, {"MODSEQ", K::modseq},
        {"SAVEDATE", K::savedate}};
    if (word == "BODY" || word == "BODY.PEEK" || word == "BINARY" || word == "BINARY.PEEK" || word == "BINARY.SIZE") {
      if (at_ >= text_.size() || text_[at_] != '[') {
        if (word != "BODY") return false;
        items.push_back(simple(K::body));  // BODY alone: the non-extensible structure
        return true;
      }
      FetchItem f;
      f.kind = K::section;
      f.peek = word.find(".PEEK") != std::string::npos || word == "BINARY.SIZE";
      f.binary = word.rfind("BINARY", 0) == 0;
      f.binary_size = word == "BINARY.SIZE";
      ++at_;
      const auto close = text_.find(']', at_);
      if (close == std::string_view::npos) return false;
      std::string inside(text_.substr(at_, close - at_));
      at_ = close + 1;
      const auto space = inside.find(' ');
      f.spec = upper(inside.substr(0, space));
      if (f.spec.find("HEADER.FIELDS") != std::string::npos) {
        if (space == std::string::npos) return false;
        std::string list = inside.substr(space + 1);
        if (list.size() < 2 || list.front() != '(' || list.back() != ')') return false;
        list = list.substr(1, list.size() - 2);
        std::size_t start = 0;
        while (start <= list.size()) {
          const auto end = std::min(list.find(' ', start), list.size());
          std::string name = list.substr(start, end - start);
          if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
          if (name.empty()) return false;
          f.fields.push_back(upper(name));
          start = end + 1;
        }
      } else if (space != std::string::npos) {
        return false;
      }
      if (!valid_spec(f.spec)) return false;
      // RFC 3516: BINARY sections are part numbers only.
      if (f.binary && f.spec.find_first_not_of("0123456789.") != std::string::npos) return false;
      if (take('<')) {
        const auto dot = text_.find('.', at_);
        const auto end = text_.find('>', at_);
        if (dot == std::string_view::npos || end == std::string_view::npos || dot > end) return false;
        const std::string offset(text_.substr(at_, dot - at_)), length(text_.substr(dot + 1, end - dot - 1));
        auto digits = [](const std::string& t) { return !t.empty() && t.size() <= 18 && t.find_first_not_of("0123456789") == std::string::npos; };
        if (!digits(offset) || !digits(length)) return false;
        f.partial = std::make_pair(std::stoull(offset), std::stoull(length));
        at_ = end + 1;
      }
      items.push_back(std::move(f));
      return true;
    }
    if (word == "PREVIEW") {  // RFC 8970 3.1: PREVIEW, or PREVIEW (LAZY), which we can always answer
      if (text_.substr(at_, 7) == " (LAZY)" || text_.substr(at_, 7) == " (lazy)") at_ += 7;
      items.push_back(simple(K::preview));
      return true;
    }
    for (const auto& [name, kind] : kSimple)
      if (word == name) {
        items.push_back(simple(kind));
        return true;
      }
    return false;
  }

  static bool valid_spec(const std::string& spec) {
    if (spec.empty() || spec == "HEADER" || spec == "TEXT" || spec == "HEADER.FIELDS" || spec == "HEADER.FIELDS.NOT") return true;
    // part numbers, optionally followed by .HEADER .TEXT .MIME
    std::size_t at = 0;
    while (at < spec.size() && std::isdigit(static_cast<unsigned char>(spec[at]))) {
      while (at < spec.size() && std::isdigit(static_cast<unsigned char>(spec[at]))) ++at;
      if (at == spec.size()) return true;
      if (spec[at] != '.') return false;
      ++at;
      const auto rest = spec.substr(at);
      if (rest == "HEADER" || rest == "TEXT" || rest == "MIME" || rest == "HEADER.FIELDS" || rest == "HEADER.FIELDS.NOT")
        return true;
    }
    return false;
  }

  std::string_view text_;
  std::size_t at_ = 0;
};


// The header fields named (or all others), with their continuation lines, and the empty line.
std::string header_fields(std::string_view header, const std::vector<std::string>& names, bool keep_named) {
  std::string out;
  std::size_t at = 0;
  bool keeping = false;
  while (at < header.size()) {
    auto end = header.find('\n', at);
    end = end == std::string_view::npos ? header.size() : end + 1;
    const auto line = header.substr(at, end - at);
    at = end;
    if (line == "\r\n" || line == "\n") break;
    if (line.front() != ' ' && line.front() != '\t') {
      const auto colon = line.find(':');
      const std::string name = upper(colon == std::string_view::npos ? std::string_view() : line.substr(0, colon));
      const bool named = std::find(names.begin(), names.end(), name) != names.end();
      keeping = named == keep_named && colon != std::string_view::npos;
    }
    if (keeping) out.append(line);
  }
  return out + "\r\n";
}

const json* find_part(const json& node, const std::string& number) {
  if (!node.is_object()) return nullptr;
  if (node.value("part", std::string()) == number) return &node;
  if (node.contains("parts") && node["parts"].is_array())
    for (const auto& child : node["parts"])
      if (const auto* found = find_part(child, number)) return found;
  if (node.contains("body") && node["body"].is_object()) return find_part(node["body"], number);
  return nullptr;
}

// The multipart node whose "parts" hold `child`, or null.
const json* parent_of(const json& node, const json* child) {
  if (!node.is_object()) return nullptr;
  if (node.contains("parts") && node["parts"].is_array())
    for (const auto& part : node["parts"]) {
      if (&part == child) return &node;
      if (const auto* found = parent_of(part, child)) return found;
    }
  if (node.contains("body") && node["body"].is_object()) return parent_of(node["body"], child);
  return nullptr;
}

// The attached message (message/rfc822 node) whose "body" is `child`, or null.
const json* enclosing_message(const json& node, const json* child) {
  if (!node.is_object()) return nullptr;
  if (node.contains("body") && node["body"].is_object()) {
    if (&node["body"] == child) return &node;
    if (const auto* found = enclosing_message(node["body"], child)) return found;
  }
  if (node.contains("parts") && node["parts"].is_array())
    for (const auto& part : node["parts"])
      if (const auto* found = enclosing_message(part, child)) return found;
  return nullptr;
}

// Where a part's content, or the content of its first leaf, starts: a multipart node has no
// offset of its own.
std::optional<int64_t> first_offset(const json& node) {
  if (!node.is_object()) return std::nullopt;
  if (node.contains("offset") && node["offset"].is_number_integer()) return node["offset"].get<int64_t>();
  if (node.contains("parts") && node["parts"].is_array())
    for (const auto& part : node["parts"])
      if (auto offset = first_offset(part)) return offset;
  if (node.contains("body")) return first_offset(node["body"]);
  return std::nullopt;
}

// RFC 9051 6.4.5 MIME: the header of a part with something of it at `inside` (its content, or
// a descendant's), from the line after the enclosing "--boundary" delimiter before it up to
// and with the empty line. The boundary cannot occur inside the part (RFC 2046 5.1.1).
std::optional<std::string_view> mime_header(std::string_view message, std::size_t inside, const std::string& boundary) {
  if (boundary.empty() || inside > message.size()) return std::nullopt;
  const auto delimiter = message.rfind("--" + boundary, inside);
  if (delimiter == std::string_view::npos) return std::nullopt;
  const auto line_end = message.find('\n', delimiter);
  if (line_end == std::string_view::npos || line_end >= inside) return std::nullopt;
  const auto rest = message.substr(line_end + 1, inside - line_end - 1);
  return rest.substr(0, header_end(rest));
}

std::string nstring(const json& value) {
  if (!value.is_string()) return "NIL";
  return quote(value.get<std::string>());
}

std::string addresses(const json& list) {
  if (!list.is_array() || list.empty()) return "NIL";
  std::string out = "(";
  for (const auto& a : list)
    out += "(" + nstring(a.value("name", json())) + " NIL " + nstring(a.value("mailbox", json())) + " " +
           nstring(a.value("host", json())) + ")";
  return out + ")";
}

std::string params(const json& p) {
  if (!p.is_object() || p.empty()) return "NIL";
  std::string out = "(";
  bool first = true;
  for (const auto& [k, v] : p.items()) {
    out += (first ? "" : " ") + quote(upper(k)) + " " + (v.is_string() ? quote(v.get<std::string>()) : std::string("\"\""));
    first = false;
  }
  return out + ")";
}

// A type or subtype as the message wrote it ("X-MyOwn"), the stored lower case otherwise.
std::string as_written(const json& node, const char* key, const char* fallback) {
  const std::string written_key = std::string(key) + "_written";
  if (node.contains(written_key) && node[written_key].is_string()) return node[written_key].get<std::string>();
  return node.value(key, std::string(fallback));
}

// body-fld-dsp: ("attachment" ("filename" "a.pdf")) or NIL.
std::string disposition(const json& node) {
  const json& d = node.contains("disposition") ? node["disposition"] : json();
  if (!d.is_object() || !d.contains("type") || !d["type"].is_string()) return "NIL";
  return "(" + quote(d["type"].get<std::string>()) + " " + params(d.value("params", json::object())) + ")";
}

// body-fld-lang: NIL, one string, or a list of them.
std::string language(const json& node) {
  const json& l = node.contains("language") ? node["language"] : json();
  if (l.is_string()) return quote(l.get<std::string>());
  if (!l.is_array() || l.empty()) return "NIL";
  std::string out = "(";
  for (const auto& tag : l)
    if (tag.is_string()) out += (out.size() > 1 ? " " : "") + quote(tag.get<std::string>());
  return out.size() > 1 ? out + ")" : "NIL";
}

// RFC 9051 7.5.2 body: BODY leaves out the extension data that BODYSTRUCTURE carries
// (body-ext-mpart / body-ext-1part: parameters or MD5, disposition, language, location).
std::string structure(const json& node, bool extended) {
  const std::string extension = extended ? " " + disposition(node) + " " + language(node) + " " +
                                               nstring(node.value("location", json()))
                                         : std::string();
  if (node.contains("parts") && node["parts"].is_array()) {
    std::string out = "(";
    for (const auto& child : node["parts"]) out += structure(child, extended);
    if (node["parts"].empty()) out += "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)";
    out += " " + quote(as_written(node, "subtype", "mixed"));
    if (extended) out += " " + params(node.value("params", json::object())) + extension;
    return out + ")";
  }
  const std::string type = as_written(node, "type", "text"), subtype = as_written(node, "subtype", "plain");
  std::string out = "(" + quote(type) + " " + quote(subtype) + " " + params(node.value("params", json::object())) + " " +
                    nstring(node.value("id", json())) + " " + nstring(node.value("description", json())) + " " +
                    quote(upper(node.value("encoding", std::string("7bit")))) + " " +
                    std::to_string(node.value("size", int64_t{0}));
  if (node.contains("envelope")) {  // message/rfc822 and message/global: the attached message's own
    out += " " + envelope_text(node.value("envelope", json::object()).dump()) + " " +
           (node.contains("body") && node["body"].is_object() ? structure(node["body"], extended) : std::string("NIL")) + " " +
           std::to_string(node.value("lines", int64_t{0}));
  } else if (ascii_lower(type) == "text") {
    out += " " + std::to_string(node.value("lines", int64_t{0}));
  }
  if (extended) out += " " + nstring(node.value("md5", json())) + extension;
  return out + ")";
}

const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

// Where a message's header ends: after the first empty line (CRLF CRLF or LF LF).
std::string FetchItem::response_name() const {
  switch (kind) {
    case Kind::uid: return "UID";
    case Kind::flags: return "FLAGS";
    case Kind::internaldate: return "INTERNALDATE";
    case Kind::size: return "RFC822.SIZE";
    case Kind::envelope: return "ENVELOPE";
    case Kind::body: return "BODY";
    case Kind::bodystructure: return "BODYSTRUCTURE";
    case Kind::rfc822: return "RFC822";
    case Kind::rfc822_header: return "RFC822.HEADER";
    case Kind::rfc822_text: return "RFC822.TEXT";
    case Kind::modseq: return "MODSEQ";
    case Kind::preview: return "PREVIEW";
    case Kind::savedate: return "SAVEDATE";
    case Kind::section: break;
  }
  std::string name = std::string(binary_size ? "BINARY.SIZE[" : binary ? "BINARY[" : "BODY[") + spec;
  if (!fields.empty()) {
    name += " (";
    for (std::size_t i = 0; i < fields.size(); ++i) name += (i ? " " : "") + fields[i];
    name += ")";
  }
  name += "]";
  if (partial) name += "<" + std::to_string(partial->first) + ">";
  return name;
}

std::optional<std::vector<FetchItem>> parse_fetch_items(std::string_view text) { return ItemParser(text).parse(); }

namespace {

// RFC 2045 6.7: quoted-printable. Rule 3: whitespace at the end of an encoded line was
// added in transport and is dropped; "=" at the end of a line (whitespace may follow it, the
// same way) is a soft line break, so neither it nor the line break is part of the data.
std::string quoted_printable_decode(std::string_view in) {
  std::string out;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  // The length of the line break at i (CRLF, or a bare LF), 0 when there is none.
  auto line_break = [&](std::size_t i) -> std::size_t {
    if (i < in.size() && in[i] == '\n') return 1;
    if (i + 1 < in.size() && in[i] == '\r' && in[i + 1] == '\n') return 2;
    return 0;
  };
  // Where the run of spaces and tabs from i ends.
  auto after_blanks = [&](std::size_t i) {
    while (i < in.size() && (in[i] == ' ' || in[i] == '\t')) ++i;
    return i;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == ' ' || c == '\t') {
      const auto end = after_blanks(i);
      if (end == in.size() || line_break(end)) {  // trailing: dropped
        i = end - 1;
        continue;
      }
      out.append(in.substr(i, end - i));
      i = end - 1;
      continue;
    }
    if (c != '=') {
      out += c;
      continue;
    }
    if (const auto end = after_blanks(i + 1); end == in.size() || line_break(end)) {
      i = end + line_break(end) - 1;  // a soft line break: "=", any blanks, the break
      continue;
    }
    if (i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
      i += 2;
    } else {
      out += '=';  // not an escape: kept, as RFC 2045 6.7 (1) suggests of a robust decoder
    }
  }
  return out;
}

// RFC 2045 6.8: base64, with line breaks and stray whitespace ignored.
std::optional<std::string> base64_decode(std::string_view in) {
  std::string clean;
  for (char c : in)
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=') clean += c;
  while (clean.size() % 4) clean += '=';
  std::string out(clean.size() / 4 * 3, '\0');
  int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (written < 0) return std::nullopt;
  std::size_t padding = 0;
  for (std::size_t i = clean.size(); i > 0 && clean[i - 1] == '=' && padding < 2; --i) ++padding;
  out.resize(static_cast<std::size_t>(written) - padding);
  return out;
}

}  // namespace

std::optional<std::string> binary_section(std::string_view message, const FetchItem& item, const std::string& body_structure_json) {
  if (item.spec.empty()) {
    // BINARY[]: the whole message, a MIME entity whose header names its encodings, as stored.
    std::string whole(message);
    if (item.partial) {
      const auto [offset, length] = *item.partial;
      whole = offset >= whole.size() ? std::string() : whole.substr(offset, length);
    }
    return whole;
  }
  const json structure = json::parse(body_structure_json, nullptr, false);
  if (!structure.is_object()) return std::nullopt;
  const bool multipart = structure.contains("parts");
  const json* node = (!multipart && (item.spec == "1" || item.spec.empty())) ? &structure : find_part(structure, item.spec);
  if (!node || node->contains("parts")) return std::nullopt;
  FetchItem raw = item;
  raw.binary = false;
  raw.partial.reset();
  raw.spec = multipart ? item.spec : "1";
  auto bytes = message_section(message, raw, body_structure_json);
  if (!bytes) return std::nullopt;
  const std::string encoding = node->value("encoding", std::string("7bit"));
  std::string decoded;
  if (encoding == "base64") {
    auto d = base64_decode(*bytes);
    if (!d) return std::nullopt;
    decoded = std::move(*d);
  } else if (encoding == "quoted-printable") {
    decoded = quoted_printable_decode(*bytes);
  } else {
    decoded = std::move(*bytes);
  }
  if (item.partial) {
    const auto [offset, length] = *item.partial;
    decoded = offset >= decoded.size() ? std::string() : decoded.substr(offset, length);
  }
  return decoded;
}

std::optional<std::string> message_section(std::string_view message, const FetchItem& item,
                                           const std::string& body_structure_json) {
  std::string_view target = message;
  std::string spec = item.spec;
  if (item.kind == FetchItem::Kind::rfc822_header) spec = "HEADER";
  if (item.kind == FetchItem::Kind::rfc822_text) spec = "TEXT";
  std::string out;
  if (spec.empty()) {
    out = std::string(target);
  } else if (spec == "HEADER") {
    out = std::string(target.substr(0, header_end(target)));
  } else if (spec == "TEXT") {
    out = std::string(target.substr(header_end(target)));
  } else if (spec == "HEADER.FIELDS" || spec == "HEADER.FIELDS.NOT") {
    out = header_fields(target.substr(0, header_end(target)), item.fields, spec == "HEADER.FIELDS");
  } else {
    // RFC 9051 6.4.5: part numbers, then perhaps HEADER, TEXT, MIME or HEADER.FIELDS of the
    // part. A single-part message's body is part 1.
    const auto text_at = spec.find_first_not_of("0123456789.");
    std::string suffix = text_at == std::string::npos ? std::string() : spec.substr(text_at);
    if (text_at != std::string::npos) spec.resize(text_at - 1);
    const json structure = json::parse(body_structure_json, nullptr, false);
    const bool multipart = structure.is_object() && structure.contains("parts");
    if (!suffix.empty()) {
      const json* node = spec == "1" && !multipart ? &structure : structure.is_object() ? find_part(structure, spec) : nullptr;
      if (!node) return std::nullopt;
      if (suffix == "MIME") {
        if (node == &structure) {
          out = std::string(target.substr(0, header_end(target)));
        } else if (const json* message = enclosing_message(structure, node)) {
          // The one body of an attached message: its MIME header is the message's header.
          const auto offset = message->value("offset", int64_t{-1});
          if (offset < 0 || static_cast<uint64_t>(offset) > target.size()) return std::nullopt;
          const auto inner = target.substr(static_cast<std::size_t>(offset));
          out = std::string(inner.substr(0, header_end(inner)));
        } else {
          const json* parent = parent_of(structure, node);
          const auto& params = parent ? parent->value("params", json::object()) : json::object();
          const auto boundary = params.is_object() && params.value("boundary", json()).is_string() ? params["boundary"].get<std::string>() : "";
          const auto inside = first_offset(*node);
          const auto header = inside && *inside >= 0 ? mime_header(target, static_cast<std::size_t>(*inside), boundary) : std::nullopt;
          if (!header) return std::nullopt;
          out = std::string(*header);
        }
      } else {
        // HEADER, TEXT and HEADER.FIELDS name parts of an attached message/rfc822 only.
        if (!node->contains("envelope") || !node->contains("offset")) return std::nullopt;
        const auto offset = node->value("offset", int64_t{0});
        const auto size = node->value("size", int64_t{0});
        if (offset < 0 || size < 0 || static_cast<uint64_t>(offset + size) > target.size()) return std::nullopt;
        const auto inner = target.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(size));
        if (suffix == "HEADER") out = std::string(inner.substr(0, header_end(inner)));
        else if (suffix == "TEXT") out = std::string(inner.substr(header_end(inner)));
        else out = header_fields(inner.substr(0, header_end(inner)), item.fields, suffix == "HEADER.FIELDS");
      }
    } else if (spec == "1" && !multipart) {
      out = std::string(target.substr(header_end(target)));
    } else {
      const json* node = structure.is_object() ? find_part(structure, spec) : nullptr;
      if (!node || !node->contains("offset")) return std::nullopt;
      const auto offset = node->value("offset", int64_t{0});
      const auto size = node->value("size", int64_t{0});
      if (offset < 0 || static_cast<uint64_t>(offset + size) > target.size()) return std::nullopt;
      out = std::string(target.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(size)));
    }
  }
  if (item.partial) {
    const auto [offset, length] = *item.partial;
    out = offset >= out.size() ? std::string() : out.substr(offset, length);
  }
  return out;
}

std::string envelope_text(const std::string& envelope_json) {
  const json e = json::parse(envelope_json, nullptr, false);
  if (!e.is_object()) return "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
  return "(" + nstring(e.value("date", json())) + " " + nstring(e.value("subject", json())) + " " +
         addresses(e.value("from", json())) + " " + addresses(e.value("sender", json())) + " " +
         addresses(e.value("reply_to", json())) + " " + addresses(e.value("to", json())) + " " +
         addresses(e.value("cc", json())) + " " + addresses(e.value("bcc", json())) + " " +
         nstring(e.value("in_reply_to", json())) + " " + nstring(e.value("message_id", json())) + ")";
}

std::string bodystructure_text(const std::string& body_structure_json, bool extended) {
  const json b = json::parse(body_structure_json, nullptr, false);
  if (!b.is_object() || b.empty())
    return extended ? "(\"text\" \"plain\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)"
                    : "(\"text\" \"plain\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)";
  return structure(b, extended);
}

std::string internal_date_text(int64_t t) {
  const time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char out[40];
  std::snprintf(out, sizeof out, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  return out;
}

std::optional<int64_t> parse_imap_date(std::string_view text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  int day = 0, year = 0;
  char month[4] = {};
  if (std::sscanf(std::string(text).c_str(), "%2d-%3c-%4d", &day, month, &year) != 3) return std::nullopt;
  int m = -1;
  for (int i = 0; i < 12; ++i)
    if (ascii_lower(month) == ascii_lower(kMonths[i])) m = i;
  if (m < 0 || day < 1 || day > 31 || year < 1900) return std::nullopt;
  struct tm tm {};
  tm.tm_mday = day;
  tm.tm_mon = m;
  tm.tm_year = year - 1900;
  return static_cast<int64_t>(timegm(&tm));
}

std::optional<int64_t> parse_imap_date_time(std::string_view text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  int day = 0, year = 0, h = 0, mi = 0, s = 0;
  char month[4] = {};
  char sign = '+';
  int zone = 0;
  if (std::sscanf(std::string(text).c_str(), "%2d-%3c-%4d %2d:%2d:%2d %c%4d", &day, month, &year, &h, &mi, &s, &sign, &zone) != 8)
    return std::nullopt;
  const auto date = parse_imap_date(std::to_string(day) + "-" + std::string(month, 3) + "-" + std::to_string(year));
  if (!date || h > 23 || mi > 59 || s > 60) return std::nullopt;
  const int offset = (zone / 100) * 3600 + (zone % 100) * 60;
  return *date + h * 3600 + mi * 60 + s - (sign == '-' ? -offset : offset);
}

}  // namespace coop::mail::imap
