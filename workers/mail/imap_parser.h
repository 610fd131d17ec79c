// IMAP commands as they arrive (RFC 9051 2.2, 4; RFC 3501): lines and the literals between
// them, gathered without I/O, then read token by token the way the formal syntax (RFC 9051
// 9) spells them. A fuzzer drives both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coop::mail::imap {

struct ReaderLimits {
  std::size_t max_line = 64 << 10;       // one line of a command, literals aside
  std::size_t max_literal = 64 << 20;    // one literal (APPEND's message)
  std::size_t max_command = 70 << 20;    // all of one command
};

// A command's lines (without CRLF) and, after each line that announced one, its literal.
struct RawCommand {
  std::vector<std::string> lines;
  std::vector<std::string> literals;
};

// Gathers commands from the bytes a client sends. A synchronizing literal ({N}) needs the
// server's "+" before the client sends it; LITERAL+ ({N+}, RFC 7888) does not.
class CommandReader {
 public:
  explicit CommandReader(ReaderLimits limits = {}) : limits_(limits) {}
  void set_limits(ReaderLimits limits) { limits_ = limits; }

  enum class Status {
    need_more,          // feed more bytes
    need_continuation,  // write "+ ..." and feed more: the client waits for it
    command,            // take() the command
    refused,            // reply() is a tagged BAD/NO to write; the session goes on
    fatal,              // reply() is a BYE-worthy reason; close the connection
  };
  void feed(std::string_view bytes) { in_.append(bytes); }
  Status next();
  RawCommand take() { return std::exchange(command_, {}); }
  const std::string& reply() const { return reply_; }
  // Bytes received and not yet used (after STARTTLS they must be dropped, RFC 9051 11.1).
  std::size_t buffered() const { return in_.size(); }
  void drop_buffered() { in_.clear(); }

 private:
  ReaderLimits limits_;
  std::string in_;
  RawCommand command_;
  std::size_t command_bytes_ = 0;
  std::size_t literal_left_ = 0;
  bool in_literal_ = false;
  bool discarding_line_ = false;  // a line over the limit: skipped to its end
  std::string reply_;
};

// The tag a reply to this command carries: its first token when it is a valid tag, else "*".
std::string tag_of(const RawCommand& command);

// Reads one command token by token. Every method returns nullopt / false on a syntax error,
// leaving the position unspecified; the caller answers BAD.
class Cursor {
 public:
  explicit Cursor(const RawCommand& command) : command_(command) {}

  bool at_end() const;
  bool space();           // exactly one SP
  bool peek(char c) const;
  bool take(char c);
  std::optional<std::string> tag();
  std::optional<std::string> atom();     // ATOM-CHAR+
  std::optional<std::string> astring();  // atom (with ']') or string
  std::optional<std::string> string();   // quoted or literal
  std::optional<std::string> nstring();  // string or NIL (as an empty optional inside)
  std::optional<uint32_t> number();      // nz-number or 0
  // A mailbox name (astring); "INBOX" in any case means INBOX (RFC 9051 5.1).
  std::optional<std::string> mailbox();
  // list-mailbox (LIST's pattern): atoms may hold % and *.
  std::optional<std::string> list_mailbox();
  // The text of a sequence-set ("1:4,7:*", or "$" for a saved search): digits, ':', ',', '*'.
  std::optional<std::string> sequence_set();
  // Up to the end of the current line, as sent (FETCH and SEARCH criteria read themselves).
  std::string rest_of_line();
  // The rest of the command with each literal turned into a quoted string, for readers that
  // split words themselves (SEARCH criteria may be literals: non-ASCII text).
  std::string rest_with_literals();

 private:
  const std::string* line() const;
  char current() const;
  bool next_literal(std::string& out);

  const RawCommand& command_;
  std::size_t line_ = 0, at_ = 0;
};

// RFC 9051 9 sequence-set: "1:4,7,9:*"; * is the largest number in use (max).
struct SequenceSet {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive, low <= high; sorted, merged
  bool contains(uint32_t n) const;  // a binary search: a set of many ranges costs little
};
std::optional<SequenceSet> parse_sequence_set(std::string_view text, uint32_t max);

// The RFC 5530 response code for a coop::Error's code, the one place IMAP translates them:
// "NONEXISTENT", "ALREADYEXISTS", "OVERQUOTA", "AUTHENTICATIONFAILED"... ("CANNOT" otherwise).
std::string response_code(std::string_view error_code);

// RFC 9051 2.3.2 system flags: the stored bit (common/mail/mailbox_formats.h Flag) of "\\Seen",
// "\\Answered", "\\Flagged", "\\Deleted" or "\\Draft", in any case; nullopt for anything else.
std::optional<unsigned> system_flag_bit(std::string_view name);

// A STORE or APPEND flag list, "(\\Seen $Junk)" or its words without parentheses: the system
// flags as bits and the keywords in order. ok is false, with the word in bad_word, when a
// word is neither (RFC 9051 9 flag).
struct FlagList {
  unsigned system = 0;
  std::vector<std::string> keywords;
  bool ok = true;
  std::string bad_word;
};
FlagList parse_flag_list(std::string_view text);

// AUTHENTICATE PLAIN's response (RFC 4616 2; RFC 9051 6.2.2): base64 of authzid NUL authcid
// NUL password. nullopt for bad base64 or another shape.
struct SaslPlain {
  std::string authzid, authcid, password;
};
std::optional<SaslPlain> decode_sasl_plain(std::string_view base64);

// RFC 9051 9 flag-keyword: an atom (at most 100 bytes here), which never starts with "\".
bool valid_keyword(std::string_view word);

// The valid keywords of a space- or comma-separated list (mbox X-Keywords, an import), each
// once, space-separated.
std::string valid_keywords(std::string_view list);

// RFC 9051 5.1: INBOX is case-insensitive; everything else as given.
std::string normalize_mailbox(std::string name);

// RFC 3501 5.1.3 modified UTF-7, the mailbox names of IMAP4rev1 clients that did not
// ENABLE UTF8=ACCEPT (RFC 6855) or IMAP4rev2: "Caf&AOk-" is "Café", "&-" is "&".
std::string to_modified_utf7(std::string_view utf8);
// nullopt when the text is not valid modified UTF-7 (or its UTF-16 is broken).
std::optional<std::string> from_modified_utf7(std::string_view text);

// A quoted string for a response, or a literal when the text needs one (CR, LF, 8-bit, long).
std::string quote(std::string_view text);

}  // namespace coop::mail::imap
