// Takes due mail from the queue and delivers it: to members of hosted domains directly
// (it never leaves the shard), elsewhere by the domain's route, the relay host, or its MX
// (RFC 5321 5.1, null MX of RFC 7505). Failures are retried with backoff until the queue
// lifetime ends; the sender hears of delays and failures in RFC 3464 reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "common/control/router.h"
#include "workers/mail/outbound/smtp_client.h"

namespace boost::asio {
class io_context;
}

namespace coop::net {
class DnsResolver;
}

namespace coop::mail {

class MailService;
class QueueStore;
namespace dkim {
class Keyring;
}

struct QueueSettings {
  std::string hostname;  // EHLO, Reporting-MTA, postmaster@ of reports
  std::chrono::milliseconds retry_first{std::chrono::minutes(1)};
  std::chrono::milliseconds retry_max{std::chrono::hours(4)};
  std::chrono::milliseconds lifetime{std::chrono::hours(24 * 5)};
  std::chrono::milliseconds delay_notice{std::chrono::hours(4)};
  std::size_t max_deliveries = 20;  // transactions at once
  std::size_t max_per_domain = 4;   // to one destination at once
  // [workers.mail.routes] "example.org" = "host:port": no MX lookup for these domains.
  std::map<std::string, std::string> routes;
  std::optional<SmtpHost> relay;  // [workers.mail.relay]: everything else goes there
  uint16_t mx_port = 25;          // RFC 5321 4.5.4.2's port; another only for tests and labs
  SmtpClientSettings client;
};

class QueueRunner {
 public:
  QueueRunner(boost::asio::io_context& io, control::Runner runner, MailService& service, QueueStore& store,
              dkim::Keyring& keys, net::DnsResolver& dns, QueueSettings settings);
  ~QueueRunner();

  void start();
  void wake();  // something was queued or is due now
  void stop();
  void status(nlohmann::json& out);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace coop::mail
