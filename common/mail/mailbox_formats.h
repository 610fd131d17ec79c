// Maildir and mbox (mboxrd): the formats members export their mail to and import it from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail {

// IMAP system flags (RFC 9051 2.3.2). \Recent is session state and is never stored.
enum Flag : unsigned { kSeen = 1, kAnswered = 2, kFlagged = 4, kDeleted = 8, kDraft = 16 };

// ---- Maildir (https://cr.yp.to/proto/maildir.html, Dovecot's "Maildir" info suffix) ----

// ":2," followed by the flag letters in ASCII order: D draft, F flagged, R replied, S seen,
// T trashed, then Dovecot's keyword letters a-z. maildir_info(kSeen | kAnswered, "b") == ":2,RSb".
std::string maildir_info(unsigned flags, std::string_view keyword_letters = {});

// The keyword letters (a-z) of a file name's info part, in the order they appear.
std::string maildir_keyword_letters(std::string_view filename);

// A folder's dovecot-keywords file: which IMAP keyword each letter a-z stands for ("0 $Junk"
// is 'a'), as Dovecot keeps it beside cur/, new/ and tmp/. At most 26 per folder.
class MaildirKeywords {
 public:
  static MaildirKeywords read(const std::filesystem::path& dir);  // none when there is no file
  // Writes the file when any keyword was given a letter.
  void write(const std::filesystem::path& dir) const;
  // The letters for space-separated keywords, giving new ones the next free letters; a
  // keyword past the 26th gets none (counted in dropped()).
  std::string letters_for(std::string_view keywords);
  // The space-separated keywords those letters stand for; unknown letters are skipped.
  std::string keywords_of(std::string_view letters) const;
  std::size_t dropped() const { return dropped_; }

 private:
  char letter_for(std::string_view keyword);
  std::vector<std::string> names_;
  std::size_t dropped_ = 0;
};

// The flags in the info part after the last ":2,"; unknown letters (Dovecot keywords a-z,
// future flags) are ignored; 0 when the name has no info.
unsigned parse_maildir_flags(std::string_view filename);

// "<seconds>.M0P<pid>Q<sequence>.<host>": unique within one host as long as sequence is unique
// within this process. '/' and ':' in the host become "\057" and "\072" as the spec says.
std::string maildir_unique_name(int64_t unix_seconds, uint64_t sequence, std::string_view hostname);

// Creates dir and dir/{tmp,new,cur} with mode 0700; existing directories are kept.
void maildir_create(const std::filesystem::path& dir);

// Delivers a message as cur/<unique><info>: written to tmp/<unique>, fsynced, hard-linked into
// cur/ (so an existing name is never overwritten: Error "maildir_exists") and cur/ fsynced.
// keyword_letters are the folder's dovecot-keywords letters (MaildirKeywords).
// Durability::batch skips both fsyncs, for an export that syncs its whole file system once
// at the end (syncfs) before it says it is done.
enum class Durability { each, batch };
void maildir_deliver(const std::filesystem::path& dir, std::string_view unique, unsigned flags,
                     std::string_view bytes, std::string_view keyword_letters = {},
                     Durability durability = Durability::each);

// The same for large messages: produce is called once and writes the message in chunks.
// If produce throws, the partial file in tmp/ is removed and the exception propagates.
void maildir_deliver_stream(
    const std::filesystem::path& dir, std::string_view unique, unsigned flags,
    const std::function<void(const std::function<void(std::string_view)>& write)>& produce,
    std::string_view keyword_letters = {}, Durability durability = Durability::each);

struct MaildirMessage {
  std::filesystem::path path;
  unsigned flags = 0;
  bool is_new = false;  // found in new/: no MUA has seen it yet
};

// The messages in new/ and cur/ (never tmp/, whose files are incomplete), skipping dotfiles,
// sorted by file name so that an import is deterministic. Error "maildir_invalid" when dir has
// no new/ or cur/.
std::vector<MaildirMessage> maildir_list(const std::filesystem::path& dir);

