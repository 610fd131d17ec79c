// libunbound in threaded async mode: answers come back through ub_fd(), which the
// io_context watches; ub_process() then runs the callbacks on our strand.
#include "common/net/dns.h"

#include <arpa/inet.h>
#include <unbound.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "common/error.h"
#include "common/text.h"

namespace coop::net {

namespace asio = boost::asio;

namespace {

// A domain name in uncompressed wire format (unbound hands RDATA out decompressed).
bool read_name(std::string_view rdata, std::size_t& pos, std::string& out) {
  out.clear();
  while (pos < rdata.size()) {
    const auto length = static_cast<unsigned char>(rdata[pos++]);
    if (length == 0) return true;
    if (length > 63 || pos + length > rdata.size()) return false;
    if (!out.empty()) out += '.';
    out.append(rdata.substr(pos, length));
    pos += length;
  }
  return false;
}

}  // namespace

std::vector<MxRecord> parse_mx(const DnsAnswer& answer) {
  std::vector<MxRecord> out;
  for (const auto& r : answer.rdata) {
    if (r.size() < 3) continue;
    MxRecord mx;
    mx.preference = static_cast<uint16_t>((static_cast<unsigned char>(r[0]) << 8) | static_cast<unsigned char>(r[1]));
    std::size_t pos = 2;
    if (!read_name(r, pos, mx.exchange)) continue;
    mx.exchange = ascii_lower(mx.exchange);
    out.push_back(std::move(mx));
  }
  std::stable_sort(out.begin(), out.end(), [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
  return out;
}

std::vector<std::string> parse_txt(const DnsAnswer& answer) {
  std::vector<std::string> out;
  for (const auto& r : answer.rdata) {
    std::string text;
    std::size_t pos = 0;
    bool ok = true;
    while (pos < r.size()) {  // RFC 1035 3.3.14: <character-string>s, joined (RFC 7208 3.3)
      const auto length = static_cast<unsigned char>(r[pos++]);
      if (pos + length > r.size()) {
        ok = false;
        break;
      }
      text.append(r, pos, length);
      pos += length;
    }
    if (ok) out.push_back(std::move(text));
  }
  return out;
}

std::vector<std::string> parse_addresses(const DnsAnswer& answer) {
  std::vector<std::string> out;
  for (const auto& r : answer.rdata) {
    char text[INET6_ADDRSTRLEN];
    if (r.size() == 4 && ::inet_ntop(AF_INET, r.data(), text, sizeof text)) out.emplace_back(text);
    if (r.size() == 16 && ::inet_ntop(AF_INET6, r.data(), text, sizeof text)) out.emplace_back(text);
  }
  return out;
}

std::vector<std::string> parse_names(const DnsAnswer& answer) {
  std::vector<std::string> out;
  for (const auto& r : answer.rdata) {
    std::size_t pos = 0;
    std::string name;
    if (read_name(r, pos, name) && !name.empty()) out.push_back(ascii_lower(name));
  }
  return out;
}

struct DnsResolver::Impl : std::enable_shared_from_this<Impl> {
  struct Pending {
    std::function<void(DnsAnswer)> done;
    int async_id = 0;
    void* cookie = nullptr;  // freed by on_result, or here when the query is cancelled
    std::unique_ptr<asio::steady_timer> timer;
  };
  // What the C callback gets: the resolver (weakly, it may be gone) and the query's id.
  struct Cookie {
    std::weak_ptr<Impl> impl;
    uint64_t id;
  };

  asio::io_context& io;
  asio::strand<asio::io_context::executor_type> strand;
  ub_ctx* ctx = nullptr;
  asio::posix::stream_descriptor fd;
  std::chrono::milliseconds timeout;
  DnsSettings settings;
  std::map<uint64_t, Pending> pending;
  uint64_t next_id = 1;
  bool watching = false;
  uint64_t generation = 0;  // of the context: bumped by flush()

  Impl(asio::io_context& io_context, const DnsSettings& dns_settings)
      : io(io_context), strand(io_context.get_executor()), fd(io_context), timeout(dns_settings.timeout),
        settings(dns_settings) {
    open();
  }

  // A fresh libunbound context (empty caches) with the settings.
  void open() {
    ctx = ub_ctx_create();
    if (!ctx) throw Error(errc::kConfigInvalid, "dns: cannot create a resolver", 500);
    ub_ctx_async(ctx, 1);  // a thread, not a forked process
    if (settings.servers.empty()) {
      if (const int rc = ub_ctx_resolvconf(ctx, nullptr); rc != 0)
        spdlog::warn("dns: /etc/resolv.conf: {}; resolving from the root", ub_strerror(rc));
    } else {
      // Forwarding to given servers (a split-horizon resolver, a test's own): local servers
      // are allowed, and unbound's built-in answers for special-use names (RFC 6761 "test.",
      // RFC 6303 private and documentation reverse zones) are left to those servers.
      ub_ctx_set_option(ctx, "do-not-query-localhost:", "no");
      ub_ctx_set_option(ctx, "unblock-lan-zones:", "yes");
      ub_ctx_set_option(ctx, "insecure-lan-zones:", "yes");
      for (const auto& server : settings.servers)
        if (const int rc = ub_ctx_set_fwd(ctx, server.c_str()); rc != 0) {
          ub_ctx_delete(ctx);
          ctx = nullptr;
          throw Error(errc::kConfigInvalid, "dns.servers: '" + server + "': " + ub_strerror(rc), 400);
        }
    }
    if (settings.max_ttl_seconds >= 0) {
      const auto ttl = std::to_string(settings.max_ttl_seconds);
      ub_ctx_set_option(ctx, "cache-max-ttl:", ttl.c_str());
      ub_ctx_set_option(ctx, "cache-max-negative-ttl:", ttl.c_str());
    }
    // Last: adding a zone finalizes the context's settings.
    if (!settings.servers.empty())
      for (const char* zone : {"test.", "invalid.", "onion.", "home.arpa.", "2.0.192.in-addr.arpa.",
                               "100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."})
        ub_ctx_zone_add(ctx, zone, "nodefault");
    fd.assign(::dup(ub_fd(ctx)));
  }

  // Drops every cached answer: questions in flight get a temporary error.
  void flush() {
    for (auto& [id, p] : pending) {
      delete static_cast<Cookie*>(p.cookie);  // their callbacks will never run now
      p.timer->cancel();
      DnsAnswer answer;
      answer.error = "the resolver was flushed";
      asio::post(io, [done = std::move(p.done), answer = std::move(answer)]() mutable { done(std::move(answer)); });
    }
    pending.clear();
    boost::system::error_code ignored;
    fd.close(ignored);
    ++generation;
    watching = false;
    ub_ctx_delete(ctx);
    open();
  }

  ~Impl() {
    boost::system::error_code ignored;
    fd.close(ignored);
    if (ctx) ub_ctx_delete(ctx);
  }

  void watch() {
    if (watching) return;
    watching = true;
    fd.async_wait(asio::posix::stream_descriptor::wait_read,
                  asio::bind_executor(strand, [self = shared_from_this(), gen = generation](const boost::system::error_code& ec) {
                    if (gen != self->generation) return;  // a wait on a context flush() replaced
                    self->watching = false;
                    if (ec) return;
                    ub_process(self->ctx);  // runs answered callbacks, here on the strand
                    if (!self->pending.empty()) self->watch();
                  }));
  }

  static void on_result(void* data, int err, ub_result* result) {
    std::unique_ptr<Cookie> cookie(static_cast<Cookie*>(data));
    auto self = cookie->impl.lock();
    DnsAnswer answer;
    if (err != 0) {
      answer.error = ub_strerror(err);
    } else if (result) {
      answer.secure = result->secure != 0;
      if (result->bogus) {
        answer.error = result->why_bogus ? result->why_bogus : "DNSSEC validation failed";
      } else if (result->rcode == 3 || result->nxdomain) {
        answer.status = DnsAnswer::Status::nxdomain;
      } else if (result->rcode != 0) {
        answer.error = "DNS rcode " + std::to_string(result->rcode);
      } else if (!result->havedata) {
        answer.status = DnsAnswer::Status::nodata;
      } else {
        answer.status = DnsAnswer::Status::ok;
        for (int i = 0; result->data[i]; ++i) answer.rdata.emplace_back(result->data[i], static_cast<std::size_t>(result->len[i]));
      }
    }
    if (result) ub_resolve_free(result);
    if (self) self->complete(cookie->id, std::move(answer));
  }

  void complete(uint64_t id, DnsAnswer answer) {
    const auto it = pending.find(id);
    if (it == pending.end()) return;  // timed out already
    auto done = std::move(it->second.done);
    pending.erase(it);
    asio::post(io, [done = std::move(done), answer = std::move(answer)]() mutable { done(std::move(answer)); });
  }

  void start(const std::string& name, int type, std::function<void(DnsAnswer)> done) {
    const uint64_t id = next_id++;
    auto cookie = std::make_unique<Cookie>(Cookie{weak_from_this(), id});
    Pending p;
    p.done = std::move(done);
    int async_id = 0;
    const int rc = ub_resolve_async(ctx, name.c_str(), type, 1 /* IN */, cookie.get(), &Impl::on_result, &async_id);
    if (rc != 0) {
      DnsAnswer answer;
      answer.error = ub_strerror(rc);
      asio::post(io, [done = std::move(p.done), answer = std::move(answer)]() mutable { done(std::move(answer)); });
      return;
    }
    p.cookie = cookie.release();  // on_result owns it now
    p.async_id = async_id;
    p.timer = std::make_unique<asio::steady_timer>(io);
    p.timer->expires_after(timeout);
    p.timer->async_wait(asio::bind_executor(strand, [weak = weak_from_this(), id](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      const auto it = self->pending.find(id);
      if (it == self->pending.end()) return;
      // A cancelled query gets no callback; one already answered still will (and frees
      // its cookie there, finding nothing pending).
      if (ub_cancel(self->ctx, it->second.async_id) == 0) delete static_cast<Cookie*>(it->second.cookie);
      DnsAnswer answer;
      answer.error = "DNS timeout";
      self->complete(id, std::move(answer));
    }));
    pending.emplace(id, std::move(p));
    watch();
  }
};

DnsResolver::DnsResolver(asio::io_context& io, const DnsSettings& settings)
    : impl_(std::make_shared<Impl>(io, settings)) {}

DnsResolver::~DnsResolver() {
  auto impl = impl_;
  asio::post(impl->strand, [impl] {
    boost::system::error_code ignored;
    impl->fd.cancel(ignored);
    for (auto& [id, p] : impl->pending) p.timer->cancel();
  });
}

asio::io_context& DnsResolver::io() const { return impl_->io; }

void DnsResolver::flush() {
  asio::post(impl_->strand, [impl = impl_] { impl->flush(); });
}

void DnsResolver::query(const std::string& name_in, int type, std::function<void(DnsAnswer)> done) {
  // libunbound reads names in presentation format: anything but letters, digits, "-", "_"
  // and the dots between labels goes in as \DDD (RFC 4343 2.1), so a name built from a
  // macro (SPF's %_ is a space) is asked as it is.
  std::string name;
  for (unsigned char c : name_in) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      name += static_cast<char>(c);
    } else {
      char escaped[6];
      std::snprintf(escaped, sizeof escaped, "\\%03u", c);
      name += escaped;
    }
  }
  asio::post(impl_->strand, [impl = impl_, name, type, done = std::move(done)]() mutable {
    impl->start(name, type, std::move(done));
  });
}

}  // namespace coop::net
