// Maildir delivery and listing, mboxrd writing and reading: pure format code, no database.
#include "common/mail/mailbox_formats.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <system_error>

#include "common/error.h"
#include "common/fs.h"

namespace coop::mail {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void io_fail(const std::string& what, const fs::path& path, int err) {
  throw Error(errc::kIoError, what + " " + path.string() + ": " + std::strerror(err), 500);
}

fs::path parent_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

void write_all(int fd, std::string_view bytes, const fs::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      io_fail("cannot write", path, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void make_private_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return;
  const int err = errno;
  std::error_code ec;
  if (err == EEXIST && fs::is_directory(dir, ec)) return;
  io_fail("cannot create directory", dir, err);
}

// The maildir spec's unique name may not contain '/' (path separator) or ':' (starts the info),
// and a leading '.' would make readers skip the file.
void check_unique_name(std::string_view unique) {
  if (unique.empty() || unique.front() == '.' ||
      unique.find_first_of(std::string_view("/:\0", 3)) != std::string_view::npos) {
    throw Error(errc::kMaildirInvalidName,
                "invalid maildir unique name \"" + std::string(unique) + "\"", 400);
  }
}

// The maildir spec delivers with link() rather than rename(): link never replaces an existing
// file, so a colliding name is an error instead of a silently lost message. Some file systems
// have no hard links; there rename without replacement gives the same guarantee.
void link_into_place(const fs::path& from, const fs::path& to) {
  if (::link(from.c_str(), to.c_str()) == 0) return;
  int err = errno;
  if (err == EPERM || err == ENOTSUP || err == ENOSYS || err == EOPNOTSUPP) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
    err = errno;
  }
  if (err == EEXIST) throw Error(errc::kMaildirExists, "maildir message exists: " + to.string(), 409);
  io_fail("cannot link into", to, err);
}

}  // namespace

// ---- Maildir ----

std::string maildir_info(unsigned flags, std::string_view keyword_letters) {
  // Dovecot: the letters must be in ASCII order, or other readers may not find them.
  std::string info = ":2,";
  if (flags & kDraft) info += 'D';
  if (flags & kFlagged) info += 'F';
  if (flags & kAnswered) info += 'R';
  if (flags & kSeen) info += 'S';
  if (flags & kDeleted) info += 'T';
  std::string letters;
  for (const char c : keyword_letters)
    if (c >= 'a' && c <= 'z' && letters.find(c) == std::string::npos) letters += c;
  std::sort(letters.begin(), letters.end());
  return info + letters;
}

std::string maildir_keyword_letters(std::string_view filename) {
  if (const auto slash = filename.rfind('/'); slash != std::string_view::npos) filename.remove_prefix(slash + 1);
  const auto info = filename.rfind(":2,");
  std::string letters;
  if (info == std::string_view::npos) return letters;
  for (const char c : filename.substr(info + 3))
    if (c >= 'a' && c <= 'z') letters += c;
  return letters;
}

char MaildirKeywords::letter_for(std::string_view keyword) {
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == keyword) return static_cast<char>('a' + i);
  if (names_.size() == 26 || keyword.empty()) return 0;
  names_.emplace_back(keyword);
  return static_cast<char>('a' + names_.size() - 1);
}

std::string MaildirKeywords::letters_for(std::string_view keywords) {
  std::string letters;
  std::size_t start = 0;
  while (start < keywords.size()) {
    auto end = keywords.find(' ', start);
    if (end == std::string_view::npos) end = keywords.size();
    if (const char letter = letter_for(keywords.substr(start, end - start))) {
      if (letters.find(letter) == std::string::npos) letters += letter;
    } else if (end > start) {
      ++dropped_;
    }
    start = end + 1;
  }
  return letters;
}

std::string MaildirKeywords::keywords_of(std::string_view letters) const {
  std::string out;
  for (const char c : letters) {
    const auto i = static_cast<std::size_t>(c - 'a');
    if (c < 'a' || c > 'z' || i >= names_.size()) continue;
    if (!out.empty()) out += ' ';
    out += names_[i];
  }
  return out;
}

