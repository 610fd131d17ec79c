// libFuzzer target: what SEARCH, SORT, THREAD and APPEND arguments reach through public code:
// literals folded into the criteria text, sequence sets, IMAP dates, and the RFC 5256 keys and
// THREAD algorithms. Each command after "tag SP name" is taken as one message's keys. Checked:
// literals come back byte for byte, a sequence set is sorted, merged and searched like a list,
// dates round-trip through INTERNALDATE, base subjects are final, and every THREAD response
// names each message exactly once with no empty "()"; STORE flag lists and AUTHENTICATE PLAIN
// responses (imap::parse_flag_list, imap::decode_sasl_plain) parse back to themselves.
// SEARCH criteria parse into trees (imap_search.h) that consume their words and stay within
// the depth limit.
#include <sodium.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "workers/mail/imap_fetch.h"
#include "workers/mail/imap_parser.h"
#include "workers/mail/imap_search.h"
#include "workers/mail/imap_thread.h"

using namespace coop::mail::imap;

namespace {

constexpr uint32_t kLargest = 1000;        // what "*" stands for
constexpr std::size_t kMaxMessages = 64;   // keys given to THREAD
constexpr int64_t kYear10000 = 253402300800;

// The quoted strings of text, unescaped, in order.
std::vector<std::string> quoted_strings(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '"') continue;
    std::string s;
    for (++i; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) ++i;
      s += text[i];
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Words as SEARCH reads them: split at spaces and parentheses, a quoted string one word.
std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::string word;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') quoted = false;
      else word += (c == '\\' && i + 1 < text.size()) ? text[++i] : c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ' ' || c == '(' || c == ')') {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

void check_sequence_set(const SequenceSet& set) {
  if (set.ranges.empty()) std::abort();
  std::vector<uint32_t> probes = {0, 1, kLargest, kLargest + 1, UINT32_MAX};
  for (std::size_t i = 0; i < set.ranges.size(); ++i) {
    const auto [low, high] = set.ranges[i];
    if (low == 0 || low > high) std::abort();
    // Sorted and merged: the next range starts past the gap after this one.
    if (i > 0 && uint64_t{low} <= uint64_t{set.ranges[i - 1].second} + 1) std::abort();
    probes.insert(probes.end(), {low - 1, low, high, high + 1});
  }
  for (const uint32_t n : probes) {
    const bool listed = std::any_of(set.ranges.begin(), set.ranges.end(),
                                    [n](const auto& r) { return r.first <= n && n <= r.second; });
    if (set.contains(n) != listed) std::abort();
  }
}

void check_word(const std::string& word) {
  if (const auto set = parse_sequence_set(word, kLargest)) check_sequence_set(*set);
  // SEARCH SINCE/BEFORE/ON and APPEND's date-time: what parses comes back from INTERNALDATE.
  if (const auto day = parse_imap_date(word))
    if (parse_imap_date(internal_date_text(*day).substr(1, 11)) != day) std::abort();
  if (const auto when = parse_imap_date_time(word); when && *when >= 0 && *when < kYear10000)
    if (parse_imap_date_time(internal_date_text(*when)) != when) std::abort();
}

// RFC 5256 2.1: the base subject is what no rule shortens any more.
void check_base_subject(const std::string& subject) {
  const auto once = base_subject(subject);
  bool reply = true;
  if (base_subject(once, &reply) != once || reply) std::abort();
}

// RFC 5256 4: every message once, parentheses balanced, no empty thread.
void check_thread_response(const std::string& line, std::size_t messages) {
  std::vector<int> seen(messages, 0);
  int depth = 0;
  for (std::size_t i = 0; i < line.size();) {
    const char c = line[i];
    if (c == '(') {
      if (i + 1 < line.size() && line[i + 1] == ')') std::abort();
      ++depth;
      ++i;
    } else if (c == ')') {
      if (--depth < 0) std::abort();
      ++i;
    } else if (c == ' ') {
      ++i;
    } else if (c >= '1' && c <= '9') {
      std::size_t n = 0;
      while (i < line.size() && line[i] >= '0' && line[i] <= '9' && n <= messages) n = n * 10 + (line[i++] - '0');
      if (n == 0 || n > messages || seen[n - 1]++) std::abort();
    } else {
      std::abort();
    }
  }
  if (depth != 0 || std::count(seen.begin(), seen.end(), 1) != static_cast<std::ptrdiff_t>(messages)) std::abort();
}

SortKeys keys_of(const std::string& criteria, std::size_t index) {
  SortKeys keys;
  keys.subject = base_subject(criteria, &keys.reply);
  keys.date = sent_date(criteria).value_or(static_cast<int64_t>(index));
  const auto ids = message_ids(criteria);
  if (!ids.empty()) {
    keys.message_id = ids.front();
    keys.references.assign(ids.begin() + 1, ids.end());
  }
  return keys;
}

// STORE flag lists: keywords are valid atoms, system flags known bits; written back, the
// list parses to the same thing. AUTHENTICATE PLAIN: what decodes re-encodes to itself.
void check_flags_and_sasl(const std::string& text) {
  const auto list = parse_flag_list(text);
  if (list.ok) {
    if (list.system & ~31u) std::abort();
    std::string again = "(";
    for (const char* flag : {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
      if (list.system & *system_flag_bit(flag)) again += (again.size() > 1 ? " " : "") + std::string(flag);
    for (const auto& k : list.keywords) {
      if (!valid_keyword(k)) std::abort();
      again += (again.size() > 1 ? " " : "") + k;
    }
    const auto reparsed = parse_flag_list(again + ")");
    if (!reparsed.ok || reparsed.system != list.system || reparsed.keywords != list.keywords) std::abort();
  }
  if (const auto plain = decode_sasl_plain(text)) {
    const std::string raw = plain->authzid + '\0' + plain->authcid + '\0' + plain->password;
    if (plain->authzid.find('\0') != std::string::npos || plain->authcid.find('\0') != std::string::npos) std::abort();
    std::string encoded(sodium_base64_ENCODED_LEN(raw.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(encoded.data(), encoded.size(), reinterpret_cast<const unsigned char*>(raw.data()), raw.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    encoded.resize(std::strlen(encoded.c_str()));
    const auto again = decode_sasl_plain(encoded);
    if (!again || again->authzid != plain->authzid || again->authcid != plain->authcid || again->password != plain->password)
      std::abort();
  }
}

// SEARCH criteria: every key consumes a word, none nests past kMaxSearchDepth, and a group's
// children are whole keys.
int depth_of(const SearchKey& key) {
  int deepest = 0;
  for (const auto& child : key.children) deepest = std::max(deepest, depth_of(child));
  return deepest + (key.children.empty() ? 0 : 1);
}

void check_search(const std::string& criteria) {
  auto words = search_words(criteria);
  while (!words.done()) {
    const auto before = words.at;
    const auto key = parse_search_key(words);
    if (!key) return;
    if (words.at <= before || depth_of(*key) > kMaxSearchDepth + 1) std::abort();
    if (key->kind == SearchKey::Kind::not_ && key->children.size() != 1) std::abort();
    if (key->kind == SearchKey::Kind::or_ && key->children.size() != 2) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CommandReader reader(ReaderLimits{4096, 4096, 16384});
  reader.feed(std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<SortKeys> keys;
  for (auto status = reader.next(); status != CommandReader::Status::need_more; status = reader.next()) {
    if (status == CommandReader::Status::fatal) break;
    if (status != CommandReader::Status::command) continue;
    const RawCommand command = reader.take();
    Cursor c(command);
    if (!c.tag() || !c.space() || !c.atom()) continue;
    const std::string criteria = c.rest_with_literals();
    // A literal reaches SEARCH as a quoted string holding exactly its bytes (checked when the
    // lines themselves hold no quotes to confuse the count).
    const bool plain_lines = std::none_of(command.lines.begin(), command.lines.end(), [](const std::string& line) {
      return line.find_first_of("\"\\") != std::string::npos;
    });
    if (plain_lines && quoted_strings(criteria) != command.literals) std::abort();
    for (const auto& word : words(criteria)) check_word(word);
    check_base_subject(criteria);
    check_flags_and_sasl(criteria);
    check_search(criteria);
    if (keys.size() < kMaxMessages) keys.push_back(keys_of(criteria, keys.size()));
  }
  const auto name = [](std::size_t i) { return std::to_string(i + 1); };
  check_thread_response(thread_ordered_subject(keys, name), keys.size());
  check_thread_response(thread_references(keys, name), keys.size());
  return 0;
}
