// SMTP command and path parsing (RFC 5321, 1870, 3030, 6152, 6531).
#include "workers/mail/smtp_parser.h"
#include "common/text.h"

#include <algorithm>
#include <charconv>

namespace coop::mail {

namespace {

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && ascii_iequals(text.substr(0, prefix.size()), prefix);
}

bool atext(unsigned char c, bool smtputf8) {
  if (c >= 0x80) return smtputf8;
  return std::isalnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool valid_domain_part(std::string_view domain, bool smtputf8) {
  if (domain.empty() || domain.size() > 255) return false;
  if (domain.front() == '[') return domain.back() == ']' && domain.size() > 2;  // address literal
  // sub-domain = Let-dig [Ldh-str]: no label starts or ends with a hyphen.
  std::size_t label = 0;
  char previous = '.';
  for (std::size_t i = 0; i < domain.size(); ++i) {
    const auto c = static_cast<unsigned char>(domain[i]);
    if (c == '.') {
      if (label == 0 || previous == '-') return false;
      label = 0;
      previous = '.';
      continue;
    }
    const bool ok = std::isalnum(c) || (c == '-' && label > 0) || (c >= 0x80 && smtputf8);
    if (!ok || ++label > 63) return false;
    previous = static_cast<char>(c);
  }
  return label > 0 && previous != '-';
}

// RFC 5321 4.1.2 Path: "<" [ A-d-l ":" ] Mailbox ">"; returns the mailbox or an error.
bool parse_path(std::string_view& text, std::string& address, bool allow_null, bool smtputf8, std::string& error) {
  // Lenient on one space after the colon, which some clients send.
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  if (text.empty() || text.front() != '<') {
    error = "501 5.5.4 Syntax: address must be in angle brackets";
    return false;
  }
  // The closing bracket that is not inside a quoted local part.
  bool quoted = false;
  std::size_t close = std::string_view::npos;
  for (std::size_t i = 1; i < text.size(); ++i) {
    if (quoted && text[i] == '\\') {
      ++i;
      continue;
    }
    if (text[i] == '"') quoted = !quoted;
    if (!quoted && text[i] == '>') {
      close = i;
      break;
    }
  }
  if (close == std::string_view::npos) {
    error = "501 5.5.4 Syntax: unterminated address";
    return false;
  }
  std::string_view inner = text.substr(1, close - 1);
  text.remove_prefix(close + 1);
  // A source route (obsolete, RFC 5321 4.1.2 and C.2) is accepted and ignored.
  if (!inner.empty() && inner.front() == '@') {
    const auto colon = inner.find(':');
    if (colon == std::string_view::npos) {
      error = "501 5.1.3 Bad source route";
      return false;
    }
    inner.remove_prefix(colon + 1);
  }
  if (inner.empty()) {
    if (!allow_null) {
      error = "501 5.1.3 Empty address";
      return false;
    }
    address.clear();
    return true;
  }
  if (!is_valid_mailbox(inner, smtputf8)) {
    bool eight_bit = std::any_of(inner.begin(), inner.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    error = eight_bit && !smtputf8 ? "553 5.6.7 Non-ASCII address needs SMTPUTF8" : "501 5.1.3 Bad address syntax";
    return false;
  }
  address = std::string(inner);
  return true;
}

}  // namespace

bool is_valid_mailbox(std::string_view address, bool smtputf8) {
  if (address.size() > 254 + 2) return false;
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0) return false;
  const auto local = address.substr(0, at);
  if (local.size() > 64 && !smtputf8) return false;
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return false;
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
      const auto c = static_cast<unsigned char>(local[i]);
      if (c == '\\') {
        if (++i + 1 >= local.size()) return false;
        continue;
      }
      if (c == '"' || c < 32 || c == 127 || (c >= 0x80 && !smtputf8)) return false;
    }
  } else {
    if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) return false;
    for (unsigned char c : local)
      if (c != '.' && !atext(c, smtputf8)) return false;
  }
  return valid_domain_part(address.substr(at + 1), smtputf8);
}

std::pair<std::string, std::string> split_address(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return {std::string(address), ""};
  return {std::string(address.substr(0, at)), ascii_lower(address.substr(at + 1))};
}

SmtpCommand parse_command(std::string_view line) {
  const auto space = line.find(' ');
  const auto verb = line.substr(0, space);
  SmtpCommand command;
  if (space != std::string_view::npos) command.argument = std::string(line.substr(space + 1));
  static const std::pair<const char*, SmtpVerb> kVerbs[] = {
      {"HELO", SmtpVerb::helo}, {"EHLO", SmtpVerb::ehlo}, {"MAIL", SmtpVerb::mail}, {"RCPT", SmtpVerb::rcpt},
      {"DATA", SmtpVerb::data}, {"BDAT", SmtpVerb::bdat}, {"RSET", SmtpVerb::rset}, {"NOOP", SmtpVerb::noop},
      {"QUIT", SmtpVerb::quit}, {"VRFY", SmtpVerb::vrfy}, {"HELP", SmtpVerb::help}, {"STARTTLS", SmtpVerb::starttls},
      {"AUTH", SmtpVerb::auth}};
  for (const auto& [name, value] : kVerbs)
    if (ascii_iequals(verb, name)) command.verb = value;
  return command;
}

