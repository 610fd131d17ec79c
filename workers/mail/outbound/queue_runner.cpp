// The delivery loop: due batches from queue.db, one coroutine a remote transaction.
#include "workers/mail/outbound/queue_runner.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <set>

#include "common/error.h"
#include "common/net/dns_await.h"
#include "common/text.h"
#include "workers/mail/auth/dkim_keyring.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/outbound/dsn.h"
#include "workers/mail/outbound/queue_store.h"

namespace coop::mail {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

int reply_code(const std::string& reply) {
  if (reply.size() < 3) return 0;
  for (int i = 0; i < 3; ++i)
    if (reply[i] < '0' || reply[i] > '9') return 0;
  return std::stoi(reply.substr(0, 3));
}

DeliveryOutcome outcome(const OutboundRecipient& r, int code, const std::string& reply, const std::string& remote) {
  DeliveryOutcome o;
  o.recipient_id = r.id;
  o.kind = code / 100 == 2   ? DeliveryOutcome::Kind::delivered
           : code / 100 == 5 ? DeliveryOutcome::Kind::failed
                             : DeliveryOutcome::Kind::deferred;
  o.reply = reply;
  o.remote = remote;
  return o;
}

std::vector<DeliveryOutcome> all(const DeliveryBatch& b, int code, const std::string& reply, const std::string& remote = {}) {
  std::vector<DeliveryOutcome> out;
  for (const auto& r : b.recipients) out.push_back(outcome(r, code, reply, remote));
  return out;
}

awaitable<net::DnsAnswer> resolve(net::DnsResolver& dns, const std::string& name, int type) {
  return net::ask(dns, name, type);
}

struct SmtpInitiation {
  asio::io_context* io;
  template <typename Handler>
  void operator()(Handler handler, std::shared_ptr<asio::ssl::context> tls, const SmtpClientSettings& settings,
                  const SmtpHost& host, const std::string& sender, const std::vector<std::string>& recipients,
                  std::shared_ptr<const std::string> message, bool smtputf8) const {
    auto h = std::make_shared<Handler>(std::move(handler));
    smtp_send(*io, std::move(tls), settings, host, sender, recipients, std::move(message), smtputf8,
              [h](SmtpTransaction t) { (*h)(std::move(t)); });
  }
};

// "host:port", "[v6]:port", or a bare host (port 25).
std::pair<std::string, uint16_t> split_host_port(const std::string& text) {
  std::string host = text;
  uint16_t port = 25;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    host = text.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < text.size() && text[close + 1] == ':')
      port = static_cast<uint16_t>(std::stoi(text.substr(close + 2)));
  } else if (const auto colon = text.rfind(':'); colon != std::string::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port = static_cast<uint16_t>(std::stoi(text.substr(colon + 1)));
  }
  return {host, port};
}

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

