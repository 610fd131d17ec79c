// The DNS records an admin publishes for a hosted domain (coop mail dns): MX, SPF, every
// active DKIM selector, DMARC, the autoconfig and autodiscover names, and the SRV records
// of RFC 6186 and RFC 8314; and a check of what DNS says about each.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/mail/public_servers.h"
#include "workers/mail/auth/dkim_keyring.h"

namespace coop::net {
class DnsResolver;
}

namespace coop::mail {

struct DnsRecord {
  std::string name, type, value;  // as in a zone file, name without the final dot
  std::string purpose;            // one line for people
  std::string status;             // after a check: ok, missing, wrong, temporary
  std::string found;              // what DNS holds instead, when it is not ok
};

std::vector<DnsRecord> suggested_records(const std::string& domain, const MailServers& servers,
                                         const std::vector<dkim::KeyInfo>& keys);

// Asks DNS about every record at once; done runs on the resolver's io_context.
void check_records(net::DnsResolver& dns, std::vector<DnsRecord> records,
                   std::function<void(std::vector<DnsRecord>)> done);

}  // namespace coop::mail
