// vCard content lines (RFC 6350 3.2-3.4) read and written by hand, for CardDAV address objects.
#include "workers/dav/vcard_data.h"

#include <algorithm>

#include "common/error.h"
#include "common/text.h"

namespace coop::dav {
namespace {

// RFC 6350 3.2: lines SHOULD NOT be longer than 75 octets, excluding the line break.
constexpr std::size_t kFoldOctets = 75;
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

struct ContentLine {
  std::string name;   // upper case, group removed
  std::string value;  // unescaped
};

[[noreturn]] void invalid(const std::string& why) { throw Error("valid-address-data", why, 403); }

std::string excerpt(std::string_view line) {
  return std::string(line.substr(0, 60)) + (line.size() > 60 ? "..." : "");
}

std::string ascii_upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

// RFC 6350 3.2: a line break followed by one space or tab continues the logical line; both
// CRLF and bare LF are accepted as line breaks.
std::vector<std::string> unfold(std::string_view text) {
  if (text.substr(0, kUtf8Bom.size()) == kUtf8Bom) text.remove_prefix(kUtf8Bom.size());
  std::vector<std::string> lines;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    auto line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t') && !lines.empty()) {
      lines.back().append(line.substr(1));
    } else {
      lines.emplace_back(line);
    }
  }
  return lines;
}

// RFC 6350 3.4: \n (or \N) is a line break, \, \; and \\ stand for themselves. Other escapes,
// which some vCard 3.0 writers produce ("\:"), lose the backslash.
std::string unescape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '\\' || i + 1 == value.size()) {
      out += value[i];
      continue;
    }
    const char next = value[++i];
    out += (next == 'n' || next == 'N') ? '\n' : next;
  }
  return out;
}

std::string escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    switch (value[i]) {
      case '\\': out += "\\\\"; break;
      case ',': out += "\\,"; break;
      case ';': out += "\\;"; break;
      case '\n': out += "\\n"; break;
      case '\r':
        if (i + 1 < value.size() && value[i + 1] == '\n') ++i;
        out += "\\n";
        break;
      default: out += value[i];
    }
  }
  return out;
}

// RFC 6350 3.3: contentline = [group "."] name *(";" param) ":" value. Parameters are skipped,
// honouring quoted parameter values that may contain ':' or ';'.
ContentLine parse_content_line(std::string_view line) {
  std::size_t end_of_name = 0;
  while (end_of_name < line.size() && (is_name_char(line[end_of_name]) || line[end_of_name] == '.')) ++end_of_name;
  const auto qualified = line.substr(0, end_of_name);
  const auto dot = qualified.rfind('.');
  const auto name = dot == std::string_view::npos ? qualified : qualified.substr(dot + 1);
  if (name.empty() || dot == 0 || end_of_name == line.size() || (line[end_of_name] != ':' && line[end_of_name] != ';'))
    invalid("malformed content line: " + excerpt(line));

  std::size_t colon = end_of_name;
  for (bool quoted = false; colon < line.size(); ++colon) {
    if (line[colon] == '"') quoted = !quoted;
    else if (line[colon] == ':' && !quoted) break;
  }
  if (colon == line.size()) invalid("content line without a value: " + excerpt(line));
  return {ascii_upper(name), unescape(line.substr(colon + 1))};
}

bool is_begin_vcard(const ContentLine& line) { return line.name == "BEGIN" && coop::ascii_lower(line.value) == "vcard"; }
bool is_end_vcard(const ContentLine& line) { return line.name == "END" && coop::ascii_lower(line.value) == "vcard"; }

// The properties between BEGIN:VCARD and END:VCARD, checked as parse_vcard promises.
VCard build_card(std::vector<ContentLine> lines) {
  VCard card;
  bool has_version = false, has_uid = false, has_fn = false;
  for (auto& line : lines) {
    if (line.name == "BEGIN" || line.name == "END") invalid(line.name + ":" + excerpt(line.value) + " inside a vCard");
    // RFC 6350 6.7.9 and 6.7.6: exactly one VERSION, at most one UID.
    if (line.name == "VERSION") {
      if (has_version) invalid("more than one VERSION");
      has_version = true;
      card.version = line.value;
    } else if (line.name == "UID") {
      if (has_uid) invalid("more than one UID");
      has_uid = true;
      card.uid = line.value;
    } else if (line.name == "FN" && !has_fn) {
      has_fn = true;
      card.fn = line.value;
    }
    card.properties.emplace_back(std::move(line.name), std::move(line.value));
  }
  if (!has_version) invalid("vCard has no VERSION");
  if (card.version != "3.0" && card.version != "4.0") invalid("unsupported vCard VERSION " + excerpt(card.version));
  // RFC 6350 6.2.1 requires FN in 4.0; RFC 2426 does in 3.0 too, but 3.0 writers omit it.
  if (!has_fn && card.version == "4.0") invalid("vCard has no FN");
  // RFC 6352 5.1: the server may require a UID; coop does, it names the resource.
  if (card.uid.empty()) invalid("vCard has no UID");
  return card;
}

