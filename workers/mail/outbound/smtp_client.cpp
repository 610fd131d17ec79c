// The SMTP client as one coroutine per transaction.
#include "workers/mail/outbound/smtp_client.h"

#include <openssl/ssl.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <set>

#include "common/base64.h"
#include "common/text.h"

namespace coop::mail {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kMaxReply = 64 << 10;

struct Reply {
  int code = 0;
  std::string text;  // all lines, joined by " / " for reports
  std::vector<std::string> lines;
};

// One connection's state; the timer closes the socket when an operation takes too long.
struct Conversation : std::enable_shared_from_this<Conversation> {
  Conversation(asio::io_context& io, asio::ssl::context& tls) : stream(io, tls), timer(io) {}
  asio::ssl::stream<tcp::socket> stream;
  asio::steady_timer timer;
  bool tls = false;
  std::string in;

  void arm(std::chrono::milliseconds timeout) {
    timer.expires_after(timeout);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      boost::system::error_code ignored;
      self->stream.next_layer().close(ignored);
    });
  }
  void disarm() { timer.cancel(); }

  // Arguments by value: a coroutine keeps no reference to a caller's temporary.
  awaitable<void> write(std::string bytes, std::chrono::milliseconds timeout) {
    arm(timeout);
    if (tls) co_await asio::async_write(stream, asio::buffer(bytes), use_awaitable);
    else co_await asio::async_write(stream.next_layer(), asio::buffer(bytes), use_awaitable);
    disarm();
  }

  awaitable<Reply> read_reply(std::chrono::milliseconds timeout) {
    Reply reply;
    arm(timeout);
    while (true) {
      auto buffer = asio::dynamic_buffer(in, kMaxReply);
      std::size_t n = tls ? co_await asio::async_read_until(stream, buffer, "\n", use_awaitable)
                          : co_await asio::async_read_until(stream.next_layer(), buffer, "\n", use_awaitable);
      std::string line = in.substr(0, n);
      in.erase(0, n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
          !std::isdigit(static_cast<unsigned char>(line[1])) || !std::isdigit(static_cast<unsigned char>(line[2])))
        throw std::runtime_error("malformed reply: " + line.substr(0, 200));
      reply.code = std::stoi(line.substr(0, 3));
      reply.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
      reply.text += (reply.text.empty() ? "" : " / ") + line;
      if (reply.lines.size() > 200) throw std::runtime_error("reply too long");
      if (line.size() == 3 || line[3] == ' ') break;
    }
    disarm();
    co_return reply;
  }

  awaitable<Reply> command(std::string line, std::chrono::milliseconds timeout) {
    line += "\r\n";
    co_await write(std::move(line), timeout);
    co_return co_await read_reply(timeout);
  }

  awaitable<void> handshake(std::string name, bool verify, std::chrono::milliseconds timeout) {
    SSL* ssl = stream.native_handle();
    if (!name.empty()) SSL_set_tlsext_host_name(ssl, name.c_str());
    if (verify) {
      stream.set_verify_mode(asio::ssl::verify_peer);
      SSL_set1_host(ssl, name.c_str());
    } else {
      // RFC 7435 opportunistic security: encrypt whatever certificate the MX shows.
      stream.set_verify_mode(asio::ssl::verify_none);
    }
    arm(timeout);
    co_await stream.async_handshake(asio::ssl::stream_base::client, use_awaitable);
    disarm();
    tls = true;
  }
};

// EHLO keywords, lowercased: "starttls", "size", and "auth plain" for each AUTH mechanism.
std::set<std::string> capabilities(const Reply& ehlo) {
  std::set<std::string> out;
  for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
    std::vector<std::string> words;
    std::size_t start = 0;
    const auto line = ascii_lower(ehlo.lines[i]);
    while (start < line.size()) {
      auto end = line.find(' ', start);
      if (end == std::string::npos) end = line.size();
      if (end > start) words.push_back(line.substr(start, end - start));
      start = end + 1;
    }
    if (words.empty()) continue;
    out.insert(words[0]);
    for (std::size_t w = 1; w < words.size(); ++w) out.insert(words[0] + " " + words[w]);
  }
  return out;
}

// RFC 5321 4.5.2: a line that starts with "." gets one more; the end is CRLF "." CRLF.
std::string dot_stuffed(const std::string& message) {
  std::string out;
  out.reserve(message.size() + message.size() / 64 + 8);
  bool line_start = true;
  for (char c : message) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  if (!out.empty() && out.back() != '\n') out += "\r\n";
  out += ".\r\n";
  return out;
}

bool has_eight_bit(const std::string& message) {
  for (unsigned char c : message)
    if (c >= 0x80) return true;
  return false;
}

