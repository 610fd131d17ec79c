// The Authentication-Results header field (RFC 8601) coop adds to inbound mail, and the
// removal of fields that claim to be ours but came from outside (RFC 8601 5).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "workers/mail/auth/dkim.h"
#include "workers/mail/auth/dkim_verify.h"
#include "workers/mail/auth/dmarc.h"
#include "workers/mail/auth/spf.h"

namespace coop::mail {

struct InboundAuth {
  std::vector<dkim::Verdict> dkim;
  spf::Outcome spf;
  std::string mail_from;  // for smtp.mailfrom (or smtp.helo for the null path)
  std::string helo;
  dmarc::Outcome dmarc;
};

// "Authentication-Results: host;\r\n\tdkim=pass header.d=... ;\r\n\tspf=...;\r\n\tdmarc=...\r\n"
std::string authentication_results(const std::string& authserv_id, const InboundAuth& auth);

// The message without the header fields `drop` picks (dkim::header_fields: the name
// lower-cased, the whole field as sent).
std::string strip_fields(std::string_view message, const std::function<bool(const dkim::HeaderField&)>& drop);

// The message without Authentication-Results fields whose authserv-id is ours (any case).
std::string strip_our_results(std::string_view message, const std::string& authserv_id);

// The domain of the (first) From: address, lowercase; "" when there is none.
std::string from_domain(std::string_view message);

}  // namespace coop::mail
