// RFC 5092 IMAP URLs, the message-part form ("icommand" with iuid, isection and ipartial).
#include "workers/mail/imap_url.h"

#include <charconv>

#include "common/text.h"

namespace coop::mail::imap {

namespace {

std::optional<uint64_t> number(std::string_view text, bool nonzero) {
  uint64_t value = 0;
  if (text.empty() || text.size() > 19) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || (nonzero && value == 0)) return std::nullopt;
  return value;
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && ascii_iequals(text.substr(0, prefix.size()), prefix);
}

}  // namespace

std::optional<MessageUrl> parse_message_url(std::string_view url) {
  // RFC 5092 3: imapurl = "imap://" iserver ipath-query; a relative URL starts at the path.
  if (starts_with_ci(url, "imap://")) {
    const auto slash = url.find('/', 7);
    if (slash == std::string_view::npos) return std::nullopt;
    url.remove_prefix(slash);
  }
  if (url.empty() || url[0] != '/') return std::nullopt;
  url.remove_prefix(1);
  // imessagepart = icommand: enc-mailbox [uidvalidity] iuid [isection] [ipartial]; the
  // pieces after the mailbox each start with "/;".
  const auto uid_at = url.find("/;");
  if (uid_at == std::string_view::npos) return std::nullopt;
  std::string_view box = url.substr(0, uid_at);
  url.remove_prefix(uid_at);
  MessageUrl out;
  if (const auto semi = box.find(';'); semi != std::string_view::npos) {
    const auto param = box.substr(semi + 1);
    if (!starts_with_ci(param, "UIDVALIDITY=")) return std::nullopt;
    const auto v = number(param.substr(12), true);
    if (!v) return std::nullopt;
    out.uidvalidity = static_cast<int64_t>(*v);
    box = box.substr(0, semi);
  }
  if (box.empty() || !percent_decode(box, out.mailbox) || !is_valid_utf8(out.mailbox)) return std::nullopt;
  bool have_uid = false;
  while (!url.empty()) {
    if (url.substr(0, 2) != "/;") return std::nullopt;
    url.remove_prefix(2);
    auto next = url.find("/;");
    const auto piece = url.substr(0, next);
    url = next == std::string_view::npos ? std::string_view() : url.substr(next);
    if (starts_with_ci(piece, "UID=") && !have_uid) {
      const auto v = number(piece.substr(4), true);
      if (!v) return std::nullopt;
      out.uid = static_cast<int64_t>(*v);
      have_uid = true;
    } else if (starts_with_ci(piece, "SECTION=") && have_uid && out.section.empty() && !out.partial) {
      if (!percent_decode(piece.substr(8), out.section) || out.section.empty()) return std::nullopt;
    } else if (starts_with_ci(piece, "PARTIAL=") && have_uid && !out.partial) {
      // RFC 5092 ipartial: offset ["." length].
      const auto range = piece.substr(8);
      const auto dot = range.find('.');
      const auto offset = number(range.substr(0, dot), false);
      if (!offset) return std::nullopt;
      std::optional<uint64_t> length;
      if (dot != std::string_view::npos && !(length = number(range.substr(dot + 1), true))) return std::nullopt;
      out.partial.emplace(*offset, length);
    } else {
      return std::nullopt;  // URLAUTH, a search, or a piece out of order
    }
  }
  if (!have_uid) return std::nullopt;
  return out;
}

}  // namespace coop::mail::imap