// ---- mbox, the mboxrd variant ----
// (https://www.loc.gov/preservation/digital/formats/fdd/fdd000385.shtml, qmail's mbox(5))
//
// Layout of one message as MboxWriter writes it:
//   "From <sender> <asctime date in UTC>\n"
//   the message with CRLF turned into LF and every line matching ^>*From  given one more '>',
//   with "Status: RO|O\n", when any of A F T D apply "X-Status: <AFTD>\n", and when the message
//   has keywords "X-Keywords: <k1 k2>\n" inserted as the last header lines (before the first empty line, or at the end when there is none),
//   a "\n" ending the last line when the message lacks one,
//   and one empty line.
// MboxReader undoes exactly this, so export -> import -> export is byte-identical when the
// messages are read back with MboxLineEnding::kCrlf (the store's RFC 5322 form), and with kLf
// for messages that hold no CR. The one lossy step is the final newline a message gains.

// True when line matches ^>*From  and so gains one '>' in mboxrd.
bool mbox_from_line_quote_needed(std::string_view line);

class MboxWriter {
 public:
  // sink receives the mbox bytes in pieces of bounded size.
  explicit MboxWriter(std::function<void(std::string_view)> sink);

  // An empty envelope sender (null reverse-path) is written as MAILER-DAEMON. keywords,
  // space-separated, go into an X-Keywords line after Status and X-Status (as Dovecot writes).
  void begin_message(std::string_view envelope_sender, int64_t unix_seconds, unsigned flags,
                     std::string_view keywords = {});
  // Message bytes in arbitrary chunks; only the undecided start of a line is held back.
  void write(std::string_view chunk);
  void end_message();

 private:
  void put(char c);
  void put_line_start_pending();
  void put_status_headers();
  void flush_if_large();

  std::function<void(std::string_view)> sink_;
  std::string out_;
  unsigned flags_ = 0;
  std::string keywords_;
  bool in_message_ = false;
  bool in_headers_ = false;
  bool pending_cr_ = false;
  bool at_line_start_ = true;  // still deciding whether this line needs a '>'
  uint64_t line_quotes_ = 0;   // '>'s seen at the start of the current line
  std::size_t line_from_matched_ = 0;  // characters of "From " matched after them
};

// coop mail import's batches on the control socket (POST /v1/import/...): for each message a
// line "<flags> <internal_date> <size> <keywords>\n", then exactly <size> bytes.
std::string import_record(std::string_view bytes, unsigned flags, int64_t internal_date, std::string_view keywords);
struct ImportRecord {
  std::string_view bytes;  // into the parsed body
  unsigned flags = 0;
  int64_t internal_date = 0;
  std::string keywords;
};
// nullopt when the body is not a sequence of whole records.
std::optional<std::vector<ImportRecord>> parse_import_batch(std::string_view body);

enum class MboxLineEnding { kLf, kCrlf };

class MboxReader {
 public:
  // source fills up to n bytes and returns how many; 0 means end of file.
  // With kCrlf every LF of a message is returned as CRLF (the inverse of the writer's CRLF -> LF).
  explicit MboxReader(std::function<std::size_t(char*, std::size_t)> source,
                      MboxLineEnding line_ending = MboxLineEnding::kLf);

  // The next message, whole; false at the end. Throws Error "mbox_invalid" when the file does
  // not start with a From_ line. The flags come from the Status/X-Status lines the writer
  // added, which are removed; date is 0 when the From_ line's date cannot be parsed.
  bool next(std::string& message, unsigned& flags, std::string& envelope_sender, int64_t& date);
  // The same, with the keywords of the X-Keywords line the writer added (also removed).
  bool next(std::string& message, unsigned& flags, std::string& envelope_sender, int64_t& date, std::string& keywords);

 private:
  bool read_line(std::string& line);

  std::function<std::size_t(char*, std::size_t)> source_;
  MboxLineEnding line_ending_;
  std::string buffer_;
  std::size_t buffer_pos_ = 0;
  bool eof_ = false;
  bool started_ = false;
  std::string from_line_;  // the From_ line that starts the next message
};

}  // namespace coop::mail
