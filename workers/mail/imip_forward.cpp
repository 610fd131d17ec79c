// iMIP from mail to coop-dav's control API.
#include "workers/mail/imip_forward.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/control/client.h"
#include "common/error.h"
#include "common/paths.h"
#include "common/text.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/mime_summary.h"

namespace coop::mail {

namespace {

bool mentions_calendar(std::string_view message) {
  const auto lower = ascii_lower(message.substr(0, std::min<std::size_t>(message.size(), 1 << 20)));
  return lower.find("text/calendar") != std::string::npos || lower.find("application/ics") != std::string::npos;
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
