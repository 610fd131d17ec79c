// libFuzzer target: SMTP command lines and their MAIL/RCPT/BDAT arguments, as a client sends them.
#include <cstdint>
#include <string_view>

#include "workers/mail/smtp_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // Each line is one command, as the session splits them.
  while (!input.empty()) {
    const auto eol = input.find('\n');
    auto line = input.substr(0, eol);
    input.remove_prefix(eol == std::string_view::npos ? input.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto command = coop::mail::parse_command(line);
    switch (command.verb) {
      case coop::mail::SmtpVerb::mail: {
        const auto from = coop::mail::parse_mail_from(command.argument);
        if (from.error.empty() && !from.address.empty()) coop::mail::split_address(from.address);
        break;
      }
      case coop::mail::SmtpVerb::rcpt:
        coop::mail::parse_rcpt_to(command.argument, false);
        coop::mail::parse_rcpt_to(command.argument, true);
        break;
      case coop::mail::SmtpVerb::bdat: coop::mail::parse_bdat(command.argument); break;
      default: break;
    }
    coop::mail::is_valid_mailbox(line, true);
  }
  return 0;
}
