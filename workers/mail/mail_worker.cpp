// The mail worker: SMTP and IMAP listeners from coop.toml on top of the mail store.
#include "workers/mail/mail_worker.h"

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/auth/member_client.h"
#include "common/error.h"
#include "common/net/cidr.h"
#include "common/net/tcp_listener.h"
#include "common/worker_runtime.h"
#include "workers/mail/mail_api.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/outbound/outbound.h"
#include "workers/mail/vacation.h"
#include "common/http/listen.h"
#include "common/http/router.h"
#include "workers/mail/imap_session.h"
#include "workers/mail/jmap/jmap.h"
#include "workers/mail/smtp_session.h"
#include "workers/mail/spam/filter.h"
#include "workers/mail/spam/greylist.h"

namespace coop::mail {

namespace {

std::shared_ptr<const SmtpSettings> smtp_settings(WorkerRuntime& runtime, MailService* service, Outbound* outbound,
                                                 spam::SpamFilter* spam, spam::Greylist* greylist, Vacation* vacation) {
  const auto& c = runtime.config();
  auto s = std::make_shared<SmtpSettings>();
  s->hostname = c.domain();
  auto& l = s->limits;
  l.max_message_bytes = c.get_count("workers.mail.max_message_bytes", l.max_message_bytes);
  l.max_recipients = c.get_count("workers.mail.max_recipients", l.max_recipients);
  l.max_command_line = c.get_count("workers.mail.max_command_line", l.max_command_line);
  l.max_bad_commands = static_cast<int>(c.get_count("workers.mail.max_bad_commands", l.max_bad_commands, 0, 1 << 30));
  l.idle_timeout = c.get_millis("workers.mail.idle_timeout_ms", l.idle_timeout);
  l.command_timeout = c.get_millis("workers.mail.command_timeout_ms", l.command_timeout);
  l.session_timeout = c.get_millis("workers.mail.session_timeout_ms", l.session_timeout);
  l.check_memory_bytes = c.get_count("workers.mail.check_memory_bytes", l.check_memory_bytes, 1 << 20);
  s->tls = net::make_server_tls_context(runtime.home().tls_cert(), runtime.home().tls_key());
  for (const auto& text : c.get_strings("workers.mail.trusted_networks", {"127.0.0.0/8", "::1/128"})) {
    const auto network = net::Cidr::parse(text);
    if (!network) throw Error(errc::kConfigInvalid, "workers.mail.trusted_networks: '" + text + "' is not an address/prefix", 400);
    s->trusted_networks.push_back(*network);
  }
  s->runner = runtime.blocking_runner();
  s->service = service;
  s->home = &runtime.home();
  if (c.get_bool("workers.mail.check_inbound", true)) s->dns = &outbound->dns();
  s->spam = spam;
  s->greylist = greylist;
  s->blocklist_dns = &outbound->dns();
  s->vacation = vacation;
  return s;
}

std::shared_ptr<const ImapSettings> imap_settings(WorkerRuntime& runtime, MailService* service,
                                                 std::shared_ptr<boost::asio::ssl::context> tls, spam::SpamFilter* spam) {
  const auto& c = runtime.config();
  auto s = std::make_shared<ImapSettings>();
  s->hostname = c.domain();
  s->tls = std::move(tls);
  s->plaintext_loopback = c.get_bool("workers.mail.imap_plaintext_loopback", false);
  s->limits.max_line = c.get_count("workers.mail.imap_max_line", 64 << 10);
  s->limits.max_literal = c.get_count("workers.mail.max_message_bytes", 50 << 20);
  s->limits.max_command = s->limits.max_literal + s->limits.max_line;
  s->autologout = c.get_millis("workers.mail.imap_autologout_ms", std::chrono::milliseconds(30 * 60 * 1000));
  s->login_timeout = c.get_millis("workers.mail.imap_login_timeout_ms", std::chrono::milliseconds(60 * 1000));
  s->runner = runtime.blocking_runner();
  s->service = service;
  s->home = &runtime.home();
  s->live = std::make_shared<auth::LiveSessions>();
  s->spam = spam;
  return s;
}

// The mail store; on the shard's first start it hosts the shard's own domain (`coop init
// --domain D` means mail for D too). Later starts leave the list as the admins made it.
std::unique_ptr<MailService> open_service(WorkerRuntime& runtime) {
  std::error_code ec;
  const bool first_start = !std::filesystem::exists(runtime.home().database("mail"), ec);
  auto service = std::make_unique<MailService>(runtime.home());
  if (first_start) {
    service->directory().add_domain(runtime.config().domain(), "");
    spdlog::info("hosting mail for {}, the shard's domain", runtime.config().domain());
  }
  return service;
}

// The spam filter's classifier and greylist, each in its own database beside mail.db.
std::unique_ptr<spam::SpamFilter> open_spam_filter(WorkerRuntime& runtime) {
  auto settings = spam::spam_settings(runtime.config());
  if (!settings.enabled) return nullptr;
  return std::make_unique<spam::SpamFilter>(runtime.home().database("spam"), std::move(settings));
}

std::unique_ptr<spam::Greylist> open_greylist(WorkerRuntime& runtime) {
  const auto settings = spam::spam_settings(runtime.config());
  if (!settings.greylist) return nullptr;
  return std::make_unique<spam::Greylist>(runtime.home().database("greylist"),
                                          spam::GreylistSettings{settings.greylist_delay, settings.greylist_forget,
                                                                 settings.greylist_pass_days});
}

// The submission listeners' settings: the port 25 limits, AUTH and the queue.
std::shared_ptr<const SmtpSettings> submission_settings(WorkerRuntime& runtime, const SmtpSettings& smtp,
                                                       Outbound* outbound) {
  auto s = std::make_shared<SmtpSettings>(smtp);
  s->submission = true;
  s->dns = nullptr;  // members' own mail is not checked as if it came from outside
  s->spam = nullptr;
  s->greylist = nullptr;
  s->vacation = nullptr;  // members' own mail gets no auto-reply from their colleagues here
  s->home = &runtime.home();
  s->outbound = outbound;
  return s;
}

}  // namespace

MailWorker::MailWorker(WorkerRuntime& runtime)
    : service_(open_service(runtime)),
      outbound_(std::make_unique<Outbound>(runtime, *service_)),
      vacation_(std::make_unique<Vacation>(*service_, *outbound_)),
      spam_(open_spam_filter(runtime)),
      greylist_(open_greylist(runtime)),
      smtp_(smtp_settings(runtime, service_.get(), outbound_.get(), spam_.get(), greylist_.get(), vacation_.get())),
      submission_(submission_settings(runtime, *smtp_, outbound_.get())) {
  add_mail_routes(runtime, *service_, *outbound_, spam_.get());

  const auto& config = runtime.config();
  net::ListenerLimits limits;
  limits.max_connections = config.get_count("workers.mail.max_connections", 1024, 1);
  limits.max_per_address = config.get_count("workers.mail.max_connections_per_address", 20);
  limits.max_per_network = config.get_count("workers.mail.max_connections_per_network", 256);
  limits.idle_timeout = smtp_->limits.command_timeout;
  std::vector<ListenerConfig> bound;
  imap_ = imap_settings(runtime, service_.get(), smtp_->tls, spam_.get());
  for (const auto& listener : config.listeners("mail")) {
    // IMAP (RFC 9051) on imap (STARTTLS) and imaps (implicit TLS, RFC 8314).
    if (listener.name == "imap" || listener.name == "imaps") {
      net::ListenerLimits imap_limits = limits;
      imap_limits.idle_timeout = imap_->login_timeout;
      auto tcp = std::make_unique<net::TcpListener>(
          runtime.io().get_executor(), listener.address, listener.port, imap_limits,
          listener.name == "imaps" ? imap_->tls : nullptr,
          [settings = imap_](std::shared_ptr<net::Connection> c) { start_imap_session(std::move(c), settings); },
          [](std::shared_ptr<net::Connection> c, std::string_view reason) { refuse_imap_connection(std::move(c), reason); });
      if (listener.name == "imap") tcp->set_starttls_context(imap_->tls);
      tcp->start();
      auto actual = listener;
      actual.port = tcp->port();
      bound.push_back(actual);
      spdlog::info("{} listening on {}", listener.name, actual.url());
      imap_listeners_.push_back(std::move(tcp));
      continue;
    }
    // JMAP (RFC 8620, RFC 8621) over HTTP, TLS with the shard's certificate for "https".
    if (listener.name == "jmap") {
      jmap_router_ = std::make_unique<http::Router>();
      jmap_router_->set_error_formatter([](int status, const std::string& code, const std::string& message) {
        return http::Response::json({{"type", "about:blank"}, {"status", status}, {"title", code}, {"detail", message}}, status);
      });
      JmapContext context;
      context.home = &runtime.home();
      context.service = service_.get();
      context.spam = spam_.get();
      context.outbound = outbound_.get();
      context.limits.max_recipients = smtp_->limits.max_recipients;
      context.limits.max_message_bytes = smtp_->limits.max_message_bytes;
      context.runner = runtime.blocking_runner();
      context.scheme = listener.scheme == "https" ? "https" : "http";
      context.io = &runtime.io();
      jmap_ = add_jmap_routes(*jmap_router_, context);
      http::ServerLimits http_limits;
      http_limits.max_body_bytes = std::max<uint64_t>(context.limits.max_size_request, context.limits.max_size_upload);
      http_limits.max_connections = limits.max_connections;
      http_limits.max_per_address = limits.max_per_address;
      http_limits.max_per_network = limits.max_per_network;
      http_limits.trusted_proxies = config.get_strings("http.trusted_proxies", {});
      jmap_server_ = http::serve_listener(runtime.io(), listener, *jmap_router_, http_limits, runtime.home());
      jmap_server_->start();
      auto actual = listener;
      actual.port = jmap_server_->port();
      bound.push_back(actual);
      spdlog::info("{} listening on {}", listener.name, actual.url());
      continue;
    }
    if (listener.name != "smtp" && listener.name != "submission" && listener.name != "submissions") continue;
    // RFC 6409 on submission (STARTTLS), RFC 8314 implicit TLS on submissions.
    const auto settings = listener.name == "smtp" ? smtp_ : submission_;
    auto tcp = std::make_unique<net::TcpListener>(
        runtime.io().get_executor(), listener.address, listener.port, limits,
        listener.name == "submissions" ? smtp_->tls : nullptr,
        [settings](std::shared_ptr<net::Connection> c) { start_smtp_session(std::move(c), settings); },
        [hostname = smtp_->hostname](std::shared_ptr<net::Connection> c, std::string_view reason) {
          refuse_smtp_connection(std::move(c), reason, hostname);
        });
    tcp->set_starttls_context(smtp_->tls);
    tcp->start();
    auto actual = listener;
    actual.port = tcp->port();
    bound.push_back(actual);
    spdlog::info("{} listening on {}", listener.name, actual.url());
    listeners_.push_back(std::move(tcp));
  }
  runtime.set_listeners(bound);
  // A suspension, a removal, a new password or a revoked app password ends the member's
  // IMAP sessions within the feed's latency (RFC 9051 7.1.5 BYE), as the other workers do.
  live_ = imap_->live;
  follower_ = std::make_unique<auth::MemberEventFollower>(runtime.home(), [live = live_, jmap = jmap_](const auth::MemberEvent& event) {
    if (!auth::ends_sessions(event)) return;
    if (const auto ended = live->end_all(event.handle, "Your access was revoked (" + event.kind + ")"))
      spdlog::info("ending {} IMAP session(s) of {} ({})", ended, event.handle, event.kind);
    if (jmap) end_jmap_member(*jmap, event.handle);  // and JMAP's remembered logins and push
  });
  runtime.on_shutdown([this] {
    for (auto& l : listeners_) l->stop();
    for (auto& l : imap_listeners_) l->stop();
    if (jmap_) stop_jmap_push(*jmap_);
    if (jmap_server_) jmap_server_->stop();
  });
  // SMTP transactions in flight finish before the worker exits. IMAP sessions live for hours
  // (IDLE) and hold nothing unacknowledged between commands: they end with the process.
  runtime.drained_when([this] {
    for (auto& l : listeners_)
      if (l->active_connections() > 0) return false;
    return true;
  });
  runtime.on_status([this](nlohmann::json& status) {
    std::size_t active = 0;
    for (auto& l : listeners_) active += l->active_connections();
    status["smtp_connections"] = active;
    std::size_t imap = 0;
    for (auto& l : imap_listeners_) imap += l->active_connections();
    status["imap_connections"] = imap;
    status["domains"] = service_->directory().domains().size();
  });
}

MailWorker::~MailWorker() {
  if (jmap_server_) jmap_server_->stop();
}

}  // namespace coop::mail
