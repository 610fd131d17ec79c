// SPF (RFC 7208): may this IP address send mail for this domain? check_host() of section 4,
// with its macros (7), DNS lookup limits (4.6.4) and explanations (6.2), asking DNS through
// the worker's asynchronous resolver.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace coop::net {
class DnsResolver;
}

namespace coop::mail::spf {

enum class Result { none, neutral, pass, fail, softfail, temperror, permerror };
std::string_view result_name(Result result);  // RFC 7208 2.6 / RFC 8601 2.7.2 names

struct Query {
  std::string ip;        // the SMTP client's address, IPv4 or IPv6 text
  std::string sender;    // MAIL FROM; "" for the null path (then postmaster@helo, 2.4)
  std::string helo;      // EHLO/HELO name
  std::string receiver;  // our host name, for %{r}
};

struct Outcome {
  Result result = Result::none;
  std::string domain;       // the domain checked (of the sender, or the HELO name)
  std::string explanation;  // for fail, from exp= (6.2) when there is one
  std::string reason;       // what decided it, for logs and Authentication-Results
};

// Why a published record would be a permerror on syntax alone (4.6, 5, 6, 7), "" when it
// parses; for `coop mail dns --check` and the fuzzer.
std::string record_syntax_error(std::string_view record);

// Runs check_host(ip, domain of sender, sender); done runs on the resolver's io_context.
void check_host(net::DnsResolver& dns, const Query& query, std::function<void(Outcome)> done);

}  // namespace coop::mail::spf
