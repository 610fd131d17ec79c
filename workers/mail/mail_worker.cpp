// The mail worker: SMTP listeners from coop.toml on top of the mail store.
#include "workers/mail/mail_worker.h"

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/net/tcp_listener.h"
#include "common/worker_runtime.h"
#include "workers/mail/mail_api.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/smtp_session.h"

namespace coop::mail {

namespace {

std::shared_ptr<const SmtpSettings> smtp_settings(WorkerRuntime& runtime, MailService* service) {
  const auto& c = runtime.config();
  auto s = std::make_shared<SmtpSettings>();
  s->hostname = c.domain();
  auto& l = s->limits;
  l.max_message_bytes = static_cast<uint64_t>(c.get_int("workers.mail.max_message_bytes", static_cast<int64_t>(l.max_message_bytes)));
  l.max_recipients = static_cast<std::size_t>(c.get_int("workers.mail.max_recipients", static_cast<int64_t>(l.max_recipients)));
  l.max_command_line = static_cast<std::size_t>(c.get_int("workers.mail.max_command_line", static_cast<int64_t>(l.max_command_line)));
  l.max_bad_commands = static_cast<int>(c.get_int("workers.mail.max_bad_commands", l.max_bad_commands));
  l.idle_timeout = std::chrono::milliseconds(c.get_int("workers.mail.idle_timeout_ms", l.idle_timeout.count()));
  l.session_timeout = std::chrono::milliseconds(c.get_int("workers.mail.session_timeout_ms", l.session_timeout.count()));
  s->tls = net::make_server_tls_context(runtime.home().tls_cert(), runtime.home().tls_key());
  s->runner = runtime.blocking_runner();
  s->service = service;
  return s;
}

}  // namespace

MailWorker::MailWorker(WorkerRuntime& runtime)
    : service_(std::make_unique<MailService>(runtime.home())), smtp_(smtp_settings(runtime, service_.get())) {
  add_mail_routes(runtime, *service_);

  const auto& config = runtime.config();
  net::ListenerLimits limits;
  limits.max_connections = static_cast<std::size_t>(config.get_int("workers.mail.max_connections", 1024));
  limits.max_per_address = static_cast<std::size_t>(config.get_int("workers.mail.max_connections_per_address", 20));
  limits.idle_timeout = smtp_->limits.idle_timeout;
  std::vector<ListenerConfig> bound;
  for (const auto& listener : config.listeners("mail")) {
    // This slice serves inbound SMTP; submission, IMAP and JMAP come with their issues.
    if (listener.name != "smtp") continue;
    auto tcp = std::make_unique<net::TcpListener>(
        runtime.io().get_executor(), listener.address, listener.port, limits, nullptr,
        [settings = smtp_](std::shared_ptr<net::Connection> c) { start_smtp_session(std::move(c), settings); },
        [hostname = smtp_->hostname](std::shared_ptr<net::Connection> c, std::string_view reason) {
          refuse_smtp_connection(std::move(c), reason, hostname);
        });
    tcp->set_starttls_context(smtp_->tls);
    tcp->start();
    auto actual = listener;
    actual.port = tcp->port();
    bound.push_back(actual);
    spdlog::info("smtp listening on {}", actual.url());
    listeners_.push_back(std::move(tcp));
  }
  runtime.set_listeners(bound);
  runtime.on_shutdown([this] {
    for (auto& l : listeners_) l->stop();
  });
  runtime.drained_when([this] {
    for (auto& l : listeners_)
      if (l->active_connections() > 0) return false;
    return true;
  });
  runtime.on_status([this](nlohmann::json& status) {
    std::size_t active = 0;
    for (auto& l : listeners_) active += l->active_connections();
    status["smtp_connections"] = active;
    status["domains"] = service_->directory().domains().size();
  });
}

MailWorker::~MailWorker() = default;

}  // namespace coop::mail
