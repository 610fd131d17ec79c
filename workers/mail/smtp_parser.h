// SMTP command lines (RFC 5321 4.1) and their arguments, parsed without I/O so a fuzzer can
// drive them. Every function returns a reply text on bad input instead of throwing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coop::mail {

enum class SmtpVerb { helo, ehlo, mail, rcpt, data, bdat, rset, noop, quit, vrfy, help, starttls, auth, unknown };

struct SmtpCommand {
  SmtpVerb verb = SmtpVerb::unknown;
  std::string argument;  // after the verb and one space, as sent
};

// line is without its CRLF.
SmtpCommand parse_command(std::string_view line);

struct MailFrom {
  std::string address;  // empty for the null reverse-path <>
  std::optional<uint64_t> size;  // RFC 1870 SIZE=
  bool eight_bit = false;        // RFC 6152 BODY=8BITMIME
  bool smtputf8 = false;         // RFC 6531 SMTPUTF8
  std::string error;             // a full reply ("501 5.5.4 ...") when the argument is bad
};

// "FROM:<a@b> SIZE=1000 BODY=8BITMIME SMTPUTF8"
MailFrom parse_mail_from(std::string_view argument);

struct RcptTo {
  std::string address;
  std::string error;
};

// "TO:<a@b>"; smtputf8 allows UTF-8 in the address (RFC 6531 3.3).
RcptTo parse_rcpt_to(std::string_view argument, bool smtputf8);

struct Bdat {
  uint64_t size = 0;
  bool last = false;
  std::string error;
};

// RFC 3030 2: "BDAT <size> [LAST]"
Bdat parse_bdat(std::string_view argument);

// RFC 5321 4.1.2 Mailbox: Local-part "@" Domain, the local part a dot-string or a quoted
// string; the domain a host name or an address literal. UTF-8 only when smtputf8.
bool is_valid_mailbox(std::string_view address, bool smtputf8);

// Splits local@domain at the last '@'; lowercases the domain.
std::pair<std::string, std::string> split_address(std::string_view address);

}  // namespace coop::mail
