// Where mail clients and other servers reach coop-mail, as the public sees it: for client
// autoconfiguration (coop-dav) and the DNS records an admin publishes (coop mail dns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace coop {
class Config;
}

namespace coop::mail {

// Where mail clients reach coop-mail, as the public sees it.
struct MailServers {
  std::string provider;  // the shard's domain: the emailProvider id
  std::string hostname;  // what clients connect to
  // Ports by coop-mail listener name; unset when coop.toml has no such listener.
  std::optional<uint16_t> imaps, imap, submissions, submission;

  bool any() const { return imaps || imap || submissions || submission; }
};

// coop-mail's listeners in coop.toml, seen through the optional [workers.mail.public] table.
// Listener ports are the ones coop binds; an admin who publishes other ports (993 forwarded
// to 8406 by a firewall or a TLS proxy) says so there:
//   [workers.mail.public]
//   hostname = "mail.example.org"   # default: shard.domain
//   imaps_port = 993                # default: the imaps listener's port; likewise
//   imap_port = 143                 #   imap, submissions and submission
//   submissions_port = 465
//   submission_port = 587
// A server is advertised only when coop-mail has that listener (nothing at all when the mail
// worker is disabled). Throws coop::Error(errc::kConfigInvalid) for a hostname that is not a
// domain name or a port outside 1-65535.
MailServers public_mail_servers(const Config& config);

}  // namespace coop::mail