MaildirKeywords MaildirKeywords::read(const fs::path& dir) {
  MaildirKeywords keywords;
  std::ifstream in(dir / "dovecot-keywords");
  std::string line;
  while (std::getline(in, line)) {
    // "<index> <keyword>", indexes 0-25 for the letters a-z.
    const auto space = line.find(' ');
    if (space == std::string::npos) continue;
    const int index = std::atoi(line.substr(0, space).c_str());
    if (index < 0 || index >= 26 || line.substr(0, space) != std::to_string(index)) continue;
    if (keywords.names_.size() <= static_cast<std::size_t>(index)) keywords.names_.resize(static_cast<std::size_t>(index) + 1);
    keywords.names_[static_cast<std::size_t>(index)] = line.substr(space + 1);
  }
  return keywords;
}

void MaildirKeywords::write(const fs::path& dir) const {
  if (names_.empty()) return;
  std::ofstream out(dir / "dovecot-keywords", std::ios::trunc);
  for (std::size_t i = 0; i < names_.size(); ++i) out << i << ' ' << names_[i] << '\n';
  out.flush();
  if (!out) throw Error(errc::kIoError, "cannot write " + (dir / "dovecot-keywords").string(), 500);
}

unsigned parse_maildir_flags(std::string_view filename) {
  if (const auto slash = filename.rfind('/'); slash != std::string_view::npos) {
    filename.remove_prefix(slash + 1);
  }
  const auto info = filename.rfind(":2,");
  if (info == std::string_view::npos) return 0;
  unsigned flags = 0;
  for (const char c : filename.substr(info + 3)) {
    switch (c) {
      case 'D': flags |= kDraft; break;
      case 'F': flags |= kFlagged; break;
      case 'R': flags |= kAnswered; break;
      case 'S': flags |= kSeen; break;
      case 'T': flags |= kDeleted; break;
      default: break;  // Dovecot keywords (a-z) and flags we do not store ('P' passed)
    }
  }
  return flags;
}

std::string maildir_unique_name(int64_t unix_seconds, uint64_t sequence, std::string_view hostname) {
  // M carries microseconds in the spec's recommended form; the caller gives whole seconds and
  // uniqueness comes from P (pid) and Q (deliveries by this process), so it is 0.
  std::string name = std::to_string(unix_seconds) + ".M0P" + std::to_string(::getpid()) + "Q" +
                     std::to_string(sequence) + ".";
  if (hostname.empty()) hostname = "localhost";
  for (const char c : hostname) {
    if (c == '/') {
      name += "\\057";
    } else if (c == ':') {
      name += "\\072";
    } else {
      name += c;
    }
  }
  return name;
}

void maildir_create(const fs::path& dir) {
  const fs::path parent = parent_of(dir);
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) io_fail("cannot create directory", parent, ec.value());
  make_private_dir(dir);
  make_private_dir(dir / "tmp");
  make_private_dir(dir / "new");
  make_private_dir(dir / "cur");
  fsync_directory(dir);
  fsync_directory(parent);
}

void maildir_deliver(const fs::path& dir, std::string_view unique, unsigned flags,
                     std::string_view bytes, std::string_view keyword_letters, Durability durability) {
  maildir_deliver_stream(dir, unique, flags,
                         [bytes](const std::function<void(std::string_view)>& write) { write(bytes); },
                         keyword_letters, durability);
}

void maildir_deliver_stream(
    const fs::path& dir, std::string_view unique, unsigned flags,
    const std::function<void(const std::function<void(std::string_view)>& write)>& produce,
    std::string_view keyword_letters, Durability durability) {
  check_unique_name(unique);
  const fs::path tmp = dir / "tmp" / std::string(unique);
  // Always cur/ with the info suffix, never new/: new/ means "no reader has looked at this yet"
  // and may not carry an info part, so the flags we already know would be lost there. \Recent
  // is not stored, so nothing is lost by skipping new/.
  const fs::path target = dir / "cur" / (std::string(unique) + maildir_info(flags, keyword_letters));

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) throw Error(errc::kMaildirExists, "maildir temporary file exists: " + tmp.string(), 409);
    io_fail("cannot create", tmp, errno);
  }
  try {
    produce([&](std::string_view chunk) { write_all(fd, chunk, tmp); });
    if (durability == Durability::each && ::fsync(fd) != 0) io_fail("cannot fsync", tmp, errno);
    const int rc = ::close(fd);
    fd = -1;
    if (rc != 0) io_fail("cannot close", tmp, errno);
    link_into_place(tmp, target);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // A leftover tmp/ file is harmless (readers ignore tmp/), so its unlink is not checked.
  ::unlink(tmp.c_str());
  if (durability == Durability::each) fsync_directory(dir / "cur");
}

