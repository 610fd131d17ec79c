// [workers.mail.public] over coop-mail's listeners.
#include "common/mail/public_servers.h"

#include <algorithm>
#include <vector>

#include "common/config.h"
#include "common/error.h"

namespace coop::mail {

namespace {

std::optional<uint16_t> public_port(const Config& config, const std::vector<ListenerConfig>& listeners,
                                    std::string_view name) {
  const auto it = std::find_if(listeners.begin(), listeners.end(), [&](const auto& l) { return l.name == name; });
  if (it == listeners.end()) return std::nullopt;
  const std::string key = "workers.mail.public." + std::string(name) + "_port";
  return static_cast<uint16_t>(config.get_count(key, it->port, 1, 65535));
}

}  // namespace

MailServers public_mail_servers(const Config& config) {
  MailServers servers;
  servers.provider = config.domain();
  servers.hostname = config.get_string("workers.mail.public.hostname", config.domain());
  if (!is_valid_domain(servers.hostname))
    throw Error(errc::kConfigInvalid,
                "workers.mail.public.hostname: '" + servers.hostname + "' is not a domain name (lowercase, RFC 1123)", 400);
  if (!config.worker_enabled("mail")) return servers;
  const auto listeners = config.listeners("mail");
  servers.imaps = public_port(config, listeners, "imaps");
  servers.imap = public_port(config, listeners, "imap");
  servers.submissions = public_port(config, listeners, "submissions");
  servers.submission = public_port(config, listeners, "submission");
  return servers;
}

}  // namespace coop::mail
