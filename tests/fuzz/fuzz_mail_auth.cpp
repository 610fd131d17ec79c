// libFuzzer target: what inbound authentication reads from the network and DNS: DKIM
// signatures and key records, SPF and DMARC records, Authentication-Results fields.
// Input: a first line taken as a DNS TXT value, the rest as a message.
#include <cstdint>
#include <string>
#include <string_view>

#include "workers/mail/auth/auth_results.h"
#include "workers/mail/auth/dkim_verify.h"
#include "workers/mail/auth/dmarc.h"
#include "workers/mail/auth/spf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto eol = input.find('\n');
  const std::string record(input.substr(0, eol));
  const std::string message(eol == std::string_view::npos ? std::string_view() : input.substr(eol + 1));
  using namespace coop::mail;
  spf::record_syntax_error(record);
  dmarc::parse_record(record);
  for (const auto field : dkim::signature_fields(message)) {
    std::string error;
    if (const auto sig = dkim::parse_signature(field, &error)) {
      dkim::verify_signature(message, *sig, record, 0);
      dkim::verify_signature(message, *sig, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", 0);
    }
  }
  strip_our_results(message, "mail.test");
  from_domain(message);
  return 0;
}
