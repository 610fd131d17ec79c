// Outbound mail's settings and the submission path into the queue.
#include "workers/mail/outbound/outbound.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "common/config.h"
#include "common/error.h"
#include "common/mail/mailbox_formats.h"
#include "common/net/dns.h"
#include "common/secret_file.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/mail/auth/dkim_keyring.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/outbound/queue_runner.h"
#include "workers/mail/outbound/queue_store.h"

namespace coop::mail {

namespace {

using std::chrono::milliseconds;

QueueSettings queue_settings(WorkerRuntime& runtime) {
  const auto& c = runtime.config();
  QueueSettings s;
  s.hostname = c.domain();
  s.client.helo = c.domain();
  const std::string q = "workers.mail.queue.";
  s.retry_first = c.get_millis(q + "retry_first_ms", s.retry_first, milliseconds(10));
  s.retry_max = c.get_millis(q + "retry_max_ms", s.retry_max, s.retry_first);
  s.lifetime = c.get_millis(q + "lifetime_ms", s.lifetime, milliseconds(0), std::chrono::hours(24 * 30));
  s.delay_notice = c.get_millis(q + "delay_notice_ms", s.delay_notice, milliseconds(0), std::chrono::hours(24 * 30));
  s.max_deliveries = c.get_count(q + "max_deliveries", s.max_deliveries, 1, 10000);
  s.max_per_domain = c.get_count(q + "max_per_domain", s.max_per_domain, 1, 10000);
  s.client.connect_timeout = c.get_millis(q + "connect_timeout_ms", s.client.connect_timeout, milliseconds(100));
  s.client.command_timeout = c.get_millis(q + "command_timeout_ms", s.client.command_timeout, milliseconds(100));
  s.client.data_timeout = c.get_millis(q + "data_timeout_ms", s.client.data_timeout, milliseconds(100));
  s.mx_port = static_cast<uint16_t>(c.get_count(q + "mx_port", 25, 1, 65535));
  for (const auto& [domain, target] : c.get_string_table("workers.mail.routes")) s.routes[ascii_lower(domain)] = target;

  // [workers.mail.relay]: a smarthost for shards whose port 25 is blocked.
  const auto relay = c.get_string("workers.mail.relay.host", "");
  if (!relay.empty()) {
    SmtpHost host;
    host.name = relay;
    host.port = static_cast<uint16_t>(c.get_count("workers.mail.relay.port", 587, 1, 65535));
    const auto tls = c.get_string("workers.mail.relay.tls", host.port == 465 ? "implicit" : "starttls");
    if (tls == "implicit") host.tls = SmtpHost::Tls::implicit;
    else if (tls == "starttls") host.tls = SmtpHost::Tls::starttls;
    else if (tls == "none") host.tls = SmtpHost::Tls::none;
    else throw Error(errc::kConfigInvalid, "workers.mail.relay.tls: '" + tls + "' is not implicit, starttls or none", 400);
    host.verify = c.get_bool("workers.mail.relay.verify", true);
    host.username = c.get_string("workers.mail.relay.username", "");
    // The password lives in a file of its own (0600), not in coop.toml.
    const auto password_file = c.get_string("workers.mail.relay.password_file", "");
    if (!password_file.empty())
      host.password = read_secret_file(runtime.home(), password_file, "workers.mail.relay.password_file");
    s.relay = host;
  }
  return s;
}

net::DnsSettings dns_settings(const Config& c) {
  net::DnsSettings s;
  s.servers = c.get_strings("dns.servers", {});
  s.timeout = c.get_millis("dns.timeout_ms", s.timeout, milliseconds(100), milliseconds(120000));
  if (const auto ttl = c.get_int("dns.max_ttl_s", -1); ttl >= 0) s.max_ttl_seconds = static_cast<int>(std::min<int64_t>(ttl, 86400));
  return s;
}

}  // namespace

Outbound::Outbound(WorkerRuntime& runtime, MailService& service)
    : service_(service),
      queue_(std::make_unique<QueueStore>(runtime.home().root() / "mail" / "queue.db")),
      keys_(std::make_unique<dkim::Keyring>(runtime.home().keys_dir() / "dkim")),
      dns_(std::make_unique<net::DnsResolver>(runtime.io(), dns_settings(runtime.config()))),
      runner_(std::make_unique<QueueRunner>(runtime.io(), runtime.blocking_runner(), service, *queue_, *keys_, *dns_,
                                            queue_settings(runtime))) {
  runner_->start();
  runtime.on_status([this](nlohmann::json& status) {
    status["queue_messages"] = queue_->size();
    runner_->status(status);
  });
  runtime.on_shutdown([this] { runner_->stop(); });
}

Outbound::~Outbound() = default;

void Outbound::wake() { runner_->wake(); }

int64_t Outbound::submit(const std::string& handle, const std::string& sender, const std::vector<std::string>& recipients,
                         const std::string& from_domain, const std::string& message, const std::string& sent_copy,
                         bool smtputf8) {
  const auto now = static_cast<int64_t>(::time(nullptr));
  const std::string signed_message = keys_->sign(from_domain, message, now) + message;
  OutboundMessage m;
  m.blob = service_.blobs().put(signed_message);
  m.size = static_cast<int64_t>(signed_message.size());
  m.sender = sender;
  m.handle = handle;
  m.smtputf8 = smtputf8;
  const auto id = queue_->enqueue(m, recipients, queue_clock_ms());
  runner_->wake();
  // The Sent copy is a courtesy: the message is queued whatever happens to it.
  try {
    if (!sent_copy.empty() && service_.directory().settings(handle).save_sent) {
      bool existed = false;
      service_.append(handle, "Sent", sent_copy, kSeen, now, &existed);
    }
  } catch (const std::exception& e) {
    spdlog::warn("submission: the Sent copy for {} failed: {}", handle, e.what());
  }
  return id;
}

}  // namespace coop::mail
