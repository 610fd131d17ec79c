// Calendar mail (iMIP, RFC 6047) delivered to members goes on to coop-dav, which applies the
// invitations, answers and cancellations it carries to their calendars.
#pragma once

#include <string_view>
#include <vector>

namespace coop {
class Home;
}

namespace coop::mail {

struct Recipient;

// Blocking (control calls). authenticated: DMARC passed for the From: domain, so the From:
// address can be believed; coop-dav ignores what claims to come from someone else.
void forward_calendar_mail(const Home& home, std::string_view message, const std::vector<Recipient>& recipients,
                           bool authenticated);

}  // namespace coop::mail
