// libFuzzer target: mail a member imports. The input is read as an mbox file (both line-end
// modes, whole and in small reads), its messages and the input itself are written with
// MboxWriter and read back, and each line is tried as a mailbox name, Maildir++ folder, mbox
// file name and Maildir file name. Checked against the contracts in mailbox_formats.h and
// mailbox_name.h; the exact round trips are stated where they are checked.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/mail/mailbox_formats.h"
#include "common/mail/mailbox_name.h"

using namespace coop::mail;

namespace {

constexpr unsigned kAllFlags = kSeen | kAnswered | kFlagged | kDeleted | kDraft;
constexpr int64_t kYear10000 = 253402300800;  // From_ lines carry four-digit years
constexpr std::size_t kMaxLines = 64;

struct MboxMessage {
  std::string text, sender;
  unsigned flags = 0;
  int64_t date = 0;
  bool operator==(const MboxMessage&) const = default;
};

// All messages of mbox, or nullopt when it is not an mbox file; source reads piece bytes at most.
std::optional<std::vector<MboxMessage>> read_mbox(std::string_view mbox, MboxLineEnding ending, std::size_t piece) {
  MboxReader reader(
      [&mbox, piece](char* out, std::size_t n) {
        const std::size_t count = std::min({n, piece, mbox.size()});
        std::memcpy(out, mbox.data(), count);
        mbox.remove_prefix(count);
        return count;
      },
      ending);
  std::vector<MboxMessage> messages;
  try {
    for (MboxMessage m; reader.next(m.text, m.flags, m.sender, m.date);) messages.push_back(m);
  } catch (const coop::Error& e) {
    if (e.code() != "mbox_invalid") std::abort();
    return std::nullopt;
  }
  return messages;
}

std::string write_mbox(const std::vector<MboxMessage>& messages, std::size_t piece) {
  std::string mbox;
  MboxWriter writer([&mbox](std::string_view bytes) { mbox += bytes; });
  for (const auto& m : messages) {
    writer.begin_message(m.sender, m.date, m.flags);
    for (std::size_t at = 0; at < m.text.size(); at += piece) writer.write(std::string_view(m.text).substr(at, piece));
    writer.end_message();
  }
  return mbox;
}

std::string with_crlf(std::string_view lf_text) {
  std::string out;
  for (const char c : lf_text) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

bool has_bare_lf(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) return true;
  return false;
}

// Reading the input: the kCrlf text is the kLf text with every LF made CRLF, nothing else
// differs, and how the source hands out its bytes changes nothing.
std::vector<MboxMessage> check_reading(std::string_view input, std::size_t piece) {
  const auto lf = read_mbox(input, MboxLineEnding::kLf, input.size() + 1);
  const auto crlf = read_mbox(input, MboxLineEnding::kCrlf, piece);
  if (lf.has_value() != crlf.has_value()) std::abort();
  if (!lf) return {};
  if (lf->size() != crlf->size()) std::abort();
  for (std::size_t i = 0; i < lf->size(); ++i) {
    auto expected = (*lf)[i];
    expected.text = with_crlf(expected.text);
    if ((*crlf)[i] != expected || (expected.flags & ~kAllFlags)) std::abort();
  }
  return *crlf;
}

// Writing and reading back (mailbox_formats.h): the flags, a date with a four-digit year and
// export -> import (kCrlf) -> export byte for byte. A message without bare LF comes back as it
// was, plus the CRLF a non-empty message gains when it lacks a final line end; with kLf the
// same holds for a message without CR.
void check_round_trip(std::vector<MboxMessage> messages, std::size_t piece) {
  for (auto& m : messages)
    if (m.date < 0 || m.date >= kYear10000) m.date = 0;
  const std::string mbox = write_mbox(messages, piece);
  const auto crlf = read_mbox(mbox, MboxLineEnding::kCrlf, piece);
  const auto lf = read_mbox(mbox, MboxLineEnding::kLf, mbox.size() + 1);
  if (!crlf || !lf || crlf->size() != messages.size() || lf->size() != messages.size()) std::abort();
  if (write_mbox(*crlf, mbox.size() + 1) != mbox) std::abort();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& sent = messages[i];
    if ((*crlf)[i].flags != (sent.flags & kAllFlags) || (*crlf)[i].date != sent.date) std::abort();
    if (!has_bare_lf(sent.text)) {
      const bool ended = sent.text.empty() || sent.text.ends_with("\r\n");
      if ((*crlf)[i].text != sent.text + (ended ? "" : "\r\n")) std::abort();
    }
    if (sent.text.find('\r') == std::string::npos) {
      const bool ended = sent.text.empty() || sent.text.ends_with('\n');
      if ((*lf)[i].text != sent.text + (ended ? "" : "\n")) std::abort();
    }
  }
}

// One line as each kind of name (mailbox_name.h).
void check_names(std::string_view line) {
  const std::string name(line);
  if (mailbox_name_problem(name).empty()) {
    std::string joined;
    for (const auto& level : mailbox_levels(name)) {
      if (level.empty() || level == "." || level == "..") std::abort();
      joined += (joined.empty() ? "" : "/") + level;
    }
    if (joined != name) std::abort();
    // INBOX is the Maildir++ root (folder ""), which no folder name stands for.
    if (name != "INBOX" && mailbox_from_maildir_folder(maildir_folder(name)) != name) std::abort();
  }
  if (const auto mailbox = mailbox_from_maildir_folder(line)) {
    if (!mailbox_name_problem(*mailbox).empty()) std::abort();
    if (*mailbox != "INBOX" && mailbox_from_maildir_folder(maildir_folder(*mailbox)) != mailbox) std::abort();
  }
  if (!name.empty()) {
    const auto file_name = file_name_for_level(name);
    if (file_name.empty() || file_name == "." || file_name == "..") std::abort();
    for (const unsigned char c : file_name)
      if (c == '/' || c < 0x20 || c == 0x7f) std::abort();
    // The reverse refuses a "." or ".." result by design, so those two levels do not come back.
    if (name != "." && name != ".." && level_from_file_name(file_name) != name) std::abort();
  }
  if (const auto level = level_from_file_name(line)) {
    if (level->empty() || *level == "." || *level == "..") std::abort();
    if (level_from_file_name(file_name_for_level(*level)) != level) std::abort();
  }
  // The info suffix maildir_deliver appends is what parse_maildir_flags reads, whatever precedes it.
  if (parse_maildir_flags(line) & ~kAllFlags) std::abort();
  for (unsigned flags = 0; flags <= kAllFlags; ++flags)
    if (parse_maildir_flags(name + maildir_info(flags)) != flags) std::abort();
  const auto unique = maildir_unique_name(1767571200, line.size(), line);
  if (unique.find_first_of("/:") != std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t piece = 1 + size % 13;
  auto messages = check_reading(input, piece);
  messages.push_back({std::string(input), "fuzz@example.org", static_cast<unsigned>(size) & kAllFlags, 1767571200});
  check_round_trip(std::move(messages), piece);
  std::string_view rest = input;
  for (std::size_t n = 0; n < kMaxLines && !rest.empty(); ++n) {
    const auto eol = rest.find('\n');
    check_names(rest.substr(0, eol));
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
  }
  return 0;
}