std::vector<MaildirMessage> maildir_list(const fs::path& dir) {
  std::vector<MaildirMessage> messages;
  for (const bool is_new : {true, false}) {
    const fs::path sub = dir / (is_new ? "new" : "cur");
    std::error_code ec;
    if (!fs::is_directory(sub, ec)) {
      throw Error(errc::kMaildirInvalid, "not a maildir (no " + sub.string() + ")", 400);
    }
    fs::directory_iterator it(sub, ec);
    if (ec) io_fail("cannot list", sub, ec.value());
    for (const fs::directory_entry& entry : it) {
      const std::string name = entry.path().filename().string();
      if (name.empty() || name.front() == '.') continue;
      if (!entry.is_regular_file(ec)) continue;
      messages.push_back({entry.path(), parse_maildir_flags(name), is_new});
    }
  }
  std::sort(messages.begin(), messages.end(), [](const MaildirMessage& a, const MaildirMessage& b) {
    const auto an = a.path.filename().native();
    const auto bn = b.path.filename().native();
    if (an != bn) return an < bn;
    return a.is_new > b.is_new;
  });
  return messages;
}

// ---- mboxrd ----

namespace {

constexpr std::string_view kFromSpace = "From ";
constexpr std::string_view kMailerDaemon = "MAILER-DAEMON";
constexpr std::size_t kWriterFlushBytes = 64 * 1024;
constexpr std::size_t kReaderChunkBytes = 64 * 1024;
constexpr const char* kWeekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), so the
// From_ date is read as UTC without touching the TZ environment.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// asctime(3) layout, "Thu Jan  1 00:00:00 1970", always UTC and never locale-dependent.
std::string asctime_utc(int64_t unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  if (::gmtime_r(&t, &tm) == nullptr) {
    const time_t epoch = 0;
    ::gmtime_r(&epoch, &tm);
  }
  char text[64];
  std::snprintf(text, sizeof text, "%s %s %2d %02d:%02d:%02d %lld", kWeekdays[tm.tm_wday % 7],
                kMonths[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(tm.tm_year) + 1900);
  return text;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Reads "Www Mmm dd hh:mm:ss yyyy" and the common variants that put a zone before or after
// the year; 0 when it is not a date.
int64_t parse_from_line_date(std::string_view text) {
  std::vector<std::string_view> tokens;
  while (!text.empty()) {
    const auto start = text.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    text.remove_prefix(start);
    const auto end = std::min(text.find_first_of(" \t"), text.size());
    tokens.push_back(text.substr(0, end));
    text.remove_prefix(end);
  }
  std::size_t i = 0;
  unsigned month = 0;
  for (; i < tokens.size() && month == 0; ++i) {
    for (unsigned m = 0; m < 12; ++m) {
      if (tokens[i] == kMonths[m]) month = m + 1;
    }
  }
  if (month == 0 || i + 1 >= tokens.size() || tokens[i].size() > 2 || !all_digits(tokens[i])) return 0;
  const unsigned day = static_cast<unsigned>(std::stoul(std::string(tokens[i++])));
  unsigned hour = 0, minute = 0, second = 0;
  if (std::sscanf(std::string(tokens[i++]).c_str(), "%u:%u:%u", &hour, &minute, &second) < 2) return 0;
  for (; i < tokens.size(); ++i) {
    if (tokens[i].size() == 4 && all_digits(tokens[i])) {
      const int64_t year = std::stoll(std::string(tokens[i]));
      if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return 0;
      return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    }
  }
  return 0;
}

// "From <sender> <date>": the sender is one word, the rest is the date.
void parse_from_line(std::string_view line, std::string& sender, int64_t& date) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  line.remove_prefix(kFromSpace.size());
  const auto end = std::min(line.find(' '), line.size());
  sender.assign(line.substr(0, end));
  date = parse_from_line_date(line.substr(end));
}

bool header_name_is(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(line[i]) != lower(name[i])) return false;
  }
  return true;
}

// The start of the complete line that ends just before end, if there is one.
std::optional<std::size_t> line_before(const std::string& text, std::size_t end) {
  if (end == 0 || text[end - 1] != '\n') return std::nullopt;
  if (end == 1) return 0;
  const auto newline = text.rfind('\n', end - 2);
  return newline == std::string::npos ? 0 : newline + 1;
}

