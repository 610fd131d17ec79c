// DMARC (RFC 7489): does the From: domain publish a policy, and did DKIM or SPF pass for a
// domain aligned with it? Organizational domains come from the Public Suffix List (libpsl).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "workers/mail/auth/dkim_verify.h"
#include "workers/mail/auth/spf.h"

namespace coop::net {
class DnsResolver;
}

namespace coop::mail::dmarc {

// RFC 7489 3.2: the registrable domain ("example.co.uk" for "mail.example.co.uk").
std::string organizational_domain(const std::string& domain);

struct Record {
  std::string policy = "none", subdomain_policy;  // p=, sp=
  bool strict_dkim = false, strict_spf = false;   // adkim=s, aspf=s
  int percent = 100;                              // pct=
};
// RFC 7489 6.3; nullopt when the text is not a DMARC record.
std::optional<Record> parse_record(const std::string& text);

struct Outcome {
  std::string result = "none";  // pass, fail, none, temperror, permerror
  std::string policy = "none";  // what to do with a fail: none, quarantine, reject
  std::string from_domain;
  std::string reason;
};

// Evaluates the message's From: domain; done runs on the resolver's io_context.
void evaluate(net::DnsResolver& dns, const std::string& from_domain, const std::vector<dkim::Verdict>& dkim,
              const spf::Outcome& spf, std::function<void(Outcome)> done);

}  // namespace coop::mail::dmarc