// Walks a whole .vcf: blank lines between cards, every card from BEGIN:VCARD to END:VCARD.
std::vector<VCard> read_cards(std::string_view vcf) {
  std::vector<VCard> cards;
  std::vector<ContentLine> body;
  bool inside = false;
  for (const auto& text : unfold(vcf)) {
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    auto line = parse_content_line(text);
    if (!inside) {
      if (!is_begin_vcard(line)) invalid("expected BEGIN:VCARD, got " + excerpt(text));
      inside = true;
    } else if (is_end_vcard(line)) {
      cards.push_back(build_card(std::move(body)));
      body.clear();
      inside = false;
    } else {
      body.push_back(std::move(line));
    }
  }
  if (inside) invalid("vCard without END:VCARD");
  return cards;
}

// RFC 6350 3.2: break after at most 75 octets (74 after the leading space of a continuation),
// never inside a multi-octet UTF-8 character.
void append_folded(std::string& out, std::string_view line) {
  std::size_t limit = kFoldOctets;
  while (line.size() > limit) {
    std::size_t cut = limit;
    while (cut > 1 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    out.append(line.substr(0, cut));
    out += "\r\n ";
    line.remove_prefix(cut);
    limit = kFoldOctets - 1;
  }
  out.append(line);
  out += "\r\n";
}

bool matches(std::string_view value, std::string_view text, std::string_view match_type) {
  if (match_type == "equals") return value == text;
  if (match_type == "starts-with") return value.substr(0, text.size()) == text;
  if (match_type == "ends-with") return value.size() >= text.size() && value.substr(value.size() - text.size()) == text;
  return value.find(text) != std::string_view::npos;
}

}  // namespace

VCard parse_vcard(std::string_view vcf) {
  auto cards = read_cards(vcf);
  if (cards.empty()) invalid("no vCard found");
  if (cards.size() > 1) invalid("an address object resource holds exactly one vCard");
  return std::move(cards.front());
}

std::vector<VCard> split_vcards(std::string_view vcf) { return read_cards(vcf); }

bool text_match(const VCard& card, const std::string& property, const std::string& text,
                const std::string& match_type, bool negate) {
  const std::string type = match_type.empty() ? "contains" : match_type;
  if (type != "equals" && type != "contains" && type != "starts-with" && type != "ends-with")
    throw Error("supported-filter", "unsupported match-type " + excerpt(type), 403);
  const std::string name = ascii_upper(property);
  const std::string folded_text = coop::ascii_lower(text);
  for (const auto& [candidate, value] : card.properties) {
    if (candidate == name && matches(coop::ascii_lower(value), folded_text, type) != negate) return true;
  }
  return false;
}

std::string make_vcard(const std::string& uid, const std::string& fn, const std::vector<std::string>& emails,
                       const std::vector<std::pair<std::string, std::string>>& extra) {
  std::string out = "BEGIN:VCARD\r\nVERSION:4.0\r\n";
  append_folded(out, "UID:" + escape(uid));
  const std::string& display = !fn.empty() ? fn : !emails.empty() ? emails.front() : uid;
  append_folded(out, "FN:" + escape(display));
  for (const auto& email : emails) append_folded(out, "EMAIL:" + escape(email));
  for (const auto& [name, value] : extra) {
    const std::string upper = ascii_upper(name);
    const bool well_formed = !name.empty() && std::all_of(name.begin(), name.end(), is_name_char);
    if (!well_formed || upper == "BEGIN" || upper == "END" || upper == "VERSION" || upper == "UID")
      throw Error(errc::kBadVcardProperty, "not an extra vCard property name: " + excerpt(name), 400);
    append_folded(out, upper + ":" + escape(value));
  }
  out += "END:VCARD\r\n";
  return out;
}

}  // namespace coop::dav
