// RFC 5256 SORT and THREAD: the keys of a message (base subject, sent date, addresses,
// references) and the two THREAD algorithms over them. Pure: the session gathers the keys.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail::imap {

struct SortKeys {
  std::string subject;  // base subject (2.1)
  bool reply = false;   // the subject said Re:, Fwd:, (fwd) or [Fwd: ...] (THREAD step 5)
  int64_t date = 0;     // sent date, else arrival
  std::string from, to, cc;
  // THREAD=REFERENCES: the Message-ID, and the References (else In-Reply-To's first id).
  std::string message_id;
  std::vector<std::string> references;
};


// RFC 4790 9.2 i;ascii-casemap, the order of SORT's text keys (RFC 5256 3): a-z read as
// A-Z, then octet by octet. Lower-cased keys compare as the originals would ('_' before 'a'
// but after 'A'). Negative, zero or positive, as strcmp.
int casemap_compare(std::string_view a, std::string_view b);

// RFC 5256 2.1: the base subject, without Re:/Fwd:/[blob] prefixes, (fwd) trailers and
// [Fwd: ...] wrappers, lower-cased; `reply` tells whether a reply or forward marker went.
std::string base_subject(std::string subject, bool* reply = nullptr);

// RFC 5322 3.3 date-time, loosely: "Tue, 1 Jul 2003 10:52:37 +0200" as unix seconds.
std::optional<int64_t> sent_date(const std::string& text);
// The day a Date: value names, as written (time and zone disregarded, RFC 9051 SENTON):
// that day's midnight UTC; nullopt when it is not a date.
std::optional<int64_t> sent_day(const std::string& text);

// The <ids> in a Message-ID, References or In-Reply-To value, without the brackets.
std::vector<std::string> message_ids(const std::string& text);

// THREAD=ORDEREDSUBJECT and THREAD=REFERENCES over these messages (in sequence order): the
// threads as the THREAD response lists them, "(1 2)(3 (4)(5))", name(i) standing for keys[i].
std::string thread_ordered_subject(const std::vector<SortKeys>& keys, const std::function<std::string(std::size_t)>& name);
std::string thread_references(const std::vector<SortKeys>& keys, const std::function<std::string(std::size_t)>& name);

}  // namespace coop::mail::imap