// Removes the Status and X-Status lines MboxWriter appended to the header block and returns
// their flags. The writer always appends "Status:" and then at most one "X-Status:", as the
// very last header lines, so stripping one trailing X-Status and then one Status line removes
// exactly what it added, even when the message has its own Status headers above them.
unsigned strip_status_headers(std::string& message, std::string& keywords) {
  std::size_t header_end;
  if (!message.empty() && message.front() == '\n') {
    header_end = 0;
  } else {
    const auto blank = message.find("\n\n");
    header_end = blank == std::string::npos ? message.size() : blank + 1;
  }
  unsigned flags = 0;
  keywords.clear();
  // The writer's X-Keywords comes last, right after its Status or X-Status line; one that
  // does not follow them is the message's own and stays.
  if (const auto start = line_before(message, header_end);
      start && header_name_is(std::string_view(message).substr(*start), "X-Keywords:")) {
    const auto before = line_before(message, *start);
    if (before && (header_name_is(std::string_view(message).substr(*before), "X-Status:") ||
                   header_name_is(std::string_view(message).substr(*before), "Status:"))) {
      keywords = message.substr(*start + 11, header_end - *start - 11);
      while (!keywords.empty() && (keywords.front() == ' ' || keywords.front() == '\t')) keywords.erase(0, 1);
      while (!keywords.empty() && (keywords.back() == '\n' || keywords.back() == '\r' || keywords.back() == ' '))
        keywords.pop_back();
      message.erase(*start, header_end - *start);
      header_end = *start;
    }
  }
  if (const auto start = line_before(message, header_end);
      start && header_name_is(std::string_view(message).substr(*start), "X-Status:")) {
    for (std::size_t i = *start + 9; i < header_end; ++i) {
      switch (message[i]) {
        case 'A': flags |= kAnswered; break;
        case 'F': flags |= kFlagged; break;
        case 'T': flags |= kDraft; break;
        case 'D': flags |= kDeleted; break;
        default: break;
      }
    }
    message.erase(*start, header_end - *start);
    header_end = *start;
  }
  if (const auto start = line_before(message, header_end);
      start && header_name_is(std::string_view(message).substr(*start), "Status:")) {
    for (std::size_t i = *start + 7; i < header_end; ++i) {
      if (message[i] == 'R') flags |= kSeen;  // 'O' (old, not new) carries nothing we store
    }
    message.erase(*start, header_end - *start);
  }
  return flags;
}

bool is_blank_line(std::string_view line) { return line == "\n" || line == "\r\n"; }

}  // namespace

bool mbox_from_line_quote_needed(std::string_view line) {
  const auto first = line.find_first_not_of('>');
  return first != std::string_view::npos && line.substr(first).starts_with(kFromSpace);
}

MboxWriter::MboxWriter(std::function<void(std::string_view)> sink) : sink_(std::move(sink)) {}

void MboxWriter::begin_message(std::string_view envelope_sender, int64_t unix_seconds, unsigned flags,
                               std::string_view keywords) {
  if (in_message_) throw Error(errc::kMboxWriterState, "begin_message inside a message", 500);
  out_ += kFromSpace;
  if (envelope_sender.empty()) {
    out_ += kMailerDaemon;
  } else {
    // The sender is one word of the From_ line: blanks or controls in it would move the date.
    for (const char c : envelope_sender) {
      const auto u = static_cast<unsigned char>(c);
      out_ += (u <= 0x20 || u == 0x7f) ? '_' : c;
    }
  }
  out_ += ' ';
  out_ += asctime_utc(unix_seconds);
  out_ += '\n';
  flags_ = flags;
  // One line of space-separated atoms: a CR, LF or control byte would end or break it.
  keywords_.clear();
  for (const char c : keywords) keywords_ += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
  in_message_ = true;
  in_headers_ = true;
  pending_cr_ = false;
  at_line_start_ = true;
  line_quotes_ = 0;
  line_from_matched_ = 0;
}

