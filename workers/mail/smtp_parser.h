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

// The DATA phase (RFC 5321 4.1.1.4, 4.5.2): the client's bytes become message content with
// CRLF line ends and dot-stuffing undone. Only <CRLF>.<CRLF> ends the data: "." on a line
// that ends in a bare LF, or that follows one, is content, so a client (or a relay before us)
// cannot smuggle a second message behind a terminator other servers would not see
// (CVE-2023-51764 and kin). Bare LF line ends are taken as CRLF, as Postfix's
// smtpd_forbid_bare_newline=normalize does; a "." line kept as content is stored as it came.
class DataReader {
 public:
  // Moves what it can from the front of in to out; true once the terminator has been read,
  // with the bytes after it left in in. A line split across reads is passed on in pieces,
  // except that a possible terminator or a line's leading dot waits for its next bytes.
  bool consume(std::string& in, std::string& out);
  // Lines that ended in a bare LF so far (for the log).
  std::size_t bare_line_feeds() const { return bare_lf_; }

 private:
  bool line_start_ = true;
  bool after_crlf_ = true;  // the 354 reply stands for the CRLF before the first line
  std::size_t bare_lf_ = 0;
};

// BDAT chunks (RFC 3030) carry lines without dot-stuffing; a bare LF is stored as CRLF the
// same way. previous is the last byte of the chunk before, so a CR LF split across chunks
// stays one line end.
void append_crlf_normalised(std::string_view bytes, char& previous, std::string& out);

}  // namespace coop::mail