MailFrom parse_mail_from(std::string_view argument) {
  MailFrom result;
  if (!istarts_with(argument, "FROM:")) {
    result.error = "501 5.5.4 Syntax: MAIL FROM:<address>";
    return result;
  }
  argument.remove_prefix(5);
  // SMTPUTF8 may appear after the path, so look ahead for it before validating the path.
  bool utf8 = false;
  {
    std::string upper(argument);
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    utf8 = upper.find(" SMTPUTF8") != std::string::npos;
  }
  if (!parse_path(argument, result.address, true, utf8, result.error)) return result;
  // RFC 5321 4.1.2 Mail-parameters: esmtp-keyword ["=" esmtp-value], space separated.
  while (!argument.empty()) {
    if (argument.front() != ' ') {
      result.error = "501 5.5.4 Syntax: parameters must follow a space";
      return result;
    }
    while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
    if (argument.empty()) break;
    const auto end = argument.find(' ');
    const auto param = argument.substr(0, end);
    argument.remove_prefix(end == std::string_view::npos ? argument.size() : end);
    const auto eq = param.find('=');
    const auto key = param.substr(0, eq);
    const auto value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (ascii_iequals(key, "SIZE")) {
      uint64_t size = 0;
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), size);
      if (ec != std::errc() || ptr != value.data() + value.size() || value.empty()) {
        result.error = "501 5.5.4 Syntax: SIZE=<octets>";
        return result;
      }
      result.size = size;
    } else if (ascii_iequals(key, "BODY")) {
      if (ascii_iequals(value, "8BITMIME") || ascii_iequals(value, "BINARYMIME"))
        result.eight_bit = true;
      else if (!ascii_iequals(value, "7BIT")) {
        result.error = "501 5.5.4 Syntax: BODY=7BIT or BODY=8BITMIME";
        return result;
      }
    } else if (ascii_iequals(key, "SMTPUTF8") && value.empty()) {
      result.smtputf8 = true;
    } else {
      result.error = "555 5.5.4 Unsupported parameter " + std::string(key.substr(0, 64));
      return result;
    }
  }
  return result;
}

RcptTo parse_rcpt_to(std::string_view argument, bool smtputf8) {
  RcptTo result;
  if (!istarts_with(argument, "TO:")) {
    result.error = "501 5.5.4 Syntax: RCPT TO:<address>";
    return result;
  }
  argument.remove_prefix(3);
  // RFC 5321 4.5.1: <Postmaster> without a domain reaches the postmaster of this host.
  while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
  if (istarts_with(argument, "<postmaster>")) {
    result.address = "postmaster";
    argument.remove_prefix(12);
  } else if (!parse_path(argument, result.address, false, smtputf8, result.error)) {
    return result;
  }
  while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
  if (!argument.empty()) result.error = "555 5.5.4 RCPT parameters are not supported";
  return result;
}

Bdat parse_bdat(std::string_view argument) {
  Bdat result;
  const auto space = argument.find(' ');
  const auto number = argument.substr(0, space);
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), result.size);
  if (number.empty() || ec != std::errc() || ptr != number.data() + number.size()) {
    result.error = "501 5.5.4 Syntax: BDAT <size> [LAST]";
    return result;
  }
  if (space != std::string_view::npos) {
    auto rest = argument.substr(space + 1);
    while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
    if (!ascii_iequals(rest, "LAST")) {
      result.error = "501 5.5.4 Syntax: BDAT <size> [LAST]";
      return result;
    }
    result.last = true;
  }
  return result;
}

bool DataReader::consume(std::string& in, std::string& out) {
  std::size_t at = 0;  // bytes of in taken so far; erased once at the end
  bool done = false;
  while (at < in.size()) {
    const std::string_view rest = std::string_view(in).substr(at);
    if (line_start_ && rest.front() == '.') {
      // A terminator or a stuffed dot: decide only with the bytes that follow it.
      if (rest.size() < 3 && std::string_view(".\r\n").substr(0, rest.size()) == rest) break;
      if (after_crlf_ && rest.substr(0, 3) == ".\r\n") {
        at += 3;
        done = true;
        break;
      }
      // RFC 5321 4.5.2: a leading dot with more on the line is removed; a lone "." that is
      // not the terminator stays, so that it cannot turn into one further on.
      if (rest.size() >= 2 && rest[1] != '\n' && !(rest[1] == '\r' && rest.size() >= 3 && rest[2] == '\n')) {
        ++at;
        line_start_ = false;
        continue;
      }
    }
    const auto eol = rest.find('\n');
    if (eol == std::string_view::npos) {
      // A long line: pass on what there is, keeping a trailing CR for the next read.
      std::size_t take = rest.size();
      if (rest.back() == '\r') --take;
      if (take == 0) break;
      out.append(rest.substr(0, take));
      at += take;
      line_start_ = false;
      continue;
    }
    const bool crlf = eol > 0 && rest[eol - 1] == '\r';
    out.append(rest.substr(0, crlf ? eol - 1 : eol));
    out.append("\r\n");
    if (!crlf) ++bare_lf_;
    after_crlf_ = crlf;
    line_start_ = true;
    at += eol + 1;
  }
  in.erase(0, at);
  return done;
}

void append_crlf_normalised(std::string_view bytes, char& previous, std::string& out) {
  std::size_t from = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != '\n' || (i > 0 ? bytes[i - 1] : previous) == '\r') continue;
    out.append(bytes.substr(from, i - from)).append("\r\n");
    from = i + 1;
  }
  out.append(bytes.substr(from));
  if (!bytes.empty()) previous = bytes.back();
}

}  // namespace coop::mail