void MboxWriter::write(std::string_view chunk) {
  if (!in_message_) throw Error(errc::kMboxWriterState, "write outside a message", 500);
  std::size_t i = 0;
  while (i < chunk.size()) {
    if (!at_line_start_ && !pending_cr_) {
      // Inside a line nothing but CR and LF matters: copy the run up to the next one, in
      // pieces so that out_ stays small however large the caller's chunk is.
      const std::string_view run = chunk.substr(i, kWriterFlushBytes);
      const auto stop = i + std::min(run.find_first_of("\r\n"), run.size());
      out_.append(chunk.substr(i, stop - i));
      i = stop;
      flush_if_large();
      if (i == chunk.size()) break;
      if (chunk[i] != '\r' && chunk[i] != '\n') continue;
    }
    const char c = chunk[i++];
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {  // CRLF -> LF: mbox is a Unix format (mutt, Python's mailbox expect LF)
        put('\n');
        continue;
      }
      put('\r');
    }
    if (c == '\r') {
      pending_cr_ = true;  // decided by the next byte, which may be in the next chunk
      continue;
    }
    put(c);
  }
  flush_if_large();
}

void MboxWriter::end_message() {
  if (!in_message_) throw Error(errc::kMboxWriterState, "end_message outside a message", 500);
  if (pending_cr_) {
    pending_cr_ = false;
    put('\r');
  }
  if (at_line_start_ && (line_quotes_ > 0 || line_from_matched_ > 0)) put_line_start_pending();
  // A message without a final newline gains one: the From_ line must start a line. This is the
  // one change the format forces; it is stable, so a second export equals the first.
  if (!at_line_start_) {
    out_ += '\n';
    at_line_start_ = true;
  }
  if (in_headers_) {
    put_status_headers();
    in_headers_ = false;
  }
  out_ += '\n';  // the empty line that separates messages
  sink_(out_);
  out_.clear();
  in_message_ = false;
}

// One byte of message text after CRLF folding. At a line start the '>'s and the prefix of
// "From " are only counted, so a From_ line split across chunks is still recognised.
void MboxWriter::put(char c) {
  if (!at_line_start_) {
    out_ += c;
    if (c == '\n') at_line_start_ = true;
    return;
  }
  if (line_from_matched_ == 0 && c == '>') {
    ++line_quotes_;
    return;
  }
  if (c == kFromSpace[line_from_matched_]) {
    if (++line_from_matched_ == kFromSpace.size()) {
      out_.append(line_quotes_ + 1, '>');  // mboxrd: one more '>' than the line had
      out_ += kFromSpace;
      line_quotes_ = 0;
      line_from_matched_ = 0;
      at_line_start_ = false;
    }
    return;
  }
  if (c == '\n' && line_quotes_ == 0 && line_from_matched_ == 0) {
    // The first empty line ends the header block (RFC 5322 2.1): Status goes just before it.
    if (in_headers_) {
      put_status_headers();
      in_headers_ = false;
    }
    out_ += '\n';
    return;
  }
  put_line_start_pending();
  out_ += c;
  if (c == '\n') at_line_start_ = true;
}

void MboxWriter::put_line_start_pending() {
  while (line_quotes_ > 0) {
    const auto n = static_cast<std::size_t>(std::min<uint64_t>(line_quotes_, kWriterFlushBytes));
    out_.append(n, '>');
    line_quotes_ -= n;
    flush_if_large();
  }
  out_ += kFromSpace.substr(0, line_from_matched_);
  line_from_matched_ = 0;
  at_line_start_ = false;
}

// mutt's and Dovecot's letters: Status R = read, O = old (not new); X-Status A = answered,
// F = flagged, T = draft, D = deleted. Status is always written (at least "O", since nothing
// exported is \Recent) so the reader knows which trailing lines are ours; X-Status only when
// it has letters, as mutt does.
void MboxWriter::put_status_headers() {
  out_ += (flags_ & kSeen) ? "Status: RO\n" : "Status: O\n";
  std::string x_status;
  if (flags_ & kAnswered) x_status += 'A';
  if (flags_ & kFlagged) x_status += 'F';
  if (flags_ & kDraft) x_status += 'T';
  if (flags_ & kDeleted) x_status += 'D';
  if (!x_status.empty()) out_ += "X-Status: " + x_status + "\n";
  // Dovecot's and mutt's place for IMAP keywords, space-separated, after ours.
  if (!keywords_.empty()) out_ += "X-Keywords: " + keywords_ + "\n";
}

void MboxWriter::flush_if_large() {
  if (out_.size() >= kWriterFlushBytes) {
    sink_(out_);
    out_.clear();
  }
}

MboxReader::MboxReader(std::function<std::size_t(char*, std::size_t)> source, MboxLineEnding line_ending)
    : source_(std::move(source)), line_ending_(line_ending) {}

