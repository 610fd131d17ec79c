// IMAP command gathering and tokens.
#include "workers/mail/imap_parser.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/error.h"
#include "common/mail/mailbox_formats.h"
#include "common/text.h"

namespace coop::mail::imap {

namespace {

// RFC 9051 9: atom-specials are ( ) { SP CTL % * " \ ]
bool atom_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x1F || u == 0x7F || u >= 0x80) return false;
  return c != '(' && c != ')' && c != '{' && c != ' ' && c != '%' && c != '*' && c != '"' && c != '\\' && c != ']';
}

bool astring_char(char c) { return atom_char(c) || c == ']'; }
bool list_char(char c) { return atom_char(c) || c == '%' || c == '*' || c == ']'; }

// "{123}", "{123+}", "~{123}" at the end of a line (RFC 9051 4.3, RFC 7888, RFC 3516).
struct LiteralMarker {
  std::size_t size = 0;
  bool sync = true;
  std::size_t starts = 0;  // where the marker begins in the line
};

std::optional<LiteralMarker> literal_marker(const std::string& line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  const auto open = line.rfind('{');
  if (open == std::string::npos) return std::nullopt;
  std::string inside = line.substr(open + 1, line.size() - open - 2);
  LiteralMarker m;
  if (!inside.empty() && inside.back() == '+') {
    m.sync = false;
    inside.pop_back();
  }
  if (inside.empty() || inside.size() > 12 || !std::all_of(inside.begin(), inside.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  m.size = std::stoull(inside);
  m.starts = open > 0 && line[open - 1] == '~' ? open - 1 : open;
  return m;
}

}  // namespace

std::string tag_of(const RawCommand& command) {
  if (command.lines.empty()) return "*";
  const std::string& line = command.lines.front();
  const auto end = line.find(' ');
  const std::string tag = line.substr(0, end);
  if (tag.empty() || tag.size() > 64) return "*";
  for (char c : tag)
    if (!astring_char(c) || c == '+') return "*";
  return tag;
}

CommandReader::Status CommandReader::next() {
  for (;;) {
    if (in_literal_) {
      const std::size_t take = std::min(literal_left_, in_.size());
      command_.literals.back().append(in_, 0, take);
      in_.erase(0, take);
      literal_left_ -= take;
      if (literal_left_ > 0) return Status::need_more;
      in_literal_ = false;
    }
    const auto eol = in_.find('\n');
    if (discarding_line_) {
      if (eol == std::string::npos) {
        in_.clear();
        return Status::need_more;
      }
      in_.erase(0, eol + 1);
      discarding_line_ = false;
      continue;
    }
    if (eol == std::string::npos) {
      if (in_.size() <= limits_.max_line) return Status::need_more;
      // RFC 9051 2.2.2: a command this long gets BAD; the rest of the line is skipped.
      RawCommand partial = std::exchange(command_, {});
      if (partial.lines.empty()) partial.lines.push_back(in_.substr(0, 80));
      reply_ = tag_of(partial) + " BAD [TOOBIG] command line too long";
      command_bytes_ = 0;
      in_.clear();
      discarding_line_ = true;
      return Status::refused;
    }
    std::string line = in_.substr(0, eol);
    in_.erase(0, eol + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    command_bytes_ += line.size() + 2;
    const auto marker = literal_marker(line);
    command_.lines.push_back(std::move(line));
    if (!marker) {
      command_bytes_ = 0;
      return Status::command;
    }
    command_.literals.emplace_back();
    if (marker->size > limits_.max_literal || command_bytes_ + marker->size > limits_.max_command) {
      const std::string tag = tag_of(command_);
      command_ = {};
      command_bytes_ = 0;
      if (marker->sync) {
        // The client sends nothing before our "+": refusing costs it nothing (RFC 9051 4.3).
        reply_ = tag + " NO [TOOBIG] literal of " + std::to_string(marker->size) + " bytes is over the limit of " +
                 std::to_string(limits_.max_literal);
        return Status::refused;
      }
      // RFC 7888 4: the bytes of a non-synchronizing literal are on their way; end it here.
      reply_ = "literal of " + std::to_string(marker->size) + " bytes is over the limit";
      return Status::fatal;
    }
    command_bytes_ += marker->size;
    literal_left_ = marker->size;
    in_literal_ = true;
    if (marker->sync) return Status::need_continuation;
  }
}

const std::string* Cursor::line() const { return line_ < command_.lines.size() ? &command_.lines[line_] : nullptr; }

char Cursor::current() const {
  const auto* l = line();
  return l && at_ < l->size() ? (*l)[at_] : '\0';
}

bool Cursor::at_end() const {
  const auto* l = line();
  return !l || (at_ >= l->size() && line_ + 1 >= command_.lines.size());
}

bool Cursor::peek(char c) const {
  const auto* l = line();
  return l && at_ < l->size() && (*l)[at_] == c;
}

bool Cursor::take(char c) {
  if (!peek(c)) return false;
  ++at_;
  return true;
}

bool Cursor::space() { return take(' '); }

std::optional<std::string> Cursor::tag() {
  std::string out;
  while (const char c = current()) {
    if (!astring_char(c) || c == '+') break;
    out += c;
    ++at_;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::optional<std::string> Cursor::atom() {
  std::string out;
  while (const char c = current()) {
    if (!atom_char(c)) break;
    out += c;
    ++at_;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

bool Cursor::next_literal(std::string& out) {
  // The marker ends this line; the literal is the one announced by it.
  const auto* l = line();
  if (!l || line_ >= command_.literals.size()) return false;
  const auto marker = literal_marker(*l);
  if (!marker || marker->starts != at_) return false;
  out = command_.literals[line_];
  ++line_;
  at_ = 0;
  return true;
}

std::optional<std::string> Cursor::string() {
  if (take('"')) {
    std::string out;
    for (;;) {
      const char c = current();
      if (c == '\0' || c == '\r' || c == '\n') return std::nullopt;
      ++at_;
      if (c == '"') break;
      if (c == '\\') {
        const char escaped = current();
        if (escaped != '"' && escaped != '\\') return std::nullopt;
        out += escaped;
        ++at_;
        continue;
      }
      out += c;
    }
    if (!is_valid_utf8(out)) return std::nullopt;
    return out;
  }
  if (peek('{') || peek('~')) {
    std::string out;
    if (!next_literal(out)) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::optional<std::string> Cursor::astring() {
  // "~{" starts a literal8; "~foo" is a pattern (list-char includes ATOM-CHAR '~').
  if (peek('"') || peek('{') || (peek('~') && line() && at_ + 1 < line()->size() && (*line())[at_ + 1] == '{')) return string();
  std::string out;
  while (const char c = current()) {
    if (!astring_char(c)) break;
    out += c;
    ++at_;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::optional<std::string> Cursor::nstring() {
  const auto* l = line();
  if (l && l->compare(at_, 3, "NIL") == 0 && !astring_char(at_ + 3 < l->size() ? (*l)[at_ + 3] : ' ')) {
    at_ += 3;
    return std::string();
  }
  return string();
}

std::optional<uint32_t> Cursor::number() {
  uint64_t n = 0;
  std::size_t digits = 0;
  while (const char c = current()) {
    if (c < '0' || c > '9') break;
    n = n * 10 + static_cast<uint64_t>(c - '0');
    if (n > 0xFFFFFFFFull) return std::nullopt;
    ++at_;
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return static_cast<uint32_t>(n);
}

std::optional<std::string> Cursor::mailbox() {
  auto name = astring();
  if (!name) return std::nullopt;
  return normalize_mailbox(std::move(*name));
}

std::optional<std::string> Cursor::list_mailbox() {
  // "~{" starts a literal8; "~foo" is a pattern (list-char includes ATOM-CHAR '~').
  if (peek('"') || peek('{') || (peek('~') && line() && at_ + 1 < line()->size() && (*line())[at_ + 1] == '{')) return string();
  std::string out;
  while (const char c = current()) {
    if (!list_char(c)) break;
    out += c;
    ++at_;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::optional<std::string> Cursor::sequence_set() {
  std::string out;
  while (const char c = current()) {
    if (!((c >= '0' && c <= '9') || c == ':' || c == ',' || c == '*' || c == '$')) break;
    out += c;
    ++at_;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string Cursor::rest_of_line() {
  const auto* l = line();
  if (!l) return {};
  std::string out = l->substr(std::min(at_, l->size()));
  at_ = l->size();
  return out;
}

std::string Cursor::rest_with_literals() {
  std::string out;
  for (;;) {
    const auto* l = line();
    if (!l) return out;
    const auto marker = line_ < command_.literals.size() ? literal_marker(*l) : std::nullopt;
    if (!marker) return out + rest_of_line();
    out += l->substr(std::min(at_, marker->starts), marker->starts - std::min(at_, marker->starts));
    out += '"';
    for (char c : command_.literals[line_]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
    ++line_;
    at_ = 0;
  }
}

bool SequenceSet::contains(uint32_t n) const {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), n, [](uint32_t v, const auto& r) { return v < r.first; });
  return it != ranges.begin() && n <= std::prev(it)->second;
}

std::optional<SequenceSet> parse_sequence_set(std::string_view text, uint32_t max) {
  SequenceSet set;
  if (text.empty()) return std::nullopt;
  std::size_t at = 0;
  auto number = [&](uint32_t& out) {
    if (at < text.size() && text[at] == '*') {
      ++at;
      out = max;
      return true;
    }
    uint64_t n = 0;
    const std::size_t start = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      n = n * 10 + static_cast<uint64_t>(text[at] - '0');
      if (n > 0xFFFFFFFFull) return false;
      ++at;
    }
    if (at == start || n == 0) return false;  // seq-number is nz-number
    out = static_cast<uint32_t>(n);
    return true;
  };
  for (;;) {
    uint32_t low = 0, high = 0;
    if (!number(low)) return std::nullopt;
    high = low;
    if (at < text.size() && text[at] == ':') {
      ++at;
      if (!number(high)) return std::nullopt;
    }
    if (low > high) std::swap(low, high);
    set.ranges.emplace_back(low, high);
    if (at == text.size()) break;
    if (text[at] != ',') return std::nullopt;
    ++at;
  }
  std::sort(set.ranges.begin(), set.ranges.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (const auto& r : set.ranges) {
    if (!merged.empty() && r.first <= merged.back().second + 1ull) merged.back().second = std::max(merged.back().second, r.second);
    else merged.push_back(r);
  }
  set.ranges = std::move(merged);
  return set;
}

std::string response_code(std::string_view error_code) {
  static const std::pair<std::string_view, std::string_view> kCodes[] = {
      {errc::kNoSuchMailbox, "NONEXISTENT"},      {errc::kExists, "ALREADYEXISTS"},
      {errc::kHasChildren, "INUSE"},              {errc::kQuotaExceeded, "OVERQUOTA"},
      {errc::kTooManyKeywords, "LIMIT"},          {errc::kThrottled, "UNAVAILABLE"},
      {errc::kNotRunning, "UNAVAILABLE"},         {errc::kBadCredentials, "AUTHENTICATIONFAILED"},
      {errc::kMemberSuspended, "AUTHENTICATIONFAILED"}, {errc::kMemberRemoved, "AUTHENTICATIONFAILED"},
      {errc::kOutOfScope, "AUTHENTICATIONFAILED"},
  };
  for (const auto& [code, response] : kCodes)
    if (code == error_code) return std::string(response);
  return "CANNOT";
}

std::optional<unsigned> system_flag_bit(std::string_view name) {
  static constexpr std::pair<std::string_view, unsigned> kFlags[] = {
      {"\\seen", kSeen}, {"\\answered", kAnswered}, {"\\flagged", kFlagged}, {"\\deleted", kDeleted}, {"\\draft", kDraft}};
  const auto lower = ascii_lower(name);
  for (const auto& [flag, bit] : kFlags)
    if (lower == flag) return bit;
  return std::nullopt;
}

FlagList parse_flag_list(std::string_view text) {
  FlagList list;
  if (!text.empty() && text.front() == '(') {
    if (text.back() != ')' || text.size() < 2) {
      list.ok = false;
      list.bad_word = std::string(text);
      return list;
    }
    text = text.substr(1, text.size() - 2);
  }
  std::size_t at = 0;
  while (at < text.size()) {
    const auto end = std::min(text.find(' ', at), text.size());
    const auto word = text.substr(at, end - at);
    if (const auto bit = system_flag_bit(word)) {
      list.system |= *bit;
    } else if (valid_keyword(word)) {
      list.keywords.emplace_back(word);
    } else {
      list.ok = false;
      list.bad_word = std::string(word);
      return list;
    }
    at = end + 1;
  }
  return list;
}

std::optional<SaslPlain> decode_sasl_plain(std::string_view base64) {
  std::string decoded(base64.size(), '\0');
  std::size_t length = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(), base64.data(), base64.size(),
                        nullptr, &length, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return std::nullopt;
  decoded.resize(length);
  const auto first = decoded.find('\0');
  const auto second = first == std::string::npos ? std::string::npos : decoded.find('\0', first + 1);
  if (second == std::string::npos) return std::nullopt;
  return SaslPlain{decoded.substr(0, first), decoded.substr(first + 1, second - first - 1), decoded.substr(second + 1)};
}

bool valid_keyword(std::string_view word) {
  if (word.empty() || word.size() > 100 || word.front() == '\\') return false;
  for (unsigned char c : word)
    if (c <= 0x20 || c >= 0x7f || std::strchr("(){%*\"\\]", c)) return false;
  return true;
}

std::string valid_keywords(std::string_view list) {
  std::string out;
  std::size_t at = 0;
  while (at < list.size()) {
    auto end = list.find_first_of(" ,\t", at);
    if (end == std::string_view::npos) end = list.size();
    const auto word = list.substr(at, end - at);
    const std::string padded = " " + out + " ";
    if (valid_keyword(word) && padded.find(" " + std::string(word) + " ") == std::string::npos)
      out += (out.empty() ? "" : " ") + std::string(word);
    at = end + 1;
  }
  return out;
}

std::string normalize_mailbox(std::string name) {
  if (ascii_lower(name) == "inbox") return "INBOX";
  return name;
}

namespace {

// RFC 3501 5.1.3: base64 with "," for "/", no padding.
constexpr char kUtf7Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

// The code points of valid UTF-8 (the store keeps names as UTF-8), nullopt when it is not.
std::optional<std::vector<uint32_t>> code_points(std::string_view utf8) {
  if (!is_valid_utf8(utf8)) return std::nullopt;
  std::vector<uint32_t> out;
  for (std::size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    const int extra = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    uint32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1f) : extra == 2 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3f);
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

}  // namespace

std::string to_modified_utf7(std::string_view utf8) {
  const auto points = code_points(utf8);
  if (!points) return std::string(utf8);  // not UTF-8: nothing better to send
  std::string out;
  std::vector<uint16_t> run;  // UTF-16 of the non-printable characters in a row
  auto flush = [&] {
    if (run.empty()) return;
    out += '&';
    uint32_t bits = 0;
    int count = 0;
    for (const uint16_t unit : run) {
      bits = (bits << 16) | unit;
      count += 16;
      while (count >= 6) {
        count -= 6;
        out += kUtf7Alphabet[(bits >> count) & 0x3f];
      }
    }
    if (count > 0) out += kUtf7Alphabet[(bits << (6 - count)) & 0x3f];
    out += '-';
    run.clear();
  };
  for (const uint32_t cp : *points) {
    if (cp >= 0x20 && cp <= 0x7e) {
      flush();
      out += cp == '&' ? std::string("&-") : std::string(1, static_cast<char>(cp));
    } else if (cp >= 0x10000) {
      run.push_back(static_cast<uint16_t>(0xd800 + ((cp - 0x10000) >> 10)));
      run.push_back(static_cast<uint16_t>(0xdc00 + ((cp - 0x10000) & 0x3ff)));
    } else {
      run.push_back(static_cast<uint16_t>(cp));
    }
  }
  flush();
  return out;
}

std::optional<std::string> from_modified_utf7(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c > 0x7e) return std::nullopt;
    if (c != '&') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    const auto end = text.find('-', i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == i + 1) {
      out += '&';
      i = end + 1;
      continue;
    }
    uint32_t bits = 0;
    int count = 0;
    std::vector<uint16_t> units;
    for (std::size_t k = i + 1; k < end; ++k) {
      const char* at = std::strchr(kUtf7Alphabet, text[k]);
      if (!at || !*at) return std::nullopt;
      bits = (bits << 6) | static_cast<uint32_t>(at - kUtf7Alphabet);
      count += 6;
      if (count >= 16) {
        count -= 16;
        units.push_back(static_cast<uint16_t>((bits >> count) & 0xffff));
      }
    }
    if (count >= 6 || (bits & ((1u << count) - 1)) != 0) return std::nullopt;  // leftover bits must be zero padding
    for (std::size_t u = 0; u < units.size(); ++u) {
      const uint32_t unit = units[u];
      if (unit >= 0xd800 && unit < 0xdc00) {
        if (u + 1 >= units.size() || units[u + 1] < 0xdc00 || units[u + 1] >= 0xe000) return std::nullopt;
        append_utf8(out, 0x10000 + ((unit - 0xd800) << 10) + (units[++u] - 0xdc00));
      } else if (unit >= 0xdc00 && unit < 0xe000) {
        return std::nullopt;
      } else if (unit >= 0x20 && unit <= 0x7e) {
        return std::nullopt;  // printable ASCII must be itself (RFC 3501 5.1.3)
      } else {
        append_utf8(out, unit);
      }
    }
    i = end + 1;
  }
  return out;
}

std::string quote(std::string_view text) {
  bool literal = text.size() > 1000;
  for (unsigned char c : text)
    if (c == '\r' || c == '\n' || c == 0 || c >= 0x80) literal = true;
  if (literal) return "{" + std::to_string(text.size()) + "}\r\n" + std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace coop::mail::imap
