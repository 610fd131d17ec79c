// The vacation responder: RFC 3834 (automatic responses) and RFC 5230's choices for when not
// to answer, with the reply written by GMime (mime_compose) and sent through the queue.
#include "workers/mail/vacation.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/mail/message.h"
#include "common/text.h"
#include "workers/mail/imap_thread.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/mime_compose.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/outbound/outbound.h"
#include "workers/mail/store/mail_directory.h"

namespace coop::mail {

namespace {

// Every field as (lower-cased name, unfolded value).
std::vector<std::pair<std::string, std::string>> fields_of(std::string_view header) {
  auto out = header_fields(header);
  for (auto& [name, value] : out) {
    name = ascii_lower(name);
    value = unfolded(value);
  }
  return out;
}

}  // namespace

std::string vacation_refusal(std::string_view message, const std::string& envelope_sender, const std::string& address) {
  if (envelope_sender.empty()) return "no envelope sender";
  const auto sender = ascii_lower(envelope_sender);
  const auto local = sender.substr(0, sender.rfind('@'));
  if (local == "mailer-daemon" || local == "postmaster" || local.starts_with("owner-") || local.ends_with("-request") ||
      local.starts_with("noreply") || local.starts_with("no-reply") || local.starts_with("bounce") || local == "listserv" ||
      local == "majordomo")
    return "the sender is a robot";
  bool addressed = false;
  for (const auto& [name, value] : fields_of(message.substr(0, header_end(message)))) {
    const auto v = ascii_lower(value);
    if (name == "auto-submitted" && !v.starts_with("no")) return "Auto-Submitted: " + v;
    if (name == "precedence" && (v == "bulk" || v == "list" || v == "junk")) return "Precedence: " + v;
    if (name.starts_with("list-")) return "a mailing list (" + name + ")";
    if (name == "x-auto-response-suppress" && (v.find("oof") != std::string::npos || v.find("all") != std::string::npos))
      return "X-Auto-Response-Suppress";
    if (name == "to" || name == "cc" || name == "resent-to" || name == "resent-cc")
      for (const auto& a : parse_address_field(value))
        if (a["mailbox"].is_string() && a["host"].is_string() &&
            ascii_lower(a["mailbox"].get<std::string>() + "@" + a["host"].get<std::string>()) == ascii_lower(address))
          addressed = true;
  }
  if (!addressed) return "not addressed to " + address + " in To or Cc";
  return {};
}

void Vacation::after_delivery(std::string_view message, const std::string& envelope_sender, bool sender_verified,
                              const std::vector<std::string>& addresses, const std::vector<Recipient>& in_inbox, int64_t now) {
  for (const auto& address : addresses) {
    try {
      // The address must reach exactly one member, whose copy went to INBOX.
      const auto check = service_.check_recipient(address, 0);
      if (!check.accepted || check.recipients.size() != 1) {
        spdlog::debug("vacation: {} does not reach one member", address);
        continue;
      }
      const auto& handle = check.recipients.front().handle;
      if (std::none_of(in_inbox.begin(), in_inbox.end(), [&](const Recipient& r) { return r.handle == handle; })) continue;
      const auto v = service_.directory().vacation(handle);
      if (!v.enabled || (v.from && now < *v.from) || (v.to && now >= *v.to)) continue;
      auto why = vacation_refusal(message, envelope_sender, address);
      if (why.empty() && !sender_verified) why = "neither SPF nor DMARC vouches for the sender";
      if (!why.empty()) {
        spdlog::info("vacation {}: no reply to <{}>: {}", handle, envelope_sender, why);
        continue;
      }
      if (!service_.directory().claim_vacation_reply(handle, envelope_sender, now, kVacationPeriodSeconds)) continue;
      const auto summary = summarize_message(message.substr(0, header_end(message)));
      ComposedMessage reply;
      const auto at = address.rfind('@');
      reply.addresses = {{"From", {{"", address}}}, {"To", {{"", envelope_sender}}}};
      // The sender's own subject comes back, cut to 78 bytes at a character's start.
      std::string theirs = summary.subject.substr(0, 78);
      while (theirs.size() < summary.subject.size() && !theirs.empty() && (static_cast<unsigned char>(summary.subject[theirs.size()]) & 0xC0) == 0x80)
        theirs.pop_back();
      reply.subject = v.subject && !v.subject->empty() ? *v.subject : "Auto: " + (theirs.empty() ? std::string("away") : theirs);
      reply.date = now;
      reply.message_id = {unique_token() + "@" + address.substr(at + 1)};
      // RFC 3834 3.1.5-3.1.6: a reply to the message, threaded with it.
      if (!summary.message_id.empty()) {
        reply.in_reply_to = {summary.message_id};
        for (const auto& [name, value] : fields_of(message.substr(0, header_end(message))))
          if (name == "references") reply.references = imap::message_ids(value);
        reply.references.push_back(summary.message_id);
      }
      reply.fields.push_back({"Auto-Submitted", "auto-replied", true});  // RFC 3834 5
      const std::string text = v.text ? *v.text : (v.html ? std::string() : std::string("I am away and will read your message later."));
      if (v.html && !v.html->empty()) {
        ComposedPart plain, html;
        plain.content = text;
        html.type = "text/html";
        html.content = *v.html;
        reply.body.type = "multipart/alternative";
        reply.body.sub_parts = {plain, html};
      } else {
        reply.body.content = text;
      }
      const auto bytes = compose_message(reply);
      const auto id = outbound_.submit(handle, "", {envelope_sender}, address.substr(at + 1), bytes, "", false);
      spdlog::info("vacation {}: replied to <{}> as {}, queued as {}", handle, envelope_sender, address, id);
    } catch (const std::exception& e) {
      spdlog::warn("vacation for {}: {}", address, e.what());
    }
  }
}

}  // namespace coop::mail