bool MboxReader::read_line(std::string& line) {
  line.clear();
  for (;;) {
    if (buffer_pos_ < buffer_.size()) {
      const char* begin = buffer_.data() + buffer_pos_;
      const std::size_t available = buffer_.size() - buffer_pos_;
      if (const void* newline = std::memchr(begin, '\n', available)) {
        const auto n = static_cast<std::size_t>(static_cast<const char*>(newline) - begin) + 1;
        line.append(begin, n);
        buffer_pos_ += n;
        return true;
      }
      line.append(begin, available);
      buffer_pos_ = buffer_.size();
    }
    if (eof_) return !line.empty();
    buffer_.resize(kReaderChunkBytes);
    const std::size_t n = source_(buffer_.data(), buffer_.size());
    buffer_.resize(n);
    buffer_pos_ = 0;
    if (n == 0) eof_ = true;
  }
}

bool MboxReader::next(std::string& message, unsigned& flags, std::string& envelope_sender, int64_t& date) {
  std::string keywords;
  return next(message, flags, envelope_sender, date, keywords);
}

bool MboxReader::next(std::string& message, unsigned& flags, std::string& envelope_sender, int64_t& date,
                      std::string& keywords) {
  std::string line;
  if (!started_) {
    started_ = true;
    for (;;) {
      if (!read_line(line)) return false;  // an empty file holds no messages
      if (is_blank_line(line)) continue;
      if (!line.starts_with(kFromSpace)) {
        throw Error(errc::kMboxInvalid, "not an mbox file: it does not start with a \"From \" line", 400);
      }
      from_line_ = line;
      break;
    }
  }
  if (from_line_.empty()) return false;
  parse_from_line(from_line_, envelope_sender, date);
  from_line_.clear();

  message.clear();
  std::size_t blank_length = 0;  // length of the last line when it was empty
  while (read_line(line)) {
    // A From_ line after an empty line starts the next message. mboxrd quotes every other
    // "From " line; an unquoted one elsewhere (a foreign mboxo file) stays message text.
    if (blank_length > 0 && line.starts_with(kFromSpace)) {
      from_line_ = std::move(line);
      break;
    }
    blank_length = is_blank_line(line) ? line.size() : 0;
    if (line.front() == '>' && mbox_from_line_quote_needed(line)) {
      message.append(line, 1);  // mboxrd: remove the one '>' the writer added
    } else {
      message += line;
    }
  }
  if (blank_length > 0) message.resize(message.size() - blank_length);  // the separator
  flags = strip_status_headers(message, keywords);

  if (line_ending_ == MboxLineEnding::kCrlf) {
    // Every LF, even one after a CR: the writer turned CRLF into LF and kept lone CRs, so
    // this is its exact inverse ("a\r\r\n" -> "a\r\n" -> "a\r\r\n").
    std::string crlf;
    crlf.reserve(message.size() + static_cast<std::size_t>(std::count(message.begin(), message.end(), '\n')));
    for (const char c : message) {
      if (c == '\n') crlf += '\r';
      crlf += c;
    }
    message = std::move(crlf);
  }
  return true;
}

std::string import_record(std::string_view bytes, unsigned flags, int64_t internal_date, std::string_view keywords) {
  std::string out = std::to_string(flags) + " " + std::to_string(internal_date) + " " + std::to_string(bytes.size()) + " ";
  for (char c : keywords) out += (c == '\n' || c == '\r') ? ' ' : c;
  out += '\n';
  out.append(bytes);
  return out;
}

std::optional<std::vector<ImportRecord>> parse_import_batch(std::string_view body) {
  std::vector<ImportRecord> out;
  while (!body.empty()) {
    const auto eol = body.find('\n');
    if (eol == std::string_view::npos || eol > 4096) return std::nullopt;
    const std::string line(body.substr(0, eol));
    body.remove_prefix(eol + 1);
    unsigned long long flags = 0, size = 0;
    long long date = 0;
    int used = 0;
    if (std::sscanf(line.c_str(), "%llu %lld %llu %n", &flags, &date, &size, &used) != 3 || flags > 0xffff || size > body.size())
      return std::nullopt;
    ImportRecord r;
    r.flags = static_cast<unsigned>(flags);
    r.internal_date = date;
    r.keywords = line.substr(static_cast<std::size_t>(used));
    r.bytes = body.substr(0, static_cast<std::size_t>(size));
    body.remove_prefix(static_cast<std::size_t>(size));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace coop::mail
