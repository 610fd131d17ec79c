// SEARCH criteria into a tree: RFC 9051 6.4.4's keys, one word or a few at a time.
#include "workers/mail/imap_search.h"

#include <cctype>
#include <string>

#include "common/mail/mailbox_formats.h"
#include "common/text.h"
#include "workers/mail/imap_fetch.h"

namespace coop::mail::imap {

namespace {

std::string upper(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// std::stoll's reading (leading digits, sign allowed), nullopt when there are none.
std::optional<int64_t> number(const std::string& text) {
  try {
    return std::stoll(text);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

SearchWords search_words(std::string_view text) {
  SearchWords w;
  std::string current;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '\\' && i + 1 < text.size()) current += text[++i];
      else if (ch == '"') quoted = false;
      else current += ch;
      continue;
    }
    if (ch == '"') {
      quoted = true;
      current += '\x01';  // marks a quoted word, even an empty one
      continue;
    }
    if (ch == ' ' || ch == '(' || ch == ')') {
      if (!current.empty()) w.items.push_back(current);
      current.clear();
      if (ch != ' ') w.items.emplace_back(1, ch);
      continue;
    }
    current += ch;
  }
  if (!current.empty()) w.items.push_back(current);
  for (auto& item : w.items)
    if (!item.empty() && item.front() == '\x01') item.erase(0, 1);
  return w;
}

std::optional<SearchKey> parse_search_key(SearchWords& w, int depth) {
  if (depth > kMaxSearchDepth) return std::nullopt;
  using Kind = SearchKey::Kind;
  const std::string raw = w.next();
  const std::string key = upper(raw);
  SearchKey k;
  auto flag = [&k](unsigned bit, bool set) {
    k.kind = Kind::flag;
    k.flag = bit;
    k.set = set;
    return k;
  };
  if (key == "(") {
    k.kind = Kind::and_;
    while (!w.done() && w.peek() != ")") {
      auto child = parse_search_key(w, depth + 1);
      if (!child) return std::nullopt;
      k.children.push_back(std::move(*child));
    }
    if (w.next() != ")") return std::nullopt;
    return k;
  }
  if (key == "ALL") return k;
  if (key == "RECENT" || key == "OLD") return flag(kRecent, key == "RECENT");
  if (key == "NEW") {  // RFC 3501 6.4.4: RECENT UNSEEN
    k.kind = Kind::and_;
    k.children.resize(2);
    for (auto& child : k.children) child.kind = Kind::flag;
    k.children[0].flag = kRecent;
    k.children[0].set = true;
    k.children[1].flag = kSeen;
    k.children[1].set = false;
    return k;
  }
  if (key == "SEEN" || key == "UNSEEN") return flag(kSeen, key == "SEEN");
  if (key == "FLAGGED" || key == "UNFLAGGED") return flag(kFlagged, key == "FLAGGED");
  if (key == "DELETED" || key == "UNDELETED") return flag(kDeleted, key == "DELETED");
  if (key == "ANSWERED" || key == "UNANSWERED") return flag(kAnswered, key == "ANSWERED");
  if (key == "DRAFT" || key == "UNDRAFT") return flag(kDraft, key == "DRAFT");
  if (key == "KEYWORD" || key == "UNKEYWORD") {
    k.kind = Kind::keyword;
    k.set = key == "KEYWORD";
    k.text = w.next();
    return k;
  }
  if (key == "NOT" || key == "OR") {
    k.kind = key == "NOT" ? Kind::not_ : Kind::or_;
    for (int i = key == "NOT" ? 1 : 2; i > 0; --i) {
      auto child = parse_search_key(w, depth + 1);
      if (!child) return std::nullopt;
      k.children.push_back(std::move(*child));
    }
    return k;
  }
  if (key == "MODSEQ") {
    // RFC 7162 3.1.5: MODSEQ [entry-name entry-type] mod-sequence-valzer
    std::string value = w.next();
    if (!value.empty() && value.front() == '/') {
      w.next();
      value = w.next();
    }
    const auto n = number(value);
    if (!n) return std::nullopt;
    k.kind = Kind::modseq;
    k.number = *n;
    return k;
  }
  if (key == "LARGER" || key == "SMALLER") {
    const auto n = number(w.next());
    if (!n) return std::nullopt;
    k.kind = key == "LARGER" ? Kind::larger : Kind::smaller;
    k.number = *n;
    return k;
  }
  if (key == "SINCE" || key == "BEFORE" || key == "ON") {
    const auto day = parse_imap_date(w.next());
    if (!day) return std::nullopt;
    k.kind = key == "SINCE" ? Kind::since : key == "BEFORE" ? Kind::before : Kind::on;
    k.number = *day;
    return k;
  }
  // RFC 9051 6.4.4 (and RFC 3501): the Date: header's day, disregarding time and zone.
  if (key == "SENTSINCE" || key == "SENTBEFORE" || key == "SENTON") {
    const auto day = parse_imap_date(w.next());
    if (!day) return std::nullopt;
    k.kind = key == "SENTSINCE" ? Kind::sent_since : key == "SENTBEFORE" ? Kind::sent_before : Kind::sent_on;
    k.number = *day;
    return k;
  }
  if (key == "SAVEDATESUPPORTED") return k;  // RFC 8514 4.3: every mailbox keeps save dates
  if (key == "SAVEDBEFORE" || key == "SAVEDON" || key == "SAVEDSINCE") {
    const auto day = parse_imap_date(w.next());
    if (!day) return std::nullopt;
    k.kind = key == "SAVEDBEFORE" ? Kind::saved_before : key == "SAVEDON" ? Kind::saved_on : Kind::saved_since;
    k.number = *day;
    return k;
  }
  if (key == "OLDER" || key == "YOUNGER") {  // RFC 5032: an interval in seconds, from now
    const std::string n = w.next();
    if (n.empty() || n.size() > 10 || n.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    k.kind = key == "OLDER" ? Kind::older : Kind::younger;
    k.number = std::stoll(n);
    return k;
  }
  if (key == "UID") {
    k.kind = Kind::uid_set;
    k.text = w.next();
    return k;
  }
  if (key == "SUBJECT" || key == "BODY" || key == "TEXT") {
    k.kind = key == "SUBJECT" ? Kind::subject : key == "BODY" ? Kind::body : Kind::text;
    k.text = ascii_lower(w.next());
    return k;
  }
  if (key == "FROM" || key == "TO" || key == "CC" || key == "BCC" || key == "HEADER") {
    k.kind = Kind::header;
    k.field = ascii_lower(key == "HEADER" ? w.next() : key);
    k.text = ascii_lower(w.next());
    return k;
  }
  if (raw.empty() || raw == ")") return std::nullopt;
  k.kind = Kind::sequence_set;
  k.text = raw;
  return k;
}

}  // namespace coop::mail::imap
