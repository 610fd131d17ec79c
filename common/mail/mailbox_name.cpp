// Mailbox name rules and their reversible file-name forms.
#include "common/mail/mailbox_name.h"

#include "common/text.h"

namespace coop::mail {

namespace {
// Every piece between separators, empty ones included: "a//b" -> {"a", "", "b"}.
std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> pieces;
  std::size_t start = 0;
  while (true) {
    const auto end = text.find(separator, start);
    pieces.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return pieces;
    start = end + 1;
  }
}
}  // namespace

std::string mailbox_name_problem(std::string_view name) {
  if (name.empty()) return "a mailbox name cannot be empty";
  if (name.size() > kMaxMailboxNameBytes) return "a mailbox name is at most 255 bytes";
  if (!is_valid_utf8(name)) return "a mailbox name must be UTF-8";
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return "a mailbox name cannot hold control characters";
  for (const auto& level : split(name, kMailboxSeparator)) {
    if (level.empty()) return "a mailbox name cannot start or end with '/' or hold '//'";
    if (level == "." || level == "..") return "a mailbox name cannot hold '.' or '..' as a level";
  }
  return {};
}

std::vector<std::string> mailbox_levels(std::string_view name) { return split(name, kMailboxSeparator); }

namespace {

// ".", "%", "/" and control bytes as %XX; everything else, UTF-8 included, as it is.
void append_escaped(std::string& out, std::string_view level) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : level) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '.' || c == '%' || c == '/' || byte < 0x20 || byte == 0x7f) {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    } else {
      out += c;
    }
  }
}

// Undoes append_escaped; nullopt for a "%" without two hex digits.
std::optional<std::string> unescape(std::string_view text) {
  std::string out;
  if (!percent_decode(text, out)) return std::nullopt;
  return out;
}

}  // namespace

std::string maildir_folder(std::string_view name) {
  if (name == "INBOX") return {};
  std::string out;
  for (const auto& level : mailbox_levels(name)) {
    out += '.';
    append_escaped(out, level);
  }
  return out;
}

std::optional<std::string> mailbox_from_maildir_folder(std::string_view folder) {
  if (folder.size() < 2 || folder.front() != '.') return std::nullopt;
  std::string name;
  for (const auto& piece : split(folder.substr(1), '.')) {
    const auto level = unescape(piece);
    if (!level) return std::nullopt;
    if (!name.empty()) name += kMailboxSeparator;
    name += *level;
  }
  if (!mailbox_name_problem(name).empty()) return std::nullopt;
  return name;
}

std::string file_name_for_level(std::string_view level) {
  std::string out;
  append_escaped(out, level);
  return out;
}

std::optional<std::string> level_from_file_name(std::string_view file_name) {
  auto level = unescape(file_name);
  if (!level || level->empty() || *level == "." || *level == "..") return std::nullopt;
  return level;
}

}  // namespace coop::mail
