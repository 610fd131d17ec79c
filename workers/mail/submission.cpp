// Submission checks and fixes.
#include "workers/mail/submission.h"

#include <algorithm>
#include <ctime>

#include "common/mail/message.h"
#include "common/text.h"
#include "workers/mail/auth/dkim.h"
#include "workers/mail/imap_fetch.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/smtp_parser.h"
#include "workers/mail/store/mail_directory.h"

namespace coop::mail {

namespace {

// "mailbox@host" of each address of an envelope field.
std::vector<std::string> addresses(const nlohmann::json& envelope, const char* field) {
  std::vector<std::string> out;
  if (!envelope.is_object() || !envelope.contains(field) || !envelope[field].is_array()) return out;
  for (const auto& a : envelope[field]) {
    if (!a.is_object() || a.contains("group")) continue;  // a group's start or end marker
    const auto mailbox = a.value("mailbox", nlohmann::json());
    const auto host = a.value("host", nlohmann::json());
    if (!mailbox.is_string()) continue;
    out.push_back(ascii_lower(mailbox.get<std::string>() + "@" + (host.is_string() ? host.get<std::string>() : "")));
  }
  return out;
}

}  // namespace

std::vector<std::string> sendable_addresses(MailDirectory& directory, const std::string& handle,
                                            const std::vector<std::string>& emails) {
  std::vector<std::string> out;
  for (const auto& e : emails) out.push_back(ascii_lower(e));
  for (const auto& d : directory.domains()) out.push_back(ascii_lower(handle) + "@" + d.name);
  const auto mine = out;
  for (const auto& alias : directory.aliases()) {
    const auto [alias_local, alias_domain] = split_address(alias.address);
    for (const auto& target : alias.targets) {
      const auto t = ascii_lower(target);
      // A target is a handle, or an address; a bare local part means that handle.
      const bool hit = t == ascii_lower(handle) || std::find(mine.begin(), mine.end(), t) != mine.end() ||
                       t == ascii_lower(handle) + "@" + alias_domain;
      if (hit) {
        out.push_back(ascii_lower(alias.address));
        break;
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

PreparedSubmission prepare_submission(std::string_view message, const std::vector<std::string>& allowed, int64_t now) {
  PreparedSubmission out;
  const auto split = imap::header_end(message);
  const auto fields = dkim::header_fields(message.substr(0, split));
  int from_fields = 0;
  bool has_date = false, has_id = false;
  for (const auto& f : fields) {
    from_fields += f.name == "from";
    has_date = has_date || f.name == "date";
    has_id = has_id || f.name == "message-id";
  }
  if (from_fields != 1) {
    out.code = 550;
    out.reply = from_fields == 0 ? "550 5.6.0 The message has no From: header (RFC 5322 3.6)"
                                 : "550 5.6.0 The message has more than one From: header (RFC 5322 3.6)";
    return out;
  }
  const auto summary = summarize_message(message.substr(0, split));
  auto check = [&](const std::vector<std::string>& list) -> bool {
    for (const auto& a : list) {
      if (std::binary_search(allowed.begin(), allowed.end(), a)) continue;
      out.code = 553;
      out.reply = "553 5.7.1 You may not send as <" + a + ">";
      return false;
    }
    return true;
  };
  const auto from = addresses(summary.envelope, "from");
  if (from.empty()) {
    out.code = 550;
    out.reply = "550 5.6.0 The From: header has no address";
    return out;
  }
  if (!check(from)) return out;
  out.from_domain = from.front().substr(from.front().rfind('@') + 1);
  // The envelope's "sender" repeats From when there is no Sender: field (RFC 3501 7.4.2).
  if (!check(addresses(summary.envelope, "sender"))) return out;

  std::string added;
  if (!has_date) added += "Date: " + rfc5322_date(now) + "\r\n";
  if (!has_id) added += "Message-ID: <" + unique_token() + "@" + out.from_domain + ">\r\n";
  out.sent_copy = added + std::string(message);
  out.message = added;
  std::size_t copied = 0;
  for (const auto& f : fields) {
    if (f.name != "bcc") continue;
    const auto start = static_cast<std::size_t>(f.raw.data() - message.data());
    auto stop = start + f.raw.size();
    if (message.substr(stop, 2) == "\r\n") stop += 2;
    else if (message.substr(stop, 1) == "\n") stop += 1;
    out.message.append(message.substr(copied, start - copied));
    copied = stop;
  }
  out.message.append(message.substr(copied));
  return out;
}

}  // namespace coop::mail
