// IMAP SEARCH criteria (RFC 9051 6.4.4, RFC 7162 3.1.5 MODSEQ) parsed without a session into
// a tree the session evaluates: pure, so a fuzzer drives it, and bounded in depth, so a line
// of "NOT NOT NOT ..." or "((((" cannot exhaust the stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail::imap {

// Criteria as words: quoted strings unquoted (an empty one kept), "(" and ")" on their own.
struct SearchWords {
  std::vector<std::string> items;
  std::size_t at = 0;
  bool done() const { return at >= items.size(); }
  // The next word, or "" past the end.
  std::string next() { return at < items.size() ? items[at++] : std::string(); }
  const std::string& peek() const { return items[at]; }
};
SearchWords search_words(std::string_view text);

// \Recent (RFC 3501 2.3.2) as a flag bit beside the stored ones (mailbox_formats.h): a
// session's own knowledge, never stored. SEARCH RECENT, NEW and OLD test it.
inline constexpr unsigned kRecent = 32;

// Groups, NOT and OR nest at most this deep.
inline constexpr int kMaxSearchDepth = 64;

struct SearchKey {
  enum class Kind {
    all, none, and_, not_, or_,      // ALL, nothing, "( ... )" and NEW, NOT, OR
    flag, keyword,                   // SEEN/UNSEEN..., RECENT/OLD, KEYWORD/UNKEYWORD
    modseq, larger, smaller,         // number
    since, before, on,               // number: the day's midnight, UTC (the internal date)
    older, younger,                  // number: seconds before now (RFC 5032 WITHIN)
    saved_since, saved_before, saved_on,  // number: the day, against the save date (RFC 8514)
    sent_since, sent_before, sent_on,  // number: the same, against the Date: header's day
    uid_set, sequence_set,           // text: the set as given
    subject, body, text, header,     // text: the needle; field: the header name, lowercase
  };
  Kind kind = Kind::all;
  unsigned flag = 0;  // the stored bit or kRecent, for flag
  bool set = true;    // flag and keyword: SEEN (true) or UNSEEN (false)
  int64_t number = 0;
  std::string text, field;
  std::vector<SearchKey> children;  // and_ (any number), not_ (one), or_ (two)
};

// One search key from w (RFC 9051 9 search-key); nullopt on a syntax error or nesting deeper
// than kMaxSearchDepth, with w's position then unspecified.
std::optional<SearchKey> parse_search_key(SearchWords& w, int depth = 0);

}  // namespace coop::mail::imap
