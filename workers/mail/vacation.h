// The vacation responder (RFC 8621 8 VacationResponse, with RFC 3834's rules for automatic
// replies): while a member is away, mail delivered to their INBOX that was written to them
// by a person is answered once per sender per period.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail {

class MailService;
class Outbound;
struct Recipient;

// Seven days, as Sieve's vacation defaults to (RFC 5230 4.1).
inline constexpr int64_t kVacationPeriodSeconds = 7 * 24 * 3600;

// Why a message gets no auto-reply, or "" when it may get one (RFC 3834 2 and 3.1.8,
// RFC 5230 4.5): no envelope sender, a sender that is a robot (MAILER-DAEMON, owner-,
// -request, noreply), Auto-Submitted other than "no", Precedence bulk, list or junk, a List-*
// field, or none of the member's addresses in To or Cc.
std::string vacation_refusal(std::string_view message, const std::string& envelope_sender, const std::string& address);

class Vacation {
 public:
  Vacation(MailService& service, Outbound& outbound) : service_(service), outbound_(outbound) {}
  // After a delivery (blocking): each recipient address that reached one member's INBOX
  // whose vacation response is on gets its reply queued, from that address, to the envelope
  // sender, from the null sender (RFC 3834 3.3). Failures are logged, never thrown.
  // sender_verified: SPF or DMARC passed for the envelope sender (or inbound checks are off);
  // forged senders get nothing, so the responder cannot be turned on a stranger.
  void after_delivery(std::string_view message, const std::string& envelope_sender, bool sender_verified,
                      const std::vector<std::string>& addresses, const std::vector<Recipient>& in_inbox, int64_t now);

 private:
  MailService& service_;
  Outbound& outbound_;
};

}  // namespace coop::mail
