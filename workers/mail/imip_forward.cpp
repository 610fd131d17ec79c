// iMIP from mail to coop-dav's control API.
#include "workers/mail/imip_forward.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/control/client.h"
#include "common/error.h"
#include "common/paths.h"
#include "common/text.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/mime_summary.h"

namespace coop::mail {

namespace {

// Every inbound message passes here: a search without a copy, before any MIME parsing.
bool mentions(std::string_view message, std::string_view type) {
  // type is lower case; the message's letters are folded as they are compared.
  const auto same = [](char a, char b) { return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b; };
  return std::search(message.begin(), message.end(), type.begin(), type.end(), same) != message.end();
}

bool mentions_calendar(std::string_view message) {
  return mentions(message, "text/calendar") || mentions(message, "application/ics");
}

}  // namespace

void forward_calendar_mail(const Home& home, std::string_view message, const std::vector<Recipient>& recipients,
                           bool authenticated) {
  if (recipients.empty() || !mentions_calendar(message)) return;
  const auto mail = calendar_parts(message);
  if (mail.calendars.empty() || mail.from.empty()) return;
  try {
    control::Client dav(home.socket("dav"));
    for (const auto& recipient : recipients)
      for (const auto& calendar : mail.calendars) {
        if (!is_valid_utf8(calendar)) continue;
        const nlohmann::json body = {{"from", mail.from}, {"authenticated", authenticated}, {"calendar", calendar}};
        const auto response = dav.post("/v1/itip/" + percent_encode(recipient.handle), body.dump());
        if (!response.ok()) spdlog::info("imip for {} from {}: {}", recipient.handle, mail.from, response.body);
      }
  } catch (const Error& e) {
    // Without coop-dav the mail is still delivered; the member's client may apply it.
    if (e.code() == errc::kNotRunning) spdlog::debug("imip: coop-dav is not running");
    else spdlog::warn("imip: {}", e.what());
  }
}

}  // namespace coop::mail
