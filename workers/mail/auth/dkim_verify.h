// DKIM verification (RFC 6376 6, with RFC 8301's and RFC 8463's algorithms): every
// signature of a message, each against the key its selector publishes in DNS.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::net {
class DnsResolver;
}

namespace coop::mail::dkim {

// RFC 6376 3.5's tags of one DKIM-Signature field.
struct Signature {
  std::string raw;  // the field as it stands, for the b= deletion of 3.7
  std::string version, algorithm, signature, body_hash, header_canon = "simple", body_canon = "simple";
  std::string domain, selector, identity, query = "dns/txt";
  std::vector<std::string> headers;
  int64_t length = -1, timestamp = -1, expiration = -1;
};

// Parses and checks the tags (RFC 6376 6.1.1); nullopt with *error (a permerror) otherwise.
std::optional<Signature> parse_signature(std::string_view raw_field, std::string* error);

// RFC 8601 2.7.1 results.
struct Verdict {
  std::string result;  // pass, fail, neutral, temperror, permerror, policy
  std::string domain, selector, algorithm;
  std::string header_b;  // the first 8 characters of b= (RFC 6008), to tell signatures apart
  std::string reason;    // why, for people and the Authentication-Results comment
};

// One signature against its key record (the TXT value of <s>._domainkey.<d>). Pure.
Verdict verify_signature(std::string_view message, const Signature& signature, std::string_view key_record,
                         int64_t now);

// The DKIM-Signature fields of a message, at most max (the rest are not checked: a flood of
// signatures must not become a flood of DNS queries).
std::vector<std::string_view> signature_fields(std::string_view message, std::size_t max = 10);

// Verifies every signature, asking DNS for the keys in parallel; done runs on the
// resolver's io_context with one verdict a signature, in the message's order.
void verify_message(net::DnsResolver& dns, std::shared_ptr<const std::string> message, int64_t now,
                    std::function<void(std::vector<Verdict>)> done);

}  // namespace coop::mail::dkim