struct QueueRunner::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_context, control::Runner run, MailService& mail, QueueStore& queue, dkim::Keyring& keyring,
       net::DnsResolver& resolver, QueueSettings s)
      : io(io_context), strand(io_context.get_executor()), timer(io_context), runner(std::move(run)), service(mail),
        store(queue), keys(keyring), dns(resolver), settings(std::move(s)), tls(make_client_tls_context()) {}

  asio::io_context& io;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  control::Runner runner;
  MailService& service;
  QueueStore& store;
  dkim::Keyring& keys;
  net::DnsResolver& dns;
  QueueSettings settings;
  std::shared_ptr<asio::ssl::context> tls;

  // On the strand:
  std::set<int64_t> in_flight;              // recipient ids
  std::map<std::string, std::size_t> per_domain;
  std::size_t active = 0;
  bool ticking = false, again = false, stopped = false;
  // Read by status() from any thread.
  std::atomic<std::size_t> in_flight_count{0};
  std::atomic<uint64_t> delivered{0}, deferred{0}, failed{0};

  void tick() {
    if (stopped) return;
    if (ticking) {
      again = true;
      return;
    }
    if (active >= settings.max_deliveries) return;  // a finishing batch ticks again
    ticking = true;
    const std::vector<int64_t> busy(in_flight.begin(), in_flight.end());
    const std::size_t room = settings.max_deliveries - active;
    runner([self = shared_from_this(), busy, room] {
      std::vector<DeliveryBatch> batches;
      std::optional<int64_t> next;
      try {
        batches = self->store.due(queue_clock_ms(), room, busy);
        next = self->store.next_due();
      } catch (const std::exception& e) {
        spdlog::error("queue: reading queue.db failed: {}", e.what());
        next = queue_clock_ms() + 5000;
      }
      asio::post(self->strand, [self, batches = std::move(batches), next]() mutable {
        self->ticking = false;
        for (auto& b : batches) self->dispatch(std::move(b));
        self->schedule(next);
        if (self->again) {
          self->again = false;
          self->tick();
        }
      });
    });
  }

  void schedule(std::optional<int64_t> next) {
    // Never sleep longer than a minute: a clock change or a missed wake costs little.
    int64_t wait = 60000;
    if (next) wait = std::clamp<int64_t>(*next - queue_clock_ms(), 0, 60000);
    timer.expires_after(std::chrono::milliseconds(std::max<int64_t>(wait, 5)));
    timer.async_wait(asio::bind_executor(strand, [weak = weak_from_this()](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->tick();
    }));
  }

  void dispatch(DeliveryBatch batch) {
    auto& count = per_domain[batch.domain];
    if (count >= settings.max_per_domain) return;  // waits for that domain's next slot
    ++count;
    ++active;
    for (const auto& r : batch.recipients) in_flight.insert(r.id);
    in_flight_count = in_flight.size();
    runner([self = shared_from_this(), batch = std::move(batch)]() mutable {
      try {
        if (self->service.directory().find_domain(batch.domain)) return self->finish(batch, self->deliver_locally(batch));
        auto message = std::make_shared<const std::string>(self->service.blobs().read(batch.message.blob));
        asio::co_spawn(self->io, self->deliver_remotely(std::move(batch), std::move(message)), asio::detached);
      } catch (const std::exception& e) {
        spdlog::error("queue: message {} to {}: {}", batch.message.id, batch.domain, e.what());
        self->finish(batch, all(batch, 451, std::string("451 4.3.0 local error: ") + e.what()));
      }
    });
  }

  // Hosted domains: straight into the members' INBOX, with the Return-Path (RFC 5321 4.4).
  std::vector<DeliveryOutcome> deliver_locally(const DeliveryBatch& batch) {
    std::vector<DeliveryOutcome> out;
    std::string bytes;
    for (const auto& r : batch.recipients) {
      const auto check = service.check_recipient(r.address, static_cast<uint64_t>(batch.message.size));
      if (!check.accepted) {
        out.push_back(outcome(r, reply_code(check.reply), check.reply, settings.hostname));
        continue;
      }
      if (bytes.empty()) bytes = "Return-Path: <" + batch.message.sender + ">\r\n" + service.blobs().read(batch.message.blob);
      try {
        const auto blob = service.blobs().put(bytes);
        service.deliver(blob, bytes.size(), check.recipients, queue_clock_ms() / 1000);
        out.push_back(outcome(r, 250, "250 2.0.0 delivered to the member's INBOX", settings.hostname));
      } catch (const Error& e) {
        // A full mailbox may empty: keep trying until the queue lifetime ends.
        const std::string reply = e.code() == errc::kQuotaExceeded ? "452 4.2.2 " + std::string(e.what()) : "451 4.3.0 " + std::string(e.what());
        out.push_back(outcome(r, reply_code(reply), reply, settings.hostname));
      }
    }
    return out;
  }

  awaitable<SmtpTransaction> send(const SmtpHost& host, const DeliveryBatch& batch, std::shared_ptr<const std::string> message) {
    std::vector<std::string> recipients;
    for (const auto& r : batch.recipients) recipients.push_back(r.address);
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(SmtpTransaction)>(
        SmtpInitiation{&io}, use_awaitable, tls, settings.client, host, batch.message.sender, recipients, std::move(message),
        batch.message.smtputf8);
  }

  // A and AAAA of a host, IPv6 first (RFC 6724); temporary errors say so in *why.
  awaitable<std::vector<std::string>> addresses_of(const std::string& host, std::string* why) {
    if (is_ip(host)) co_return std::vector<std::string>{host};
    std::vector<std::string> out;
    for (int type : {net::kDnsAaaa, net::kDnsA}) {
      const auto answer = co_await resolve(dns, host, type);
      if (answer.status == net::DnsAnswer::Status::temporary) *why = "looking up " + host + ": " + answer.error;
      for (auto& a : net::parse_addresses(answer)) out.push_back(std::move(a));
    }
    co_return out;
  }

  awaitable<void> deliver_remotely(DeliveryBatch batch, std::shared_ptr<const std::string> message) {
    std::vector<DeliveryOutcome> outcomes;
    try {
      outcomes = co_await route_and_send(batch, message);
    } catch (const std::exception& e) {
      outcomes = all(batch, 451, std::string("451 4.3.0 ") + e.what());
    }
    runner([self = shared_from_this(), batch = std::move(batch), outcomes = std::move(outcomes)] {
      self->finish(batch, outcomes);
    });
  }

  awaitable<std::vector<DeliveryOutcome>> route_and_send(const DeliveryBatch& batch, std::shared_ptr<const std::string> message) {
    std::vector<SmtpHost> hosts;
    std::string why;
    if (const auto route = settings.routes.find(batch.domain); route != settings.routes.end()) {
      const auto [name, port] = split_host_port(route->second);
      SmtpHost host;
      host.name = name;
      host.port = port;
      host.addresses = co_await addresses_of(name, &why);
      hosts.push_back(std::move(host));
    } else if (settings.relay) {
      SmtpHost host = *settings.relay;
      host.addresses = co_await addresses_of(host.name, &why);
      hosts.push_back(std::move(host));
    } else {
      const auto mx = co_await resolve(dns, batch.domain, net::kDnsMx);
      using S = net::DnsAnswer::Status;
      if (mx.status == S::temporary) co_return all(batch, 451, "451 4.4.3 looking up the MX of " + batch.domain + ": " + mx.error);
      if (mx.status == S::nxdomain) co_return all(batch, 550, "550 5.1.2 the domain " + batch.domain + " does not exist");
      auto records = net::parse_mx(mx);
      if (records.size() == 1 && records[0].exchange.empty())
        co_return all(batch, 556, "556 5.1.10 " + batch.domain + " accepts no mail (null MX, RFC 7505)");
      if (records.empty()) records.push_back({0, batch.domain});  // RFC 5321 5.1: the implicit MX
      for (const auto& r : records) {
        if (r.exchange.empty()) continue;
        SmtpHost host;
        host.name = r.exchange;
        host.port = settings.mx_port;
        host.addresses = co_await addresses_of(r.exchange, &why);
        hosts.push_back(std::move(host));
      }
    }
    std::string last = why.empty() ? "no address found for " + batch.domain + "'s mail servers" : why;
    for (const auto& host : hosts) {
      if (host.addresses.empty()) continue;
      auto t = co_await send(host, batch, message);
      if (!t.reached) {
        last = t.reply;
        continue;  // RFC 5321 5.1: the next MX
      }
      std::vector<DeliveryOutcome> out;
      for (std::size_t i = 0; i < batch.recipients.size(); ++i) {
        int code = t.codes[i];
        std::string reply = t.replies[i];
        if (code == 0 || t.code != 0) {  // a session-wide answer (MAIL refused, connection lost)
          code = t.code ? t.code : 451;
          reply = t.reply;
        }
        out.push_back(outcome(batch.recipients[i], code, reply, t.remote));
      }
      co_return out;
    }
    co_return all(batch, 451, "451 4.4.1 " + last);
  }

  // On the blocking pool: backoff, expiry and reports, then one transaction in queue.db.
  void finish(const DeliveryBatch& batch, std::vector<DeliveryOutcome> outcomes) {
    const int64_t now = queue_clock_ms();
    const int64_t age = now - batch.message.created_ms;
    std::vector<DsnRecipient> failures, delays;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      auto& o = outcomes[i];
      const auto& r = batch.recipients[i];
      if (o.kind == DeliveryOutcome::Kind::deferred) {
        if (age >= settings.lifetime.count()) {
          o.kind = DeliveryOutcome::Kind::failed;
          o.reply = o.reply + " (gave up after " + std::to_string(age / 3600000) + " hours of trying)";
        } else {
          // Doubling from retry_first up to retry_max (Postfix's minimal/maximal backoff).
          int64_t delay = settings.retry_first.count();
          for (int a = 0; a < r.attempts && delay < settings.retry_max.count(); ++a) delay *= 2;
          o.next_attempt_ms = now + std::min<int64_t>(delay, settings.retry_max.count());
          if (!r.delay_notified && age >= settings.delay_notice.count()) {
            o.delay_notified = true;
            delays.push_back({r.address, false, o.reply, o.remote});
          }
        }
      }
      if (o.kind == DeliveryOutcome::Kind::failed) failures.push_back({r.address, true, o.reply, o.remote});
      spdlog::info("queue {}: to=<{}> {} via {}: {}", batch.message.id, r.address,
                   o.kind == DeliveryOutcome::Kind::delivered ? "delivered"
                   : o.kind == DeliveryOutcome::Kind::failed  ? "failed"
                                                              : "deferred",
                   o.remote.empty() ? "-" : o.remote, o.reply);
    }
    std::vector<std::pair<OutboundMessage, std::vector<std::string>>> reports;
    // RFC 3464 / RFC 5321 6.1: reports go to the envelope sender, never for a report.
    if (!batch.message.sender.empty()) {
      for (auto* list : {&failures, &delays}) {
        if (list->empty()) continue;
        try {
          reports.push_back(report(batch, *list, now));
        } catch (const std::exception& e) {
          spdlog::error("queue {}: cannot write the report: {}", batch.message.id, e.what());
        }
      }
    }
    bool recorded = true;
    try {
      store.record(outcomes, reports, now);
    } catch (const std::exception& e) {
      recorded = false;  // the recipients stay due and are tried again
      spdlog::error("queue {}: recording the outcome failed: {}", batch.message.id, e.what());
    }
    asio::post(strand, [self = shared_from_this(), batch, outcomes, recorded] {
      for (const auto& r : batch.recipients) self->in_flight.erase(r.id);
      self->in_flight_count = self->in_flight.size();
      if (--self->per_domain[batch.domain] == 0) self->per_domain.erase(batch.domain);
      --self->active;
      if (recorded)
        for (const auto& o : outcomes)
          ++(o.kind == DeliveryOutcome::Kind::delivered ? self->delivered
             : o.kind == DeliveryOutcome::Kind::failed  ? self->failed
                                                        : self->deferred);
      self->tick();
    });
  }

  std::pair<OutboundMessage, std::vector<std::string>> report(const DeliveryBatch& batch,
                                                              const std::vector<DsnRecipient>& recipients, int64_t now) {
    // From the postmaster of the sender's domain when the shard hosts it (the member's
    // own domain, signed with its keys, so DMARC aligns), else of the shard's.
    std::string domain = settings.hostname;
    const auto sender_domain = ascii_lower(batch.message.sender.substr(batch.message.sender.rfind('@') + 1));
    if (service.directory().find_domain(sender_domain)) domain = sender_domain;
    DsnReport r;
    r.reporting_host = settings.hostname;
    r.from = "postmaster@" + domain;
    r.to = batch.message.sender;
    r.arrival = batch.message.created_ms / 1000;
    r.now = now / 1000;
    r.retry_until = (batch.message.created_ms + settings.lifetime.count()) / 1000;
    r.recipients = recipients;
    std::string dsn = build_dsn(r, service.blobs().read(batch.message.blob));
    dsn = keys.sign(domain, dsn, r.now) + dsn;  // signed like every message we send
    OutboundMessage m;
    m.blob = service.blobs().put(dsn);
    m.size = static_cast<int64_t>(dsn.size());
    m.sender = "";
    return {m, {batch.message.sender}};
  }
};

QueueRunner::QueueRunner(asio::io_context& io, control::Runner runner, MailService& service, QueueStore& store,
                         dkim::Keyring& keys, net::DnsResolver& dns, QueueSettings settings)
    : impl_(std::make_shared<Impl>(io, std::move(runner), service, store, keys, dns, std::move(settings))) {}

QueueRunner::~QueueRunner() { stop(); }

void QueueRunner::start() { wake(); }

void QueueRunner::wake() {
  asio::post(impl_->strand, [impl = impl_] { impl->tick(); });
}

void QueueRunner::stop() {
  asio::post(impl_->strand, [impl = impl_] {
    impl->stopped = true;
    impl->timer.cancel();
  });
}

void QueueRunner::status(nlohmann::json& out) {
  out["queue_in_flight"] = impl_->in_flight_count.load();
  out["queue_delivered"] = impl_->delivered.load();
  out["queue_deferred"] = impl_->deferred.load();
  out["queue_failed"] = impl_->failed.load();
}

}  // namespace coop::mail
