// DSN composition.
#include "workers/mail/outbound/dsn.h"

#include <ctime>

#include "common/mail/message.h"

namespace coop::mail {

namespace {

// A reply on one header line: no CR/LF, printable ASCII.
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) out += (c == '\r' || c == '\n' || static_cast<unsigned char>(c) >= 0x7f || c < 0x20) ? ' ' : c;
  return out.substr(0, 900);
}

}  // namespace

std::string enhanced_status(std::string_view reply) {
  // "550 5.1.1 text" or "550-5.1.1 text"
  if (reply.size() >= 9 && (reply[3] == ' ' || reply[3] == '-')) {
    const auto rest = reply.substr(4);
    const auto space = rest.find(' ');
    const auto code = rest.substr(0, space);
    int dots = 0;
    bool ok = !code.empty() && (code[0] == '2' || code[0] == '4' || code[0] == '5');
    for (char c : code) {
      if (c == '.') ++dots;
      else if (c < '0' || c > '9') ok = false;
    }
    if (ok && dots == 2) return std::string(code);
  }
  if (!reply.empty() && reply[0] == '5') return "5.0.0";
  return "4.0.0";
}

std::string build_dsn(const DsnReport& r, std::string_view original) {
  bool any_failed = false;
  for (const auto& rcpt : r.recipients) any_failed = any_failed || rcpt.failed;
  const std::string boundary = "=_coop_dsn_" + unique_token();
  const auto at = r.from.find('@');
  const std::string from_domain = at == std::string::npos ? r.reporting_host : r.from.substr(at + 1);

  std::string m;
  m += "From: Mail Delivery System <" + r.from + ">\r\n";
  m += "To: <" + r.to + ">\r\n";
  m += std::string("Subject: ") + (any_failed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)") + "\r\n";
  m += "Date: " + rfc5322_date(r.now) + "\r\n";
  m += "Message-ID: <" + unique_token() + "@" + from_domain + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834 5: no vacation reply to a report
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n\r\n";
  m += "This is a delivery status notification in MIME format.\r\n\r\n";

  // Part 1: for people.
  m += "--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";
  m += "This is the mail system at " + r.reporting_host + ".\r\n\r\n";
  if (any_failed) {
    m += "Your message could not be delivered to one or more recipients. It has been\r\n"
         "returned below (its header only). The reasons, as the receiving servers gave them:\r\n\r\n";
  } else {
    m += "Your message has not been delivered yet to one or more recipients. Nothing is\r\n"
         "needed from you: delivery is being retried until " + rfc5322_date(r.retry_until) + ".\r\n"
         "The reasons so far:\r\n\r\n";
  }
  for (const auto& rcpt : r.recipients) {
    m += "<" + rcpt.address + ">: ";
    if (!rcpt.remote.empty()) m += "host " + one_line(rcpt.remote) + " said: ";
    m += one_line(rcpt.reply) + "\r\n";
  }
  m += "\r\n";

  // Part 2: RFC 3464 2.2 per-message and 2.3 per-recipient fields.
  m += "--" + boundary + "\r\nContent-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + r.reporting_host + "\r\n";
  m += "Arrival-Date: " + rfc5322_date(r.arrival) + "\r\n";
  for (const auto& rcpt : r.recipients) {
    m += "\r\n";
    m += "Final-Recipient: rfc822; " + rcpt.address + "\r\n";
    m += std::string("Action: ") + (rcpt.failed ? "failed" : "delayed") + "\r\n";
    std::string status = enhanced_status(rcpt.reply);
    if (rcpt.failed && status[0] != '5') status = "5.4.7";   // RFC 3463: delivery time expired
    if (!rcpt.failed) status[0] = '4';
    m += "Status: " + status + "\r\n";
    if (!rcpt.remote.empty()) m += "Remote-MTA: dns; " + one_line(rcpt.remote) + "\r\n";
    if (!rcpt.reply.empty() && rcpt.reply[0] >= '2' && rcpt.reply[0] <= '5' && !rcpt.remote.empty())
      m += "Diagnostic-Code: smtp; " + one_line(rcpt.reply) + "\r\n";
    m += "Last-Attempt-Date: " + rfc5322_date(r.now) + "\r\n";
    if (!rcpt.failed) m += "Will-Retry-Until: " + rfc5322_date(r.retry_until) + "\r\n";
  }
  m += "\r\n";

  // Part 3: the original's header section, so the sender knows which message it was.
  m += "--" + boundary + "\r\nContent-Type: text/rfc822-headers\r\n\r\n";
  m += std::string(original.substr(0, header_end(original)));
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

}  // namespace coop::mail