awaitable<void> transaction(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls_context,
                            SmtpClientSettings settings, SmtpHost host, std::string sender,
                            std::vector<std::string> recipients, std::shared_ptr<const std::string> message,
                            bool smtputf8, std::function<void(SmtpTransaction)> done) {
  SmtpTransaction result;
  result.codes.assign(recipients.size(), 0);
  result.replies.assign(recipients.size(), "");
  const auto& t = settings.command_timeout;
  for (const auto& address : host.addresses) {
    auto c = std::make_shared<Conversation>(io, *tls_context);
    const std::string where = host.name + "[" + address + "]:" + std::to_string(host.port);
    try {
      boost::system::error_code ec;
      const auto ip = asio::ip::make_address(address, ec);
      if (ec) throw std::runtime_error("'" + address + "' is not an IP address");
      c->arm(settings.connect_timeout);
      co_await c->stream.next_layer().async_connect(tcp::endpoint(ip, host.port), use_awaitable);
      c->disarm();
      if (host.tls == SmtpHost::Tls::implicit) co_await c->handshake(host.name, host.verify, settings.connect_timeout);
      auto greeting = co_await c->read_reply(t);
      if (greeting.code != 220) {
        result.reply = where + " greeted with " + greeting.text;
        co_await c->command("QUIT", std::chrono::milliseconds(2000));
        continue;  // RFC 5321 5.1: the next host
      }
      auto ehlo = co_await c->command("EHLO " + settings.helo, t);
      if (ehlo.code != 250) {
        ehlo = co_await c->command("HELO " + settings.helo, t);
        if (ehlo.code != 250) {
          result.reply = where + " refused HELO: " + ehlo.text;
          continue;
        }
      }
      auto caps = capabilities(ehlo);
      if (!c->tls && host.tls != SmtpHost::Tls::none && caps.count("starttls")) {
        const auto go = co_await c->command("STARTTLS", t);
        if (go.code == 220) {
          co_await c->handshake(host.name, host.verify, t);
          ehlo = co_await c->command("EHLO " + settings.helo, t);  // RFC 3207 4.2: start over
          if (ehlo.code != 250) {
            result.reply = where + " refused EHLO after STARTTLS: " + ehlo.text;
            continue;
          }
          caps = capabilities(ehlo);
        } else if (host.tls == SmtpHost::Tls::starttls) {
          result.reply = where + " refused STARTTLS: " + go.text;
          continue;
        }
      }
      if (!c->tls && (host.tls == SmtpHost::Tls::starttls || host.tls == SmtpHost::Tls::implicit)) {
        result.reply = where + " offers no STARTTLS, which this route requires";
        continue;
      }
      if (!host.username.empty()) {
        if (!c->tls) {
          result.reply = where + ": no TLS, so the relay's password is not sent";
          continue;
        }
        const std::string plain = std::string(1, '\0') + host.username + std::string(1, '\0') + host.password;
        const auto auth = co_await c->command("AUTH PLAIN " + base64_encode(plain), t);
        if (auth.code != 235) {
          result.reached = true;
          result.remote = where;
          result.code = auth.code >= 500 ? auth.code : 454;
          result.reply = "relay refused AUTH: " + auth.text;
          co_await c->command("QUIT", std::chrono::milliseconds(2000));
          co_return done(std::move(result));
        }
      }
      result.reached = true;
      result.remote = where;
      result.reply.clear();
      std::string mail = "MAIL FROM:<" + sender + ">";
      if (caps.count("size")) mail += " SIZE=" + std::to_string(message->size());
      if (caps.count("8bitmime") && has_eight_bit(*message)) mail += " BODY=8BITMIME";
      if (smtputf8) {
        if (!caps.count("smtputf8")) {
          // RFC 6531 3.5: the message needs SMTPUTF8 and this server lacks it.
          result.code = 553;
          result.reply = where + " does not support SMTPUTF8, which these addresses need";
          co_await c->command("QUIT", std::chrono::milliseconds(2000));
          co_return done(std::move(result));
        }
        mail += " SMTPUTF8";
      }
      const auto from = co_await c->command(mail, t);
      if (from.code != 250) {
        result.code = from.code;
        result.reply = from.text;
        co_await c->command("QUIT", std::chrono::milliseconds(2000));
        co_return done(std::move(result));
      }
      std::size_t accepted = 0;
      for (std::size_t i = 0; i < recipients.size(); ++i) {
        const auto rcpt = co_await c->command("RCPT TO:<" + recipients[i] + ">", t);
        result.codes[i] = rcpt.code;
        result.replies[i] = rcpt.text;
        if (rcpt.code / 100 == 2) ++accepted;
      }
      if (accepted == 0) {
        co_await c->command("QUIT", std::chrono::milliseconds(2000));
        co_return done(std::move(result));
      }
      const auto data = co_await c->command("DATA", t);
      Reply end = data;
      if (data.code == 354) {
        co_await c->write(dot_stuffed(*message), settings.data_timeout);
        end = co_await c->read_reply(settings.data_timeout);
      }
      for (std::size_t i = 0; i < recipients.size(); ++i) {
        if (result.codes[i] / 100 != 2) continue;
        result.codes[i] = end.code;
        result.replies[i] = end.text;
      }
      try {
        co_await c->command("QUIT", std::chrono::milliseconds(2000));
      } catch (const std::exception&) {
      }
      co_return done(std::move(result));
    } catch (const std::exception& e) {
      const std::string why = where + ": " + (std::string(e.what()).find("Operation canceled") != std::string::npos ||
                                                      std::string(e.what()).find("Bad file descriptor") != std::string::npos
                                                  ? std::string("timed out")
                                                  : std::string(e.what()));
      if (result.reached) {
        // Lost mid-transaction: nothing it said about the data counts (RFC 5321 4.1.1.4).
        result.code = 451;
        result.reply = "connection lost: " + why;
        for (std::size_t i = 0; i < recipients.size(); ++i)
          if (result.codes[i] / 100 == 2) result.codes[i] = 0;
        co_return done(std::move(result));
      }
      result.reply = why;
    }
  }
  if (result.reply.empty()) result.reply = "no address to connect to for " + host.name;
  done(std::move(result));
}

}  // namespace

void smtp_send(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, const SmtpClientSettings& settings,
               const SmtpHost& host, const std::string& sender, const std::vector<std::string>& recipients,
               std::shared_ptr<const std::string> message, bool smtputf8, std::function<void(SmtpTransaction)> done) {
  asio::co_spawn(io, transaction(io, std::move(tls), settings, host, sender, recipients, std::move(message), smtputf8, std::move(done)),
                 asio::detached);
}

std::shared_ptr<asio::ssl::context> make_client_tls_context() {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                       asio::ssl::context::no_compression);
  context->set_default_verify_paths();
  return context;
}

}  // namespace coop::mail
