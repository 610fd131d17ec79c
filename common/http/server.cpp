// Beast HTTP/1.1 sessions over Unix-domain or TCP stream sockets.
#include "common/http/server.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <limits>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/http/router.h"
#include "common/http/ws_frame.h"
#include "common/net/admission.h"
#include "common/text.h"

namespace coop::http {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using local = net::local::stream_protocol;
using Tcp = net::ip::tcp;

// WebSocket connections: read size, keepalive, how long a close waits for the peer's, and
// how much one write may carry.
constexpr std::size_t kWebSocketReadBytes = 16 << 10;
constexpr auto kWebSocketIdle = std::chrono::seconds(300);
constexpr auto kWebSocketCloseTimeout = std::chrono::seconds(5);
constexpr std::size_t kWebSocketBatchFrames = 256;
constexpr std::size_t kWebSocketBatchBytes = 1 << 20;
constexpr std::size_t kWebSocketCopyBytes = 8 << 10;
constexpr std::size_t kWebSocketKeptBatchBytes = 64 << 10;

std::string peer_address(const local::socket&) { return "local"; }

// Small frames (WebSocket messages, ACKs) must not wait for Nagle's algorithm and the peer's
// delayed ACK (40 ms on Linux); responses are written whole, so nothing is lost by it.
void no_delay(local::socket&) {}
void no_delay(Tcp::socket& socket) {
  beast::error_code ignored;
  socket.set_option(Tcp::no_delay(true), ignored);
}
std::string peer_address(const Tcp::socket& socket) {
  beast::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6()).to_string();
  return address.to_string();
}

template <typename Protocol, bool Tls>
class Listener;

using PlainTcp = beast::basic_stream<Tcp, net::any_io_executor, beast::unlimited_rate_policy>;

std::atomic<uint64_t> next_websocket_id{1};

// The worker's handle on an upgraded connection. Frames queue here from any thread; the
// session's strand takes them in batches (one post per batch, not per frame).
class WebSocketConnection final : public WebSocket {
 public:
  using Frame = std::shared_ptr<const std::string>;
  WebSocketConnection(Request request, std::size_t max_queued) : request_(std::move(request)), max_queued_(max_queued) {}
  bool send(std::string text) override { return send_shared(std::make_shared<const std::string>(std::move(text))); }
  bool send_shared(Frame text) override {
    if (closed_) return false;
    if (queued_.fetch_add(text->size()) + text->size() > max_queued_) {
      // The peer stopped reading: drop it rather than buffer without bound. No closing
      // handshake: its frame would wait behind the writes the peer is not reading.
      if (!closed_.exchange(true)) abort_();
      return false;
    }
    bool post = false;
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(std::move(text));
      post = !flush_posted_;
      flush_posted_ = true;
    }
    if (post) flush_();
    return true;
  }
  void close(uint16_t code, std::string reason) override {
    if (!closed_.exchange(true)) close_(code, std::move(reason));
  }
  const std::string& remote_address() const override { return request_.remote_address; }
  const Request& request() const override { return request_; }
  uint64_t id() const override { return id_; }

  // On the strand: everything queued so far, in order.
  void take(std::deque<Frame>& into) {
    std::lock_guard lock(mutex_);
    for (auto& frame : pending_) into.push_back(std::move(frame));
    pending_.clear();
    flush_posted_ = false;
  }
  void written(std::size_t bytes) { queued_ -= bytes; }
  void mark_closed() { closed_ = true; }

  std::function<void()> flush_;  // posts a take() to the session's strand
  std::function<void(uint16_t, std::string)> close_;
  std::function<void()> abort_;

 private:
  Request request_;  // the upgrade request, without a body
  std::size_t max_queued_;
  uint64_t id_ = next_websocket_id++;
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> closed_{false};
  std::mutex mutex_;
  std::deque<Frame> pending_;
  bool flush_posted_ = false;
};

// A plain stream, or TLS on top of one (RFC 8446 through OpenSSL) for public listeners.
template <typename Protocol, bool Tls>
using StreamOf = std::conditional_t<Tls, beast::ssl_stream<PlainTcp>,
                                    beast::basic_stream<Protocol, net::any_io_executor, beast::unlimited_rate_policy>>;

template <typename Protocol, bool Tls>
class Session : public std::enable_shared_from_this<Session<Protocol, Tls>> {
 public:
  using Stream = StreamOf<Protocol, Tls>;

  Session(typename Protocol::socket socket, std::weak_ptr<Listener<Protocol, Tls>> listener, const Router& router,
          std::shared_ptr<const ServerLimits> limits, net::ssl::context* tls)
      : remote_(peer_address(socket)), stream_(make_stream((no_delay(socket), std::move(socket)), tls)), listener_(std::move(listener)),
        router_(router), limits_(std::move(limits)) {}

  const std::string& remote() const { return remote_; }
  friend class Listener<Protocol, Tls>;  // refuse()

  void start() {
    net::dispatch(lowest().get_executor(), [self = this->shared_from_this()] {
      if constexpr (Tls) {
        self->lowest().expires_after(std::chrono::seconds(10));
        self->stream_.async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->finish();
          self->read();
        });
      } else {
        self->read();
      }
    });
  }

  void close() {
    net::post(lowest().get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      self->lowest().socket().shutdown(Protocol::socket::shutdown_both, ignored);
      self->lowest().close();
    });
  }

 private:
  static Stream make_stream(typename Protocol::socket socket, net::ssl::context* tls) {
    if constexpr (Tls)
      return Stream(PlainTcp(std::move(socket)), *tls);
    else
      return Stream(std::move(socket));
  }
  auto& lowest() { return beast::get_lowest_layer(stream_); }

  // RFC 6455 4.2.1-4.2.2: the server's side of the opening handshake. From then on the
  // connection carries frames (ws_frame.h), read as they come and written in batches.
  void upgrade(bhttp::request<bhttp::string_body>& message, const WebSocketHandlers& handlers, Request request) {
    const auto key = message[bhttp::field::sec_websocket_key];
    if (message[bhttp::field::host].empty() || !ws::valid_client_key(std::string_view(key.data(), key.size()))) {
      respond(router_.error(400, errc::kBadRequest, "WebSocket handshake without a Host or a valid Sec-WebSocket-Key"), false);
      return;
    }
    if (message[bhttp::field::sec_websocket_version] != "13") {
      // 4.4: the versions this server speaks, with 426.
      auto refusal = router_.error(426, errc::kUpgradeRequired, "this server speaks WebSocket version 13");
      refusal.headers.emplace_back("Sec-WebSocket-Version", "13");
      respond(std::move(refusal), false);
      return;
    }
    // RFC 6455 4.2.2: the subprotocol, when the endpoint has one, must be among the client's.
    if (!handlers.subprotocol.empty()) {
      const auto offered = message[bhttp::field::sec_websocket_protocol];
      bool found = false;
      for (std::size_t start = 0; start <= offered.size();) {
        auto comma = offered.find(',', start);
        if (comma == beast::string_view::npos) comma = offered.size();
        auto token = offered.substr(start, comma - start);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
        found = found || std::string_view(token.data(), token.size()) == handlers.subprotocol;
        start = comma + 1;
      }
      if (!found) {
        respond(router_.error(400, errc::kBadRequest, "this endpoint speaks the " + handlers.subprotocol + " subprotocol"), false);
        return;
      }
    }
    auto reply = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::switching_protocols, 11);
    if (!handlers.subprotocol.empty()) reply->set(bhttp::field::sec_websocket_protocol, handlers.subprotocol);
    reply->set(bhttp::field::server, "coop");
    reply->set(bhttp::field::upgrade, "websocket");
    reply->set(bhttp::field::connection, "Upgrade");
    reply->set(bhttp::field::sec_websocket_accept, ws::accept_key(std::string_view(key.data(), key.size())));
    upgrade_request_ = std::move(request);
    handlers_ = &handlers;
    lowest().expires_never();  // the connection keeps its own idle check with pings
    evictable(false);
    bhttp::async_write(stream_, *reply, [self = this->shared_from_this(), reply](beast::error_code ec, std::size_t) {
      if (ec) return self->finish();
      self->opened();
    });
  }

  void opened() {
    reader_.emplace(handlers_->max_message_bytes);
    ws_in_.resize(kWebSocketReadBytes);
    heartbeat_.emplace(lowest().get_executor());
    auto connection = std::make_shared<WebSocketConnection>(std::move(upgrade_request_), handlers_->max_queued_bytes);
    std::weak_ptr<Session> weak = this->shared_from_this();
    connection->flush_ = [weak] {
      if (auto session = weak.lock()) net::post(session->lowest().get_executor(), [session] { session->flush(); });
    };
    connection->close_ = [weak](uint16_t code, std::string reason) {
      if (auto session = weak.lock())
        net::post(session->lowest().get_executor(), [session, code, reason = std::move(reason)] {
          if (!session->gone_ && !session->close_sent_) session->start_close(code, reason);
        });
    };
    connection->abort_ = [weak] {
      if (auto session = weak.lock())
        net::post(session->lowest().get_executor(), [session] {
          beast::error_code ignored;
          session->lowest().socket().close(ignored);  // pending reads and writes fail: gone()
        });
    };
    connection_ = connection;
    call([&] {
      if (handlers_->on_open) handlers_->on_open(connection_);
    });
    // Frames the client sent right behind its handshake came in with the request.
    if (buffer_.size() > 0) {
      const std::string early = beast::buffers_to_string(buffer_.data());
      buffer_.consume(buffer_.size());
      consume(early);
    }
    if (gone_) return;
    if (!close_sent_) beat();  // else the close deadline is already set
    ws_read();
  }

  // Handler exceptions never escape into Asio: the connection is closed with 1011.
  template <typename F>
  void call(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      spdlog::error("websocket handler: {}", e.what());
      if (connection_) connection_->close(ws::kInternalError, "internal error");
    }
  }

  // Reading goes on after a close frame is sent, until the peer's close or end of stream, so
  // that the peer's last bytes are read rather than answered with a reset.
  void ws_read() {
    stream_.async_read_some(net::buffer(ws_in_), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      // A read that completed after the session ended (write error, abort) delivers nothing.
      if (ec || self->gone_) return self->gone();
      self->heard_ = true;
      self->consume(std::string_view(self->ws_in_.data(), n));
      if (!self->gone_) self->ws_read();
    });
  }

  void consume(std::string_view bytes) {
    if (gone_ || reader_->done()) return;
    events_.clear();
    reader_->feed(bytes, events_);
    for (auto& event : events_) {
      switch (event.kind) {
        case ws::Event::Kind::text:
        case ws::Event::Kind::binary:
          // 5.5.1: after its close frame the server may discard what still arrives.
          if (close_sent_) break;
          call([&] {
            if (handlers_->on_message) handlers_->on_message(connection_, std::move(event.payload));
          });
          if (gone_) return;
          break;
        case ws::Event::Kind::ping:
          // 5.5.3: a pong with the ping's data, ahead of queued messages; only the latest
          // ping is answered, so a peer that pings without reading holds one pong at most.
          if (!close_sent_) {
            pong_frame_ = frame(ws::Opcode::pong, event.payload);
            if (!writing_) ws_write();
          }
          break;
        case ws::Event::Kind::pong:
          break;
        case ws::Event::Kind::close:
          close_received_ = true;
          connection_->mark_closed();
          if (!close_sent_)
            start_close(event.code == ws::kNoStatus ? 0 : event.code, "");  // 5.5.1: echo the code
          else if (close_written_)
            gone();
          return;
        case ws::Event::Kind::error:
          // 7.1.7: fail the connection with a close frame saying why.
          spdlog::debug("websocket {}: {} ({})", remote_, event.payload, event.code);
          if (!close_sent_) start_close(event.code, event.payload);
          return;
      }
    }
  }

  // 7.1.2: the close frame goes after the messages queued before it; nothing after it.
  void start_close(uint16_t code, const std::string& reason) {
    if (gone_) return;
    close_sent_ = true;
    connection_->mark_closed();
    connection_->take(outbox_);
    close_frame_ = frame(ws::Opcode::close, code == 0 ? std::string() : ws::close_payload(code, reason));
    // A peer that never answers the close is let go after a while.
    heartbeat_->expires_after(kWebSocketCloseTimeout);
    heartbeat_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec) self->gone();
    });
    if (!writing_) ws_write();
  }

  static std::string frame(ws::Opcode opcode, std::string_view payload) {
    unsigned char header[10];
    const std::size_t length = ws::encode_header(opcode, payload.size(), header);
    std::string out(reinterpret_cast<const char*>(header), length);
    out += payload;
    return out;
  }

  // Keepalive (as Beast's suggested server settings did): a ping after half the idle time
  // without a byte from the peer; the connection ends when the next half passes silent too,
  // or when one write has waited that long for a peer that does not read.
  void beat() {
    if (close_sent_) return;
    heartbeat_->expires_after(kWebSocketIdle / 2);
    heartbeat_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->gone_ || self->close_sent_) return;
      const bool write_stuck = self->writing_ && std::chrono::steady_clock::now() - self->write_started_ > kWebSocketIdle / 2;
      if (write_stuck) {
        beast::error_code ignored;
        self->lowest().socket().close(ignored);
        return;
      }
      if (self->heard_) {
        self->heard_ = false;
        self->pinged_ = false;
      } else if (self->pinged_) {
        beast::error_code ignored;
        self->lowest().socket().close(ignored);
        return;
      } else {
        self->pinged_ = true;
        self->ping_due_ = true;
        if (!self->writing_) self->ws_write();
      }
      self->beat();
    });
  }

  void flush() {
    if (gone_ || !connection_ || close_sent_) return;
    connection_->take(outbox_);
    if (!writing_) ws_write();
  }

  // Everything queued leaves in as few writes as it can: control frames first, then up to
  // kWebSocketBatchFrames messages; small ones are copied behind their headers into one buffer,
  // large ones are sent from the shared copy every recipient holds.
  void ws_write() {
    if (close_written_ || (outbox_.empty() && pong_frame_.empty() && !ping_due_ && close_frame_.empty())) {
      writing_ = false;
      return;
    }
    writing_ = true;
    write_started_ = std::chrono::steady_clock::now();
    batch_.clear();
    buffers_.clear();
    in_flight_.clear();
    batch_payload_bytes_ = 0;
    std::size_t frames = std::min(outbox_.size(), kWebSocketBatchFrames);
    std::size_t copied = 0, total = 0, taken = 0;
    const std::string ping = ping_due_ ? frame(ws::Opcode::ping, "") : std::string();
    copied += pong_frame_.size() + ping.size();
    for (; taken < frames && total < kWebSocketBatchBytes; ++taken) {
      const std::size_t size = outbox_[taken]->size();
      total += size;
      copied += 10 + (size <= kWebSocketCopyBytes ? size : 0);
    }
    const bool with_close = taken == outbox_.size() && !close_frame_.empty();
    if (with_close) copied += close_frame_.size();
    batch_.reserve(copied);  // buffers_ point into batch_: it must not move
    std::size_t segment_start = 0;
    auto close_segment = [&] {
      if (batch_.size() > segment_start) buffers_.emplace_back(batch_.data() + segment_start, batch_.size() - segment_start);
      segment_start = batch_.size();
    };
    batch_ += pong_frame_;
    batch_ += ping;
    pong_frame_.clear();
    ping_due_ = false;
    for (std::size_t i = 0; i < taken; ++i) {
      auto payload = std::move(outbox_.front());
      outbox_.pop_front();
      unsigned char header[10];
      batch_.append(reinterpret_cast<const char*>(header), ws::encode_header(ws::Opcode::text, payload->size(), header));
      batch_payload_bytes_ += payload->size();
      if (payload->size() <= kWebSocketCopyBytes) {
        batch_ += *payload;
      } else {
        close_segment();
        buffers_.emplace_back(payload->data(), payload->size());
        in_flight_.push_back(std::move(payload));
      }
    }
    if (with_close) {
      batch_ += close_frame_;
      close_frame_.clear();
    }
    close_segment();
    net::async_write(stream_, buffers_, [self = this->shared_from_this(), with_close](beast::error_code ec, std::size_t) {
      self->connection_->written(self->batch_payload_bytes_);
      self->in_flight_.clear();
      // A burst's buffer is not kept by a connection that goes quiet after it.
      if (self->batch_.capacity() > kWebSocketKeptBatchBytes) std::string().swap(self->batch_);
      if (ec) return self->gone();
      if (with_close) {
        self->close_written_ = true;
        self->writing_ = false;
        // 7.1.1: the server ends its side of the TCP connection once the close is out.
        beast::error_code ignored;
        self->lowest().socket().shutdown(Protocol::socket::shutdown_send, ignored);
        if (self->close_received_) self->gone();
        return;
      }
      if (!self->close_sent_) self->connection_->take(self->outbox_);
      self->ws_write();
    });
  }

  // Once: the worker hears of it, then the session ends.
  void gone() {
    if (gone_) return;
    gone_ = true;
    if (connection_) {
      connection_->mark_closed();
      call([&] {
        if (handlers_->on_close) handlers_->on_close(connection_);
      });
    }
    finish();
  }

  void read() {
    parser_.emplace();
    // The limit depends on the request (a body gate may allow more): on_header sets it.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->header_limit(static_cast<std::uint32_t>(limits_->max_header_bytes));
    lowest().expires_after(limits_->idle_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  // The head is in (a Content-Length over the body limit already failed it with body_limit).
  void on_header(beast::error_code ec) {
    if (ec || parser_->is_done()) return on_read(ec);
    const auto& head = parser_->get();
    {
      const auto target = head.target();
      const std::string_view path(target.data(), std::min(target.size(), target.find('?')));
      const auto method = head.method_string();
      if (const auto* gate = router_.body_gate(std::string_view(method.data(), method.size()), path)) return gate_body(*gate);
    }
    // A declared length over the limit is refused before its body is read.
    if (const auto length = parser_->content_length(); length && *length > limits_->max_body_bytes)
      return on_read(bhttp::error::body_limit);
    parser_->body_limit(limits_->max_body_bytes);
    // RFC 9110 10.1.1: a client that sent "Expect: 100-continue" waits for the interim answer
    // before its body (curl for uploads over 1 MB, litmus).
    if (head.version() >= 11 && beast::iequals(head[bhttp::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                         if (ec) return self->finish();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  // Over the listener's caps: plain HTTP hears 503 (RFC 9110 15.6.4) and is let go after a
  // lingering read, so the answer is not lost to a reset; TLS is closed at once.
  void refuse() {
    net::dispatch(lowest().get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      if constexpr (Tls) {
        self->lowest().socket().close(ignored);
      } else {
        static constexpr std::string_view kBusy =
            "HTTP/1.1 503 Service Unavailable\r\nServer: coop\r\nRetry-After: 5\r\nContent-Type: text/plain\r\n"
            "Content-Length: 32\r\nConnection: close\r\n\r\ntoo many connections, try later\n";
        self->lowest().expires_after(std::chrono::seconds(5));
        net::async_write(self->stream_, net::buffer(kBusy.data(), kBusy.size()), [self](beast::error_code ec, std::size_t) {
          beast::error_code ignored;
          if (ec) return self->lowest().socket().close(ignored);
          self->lowest().socket().shutdown(Protocol::socket::shutdown_send, ignored);
          self->linger(false);
        });
      }
    });
  }
  // Reads and drops what the client still sends after our last answer, until it closes or the
  // deadline set before: a connection the listener admitted then ends as any other does.
  void linger(bool admitted) {
    head_.resize(4096);
    stream_.async_read_some(net::buffer(head_), [self = this->shared_from_this(), admitted](beast::error_code ec, std::size_t) {
      beast::error_code ignored;
      if (ec) return admitted ? self->finish() : self->lowest().socket().close(ignored);
      self->linger(admitted);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      finish();
      return;
    }
    // Refused mid-request, the client may still be sending: the answer, then what follows read
    // and dropped for a few seconds (refuse_upload), so that it reads the answer and not a
    // reset, which over TLS it would get at once.
    if (ec == bhttp::error::body_limit) {
      refuse_upload(router_.error(413, errc::kPayloadTooLarge, "request body exceeds " + std::to_string(limits_->max_body_bytes) + " bytes"));
      return;
    }
    if (ec == bhttp::error::header_limit) {
      refuse_upload(router_.error(431, errc::kHeadersTooLarge, "request headers too large"));
      return;
    }
    if (ec) {
      refuse_upload(router_.error(400, errc::kBadRequest, "malformed HTTP request: " + ec.message()));
      return;
    }

    auto message = parser_->release();
    const bool keep_alive = message.keep_alive();
    Request request;
    if (auto refusal = fill_request(message, request)) {
      respond(std::move(*refusal), false);
      return;
    }
    if (beast::websocket::is_upgrade(message)) {
      if (const auto* handlers = router_.websocket(request.path)) {
        if (!handlers->admit) return upgrade(message, *handlers, std::move(request));
        // Admission (credentials) may take a while: the handshake waits for its answer.
        lowest().expires_never();
        evictable(false);
        auto held = std::make_shared<bhttp::request<bhttp::string_body>>(std::move(message));
        auto head = std::make_shared<Request>(std::move(request));
        handlers->admit(*head, [self = this->shared_from_this(), held, head, handlers](std::optional<Response> refusal) {
          net::post(self->lowest().get_executor(), [self, held, head, handlers, refusal = std::move(refusal)]() mutable {
            if (refusal) self->respond(std::move(*refusal), false);
            else self->upgrade(*held, *handlers, std::move(*head));
          });
        });
        return;
      }
    }
    request.body = std::move(message.body());
    // A long-poll handler may hold the request for a while: no idle timeout meanwhile.
    lowest().expires_never();
    evictable(false);
    auto self = this->shared_from_this();
    router_.dispatch(std::move(request), [self, keep_alive](Response response) {
      net::post(self->lowest().get_executor(), [self, keep_alive, response = std::move(response)]() mutable {
        self->respond(std::move(response), keep_alive);
      });
    });
  }

  // The request line and fields as handlers see them; a refusal when they are not acceptable.
  template <typename Message>
  std::optional<Response> fill_request(const Message& message, Request& request) {
    head_only_ = message.method() == bhttp::verb::head;
    http10_ = message.version() < 11;
    request.method = std::string(message.method_string());
    request.remote_address = remote_;
    const auto target = message.target();
    if (!parse_target(std::string_view(target.data(), target.size()), request))
      return router_.error(400, errc::kBadRequest, "bad request target");
    for (const auto& field : message) {
      const auto raw_name = field.name_string();
      const auto value = field.value();
      // Values reach error texts, JSON and logs; RFC 9110 5.5 keeps obs-text only for legacy.
      if (!is_valid_utf8(std::string_view(value.data(), value.size())))
        return router_.error(400, errc::kBadRequest, "a request header is not UTF-8");
      auto& slot = request.headers[ascii_lower(std::string_view(raw_name.data(), raw_name.size()))];
      slot += (slot.empty() ? "" : ", ") + std::string(value);
    }
    from_trusted_proxy(request);
    return std::nullopt;
  }

  // A body behind a gate (Router::BodyGate): the head is judged first, then the body goes to
  // a spool file, read a piece at a time with the idle timeout renewed for each piece.
  void gate_body(const Router::BodyGate& gate) {
    Request head;
    if (auto refusal = fill_request(parser_->get(), head)) return refuse_upload(std::move(*refusal));
    lowest().expires_never();  // deciding may take a password hash
    evictable(false);
    auto self = this->shared_from_this();
    gate.decide(head, [self, gate = &gate](Router::BodyAdmission admission) {
      net::post(self->lowest().get_executor(), [self, gate, admission = std::move(admission)]() mutable {
        self->admitted(*gate, std::move(admission));
      });
    });
  }

  void admitted(const Router::BodyGate& gate, Router::BodyAdmission admission) {
    if (admission.refusal) return refuse_upload(std::move(*admission.refusal));  // the body is never read
    spool_ = gate.spool_dir / ("upload-" + std::to_string(::getpid()) + "-" + std::to_string(++spool_counter_) + "-" +
                               std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    file_parser_.emplace(std::move(*parser_));
    parser_.reset();
    file_parser_->body_limit(admission.max_bytes);
    beast::error_code ec;
    std::error_code made;
    std::filesystem::create_directories(gate.spool_dir, made);
    file_parser_->get().body().open(spool_.c_str(), beast::file_mode::write_new, ec);
    if (ec) {
      spdlog::error("http: cannot open {} for an upload: {}", spool_.string(), ec.message());
      file_parser_.reset();
      spool_.clear();
      return respond(router_.error(507, errc::kInternal, "cannot store the upload now"), false);
    }
    const auto& head = file_parser_->get();
    if (head.version() >= 11 && beast::iequals(head[bhttp::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      lowest().expires_after(limits_->idle_timeout);
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                         if (ec) return self->spooled(ec);
                         self->read_spooled();
                       });
      return;
    }
    read_spooled();
  }

  // An upload refused before (or while) its body is read: the answer, then the rest of the
  // body read and dropped for a few seconds, so the client reads the answer and not a reset.
  void refuse_upload(Response response) {
    drain_after_response_ = true;
    respond(std::move(response), false);
  }

  void read_spooled() {
    if (file_parser_->is_done()) return spooled({});
    lowest().expires_after(limits_->idle_timeout);
    bhttp::async_read_some(stream_, buffer_, *file_parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->spooled(ec);
      self->read_spooled();
    });
  }

  void drop_spool() {
    if (spool_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove(spool_, ignored);
    spool_.clear();
  }

  void spooled(beast::error_code ec) {
    if (ec) {
      const bool too_large = ec == bhttp::error::body_limit;
      file_parser_.reset();
      drop_spool();
      if (too_large) return refuse_upload(router_.error(413, errc::kPayloadTooLarge, "the upload exceeds what may be stored"));
      return finish();
    }
    auto message = file_parser_->release();
    file_parser_.reset();
    message.body().close();
    const bool keep_alive = message.keep_alive();
    Request request;
    if (auto refusal = fill_request(message, request)) {
      drop_spool();
      return respond(std::move(*refusal), false);
    }
    request.body_file = spool_;
    auto self = this->shared_from_this();
    router_.dispatch(std::move(request), [self, keep_alive](Response response) {
      net::post(self->lowest().get_executor(), [self, keep_alive, response = std::move(response)]() mutable {
        self->drop_spool();  // what the handler did not keep
        self->respond(std::move(response), keep_alive);
      });
    });
  }

  // Behind a trusted reverse proxy ([http] trusted_proxies) the client is the address the
  // proxy appended to X-Forwarded-For, its last entry (what came before it, the client may
  // have written); from anyone else the header means nothing.
  void from_trusted_proxy(Request& request) const {
    if (!from_proxy_) return;
    const auto it = request.headers.find("x-forwarded-for");
    if (it == request.headers.end()) return;
    const auto& value = it->second;
    const auto comma = value.rfind(',');
    std::string last = value.substr(comma == std::string::npos ? 0 : comma + 1);
    last.erase(0, last.find_first_not_of(" \t"));
    last.erase(last.find_last_not_of(" \t") + 1);
    boost::system::error_code ec;
    const auto address = net::ip::make_address(last, ec);
    if (!ec) request.remote_address = address.to_string();
  }

  // RFC 9112 4-6: the status line and fields are written here, straight into one string,
  // and go out with the body in one gather write (Beast's serializer cost more than the
  // rest of a small static response).
  void respond(Response response, bool keep_alive) {
    const int status = response.status;
    // The bytes stay alive until the write is done; the view points into them.
    const std::shared_ptr<const std::string> keep =
        response.shared_body ? response.shared_body : std::make_shared<const std::string>(std::move(response.body));
    std::string_view body = *keep;
    // 1xx, 204 and 304 carry no content (RFC 9110 6.4.1).
    const bool no_content = status < 200 || status == 204 || status == 304;
    std::string& h = head_;
    h.clear();
    const auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
    h.append(http10_ ? "HTTP/1.0 " : "HTTP/1.1 ").append(std::to_string(status)).append(" ");
    h.append(reason.data(), reason.size()).append("\r\nServer: coop\r\n");
    auto field = [&h](std::string_view name, std::string_view value) {
      h.append(name).append(": ");
      // A value never ends the field early: CR and LF become spaces (no header injection).
      for (char c : value) h += (c == '\r' || c == '\n') ? ' ' : c;
      h.append("\r\n");
    };
    if (!response.content_type.empty() && !no_content) field("Content-Type", response.content_type);
    for (const auto& [name, value] : response.headers) field(name, value);
    const auto file = response.file;
    const auto stream = response.stream;
    if (stream && !head_only_ && !no_content) keep_alive = false;  // the body ends with the connection
    if (!no_content && !(stream && !head_only_)) field("Content-Length", std::to_string(file ? file->size : body.size()));
    if (!keep_alive && !http10_) field("Connection", "close");
    if (keep_alive && http10_) field("Connection", "keep-alive");
    h.append("\r\n");
    if (head_only_ || no_content) body = {};
    lowest().expires_after(limits_->idle_timeout);
    if (stream) {
      if (head_only_ || no_content) {
        stream->cancel();
      } else {
        net::async_write(stream_, net::buffer(head_), [self = this->shared_from_this(), stream](beast::error_code ec, std::size_t) {
          if (ec) {
            stream->cancel();
            return self->responded(ec, false);
          }
          self->lowest().expires_never();
          self->pump(stream);
        });
        return;
      }
    }
    if (file && !head_only_ && !no_content) {
      net::async_write(stream_, net::buffer(head_), [self = this->shared_from_this(), file, keep_alive](beast::error_code ec, std::size_t) {
        if (ec) return self->responded(ec, keep_alive);
        self->send_file(file, 0, keep_alive);
      });
      return;
    }
    std::array<net::const_buffer, 2> buffers{net::buffer(head_), net::buffer(body.data(), body.size())};
    net::async_write(stream_, buffers, [self = this->shared_from_this(), keep, keep_alive](beast::error_code ec, std::size_t) {
      self->responded(ec, keep_alive);
    });
  }

  // A file body, a piece at a time: memory stays flat for any size, and the idle timeout is
  // renewed for each piece a slow reader takes.
  void send_file(std::shared_ptr<Response::File> file, uint64_t offset, bool keep_alive) {
    if (offset >= file->size) return responded({}, keep_alive);
    constexpr std::size_t kPiece = 256 << 10;
    file_piece_.resize(static_cast<std::size_t>(std::min<uint64_t>(kPiece, file->size - offset)));
    const auto got = ::pread(file->fd, file_piece_.data(), file_piece_.size(), static_cast<off_t>(offset));
    if (got <= 0) {
      // The file shrank or failed under us: the length promised cannot be kept, so the
      // connection ends and the client sees a short body.
      spdlog::error("http: reading a response body failed at {} of {}", offset, file->size);
      return responded(net::error::broken_pipe, false);
    }
    lowest().expires_after(limits_->idle_timeout);
    net::async_write(stream_, net::buffer(file_piece_.data(), static_cast<std::size_t>(got)),
                     [self = this->shared_from_this(), file, offset, keep_alive](beast::error_code ec, std::size_t n) {
                       if (ec) return self->responded(ec, keep_alive);
                       self->send_file(file, offset + n, keep_alive);
                     });
  }

  // A streamed body: each piece as the stream hands it out, written on this connection's
  // strand; a failed write tells the stream the client is gone.
  void pump(std::shared_ptr<Response::Stream> stream) {
    stream->next([self = this->shared_from_this(), stream](std::optional<std::string> piece) {
      net::post(self->stream_.get_executor(), [self, stream, piece = std::move(piece)]() mutable {
        if (!piece) return self->responded({}, false);
        self->stream_piece_ = std::move(*piece);
        self->lowest().expires_after(self->limits_->idle_timeout);
        net::async_write(self->stream_, net::buffer(self->stream_piece_), [self, stream](beast::error_code ec, std::size_t) {
          if (ec) {
            stream->cancel();
            return self->responded(ec, false);
          }
          // Waiting for the stream's next piece is not idleness; a write that stalls is.
          self->lowest().expires_never();
          self->pump(stream);
        });
      });
    });
  }

  void responded(beast::error_code ec, bool keep_alive) {
    if (ec || !keep_alive) {
      beast::error_code ignored;
      lowest().socket().shutdown(Protocol::socket::shutdown_send, ignored);
      if (!ec && drain_after_response_) {
        drain_after_response_ = false;
        lowest().expires_after(std::chrono::seconds(5));
        return linger(true);
      }
      finish();
      return;
    }
    evictable(true);
    read();
  }

  void finish();
  // Tells the listener whether this connection may be closed to make room for a new one.
  void evictable(bool yes) {
    if (auto listener = listener_.lock()) listener->set_evictable(this, yes);
  }

  std::string remote_;
  coop::net::Admission::Id admission_id_ = 0;  // set by the listener before start()
  bool from_proxy_ = false;                      // the peer is a trusted proxy: set with admission_id_
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::request_parser<bhttp::file_body>> file_parser_;  // a gated body, to spool_
  std::filesystem::path spool_;
  uint64_t spool_counter_ = 0;
  std::string file_piece_;  // a piece of a file response, while it is written
  std::string stream_piece_;  // a piece of a streamed response, while it is written
  bool drain_after_response_ = false;
  std::weak_ptr<Listener<Protocol, Tls>> listener_;
  const Router& router_;
  std::shared_ptr<const ServerLimits> limits_;  // the listener's, shared by its sessions
  bool head_only_ = false;
  bool http10_ = false;
  std::string head_;  // the response's status line and fields, while it is written
  // After an upgrade.
  const WebSocketHandlers* handlers_ = nullptr;
  Request upgrade_request_;  // until the connection object takes it
  std::shared_ptr<WebSocketConnection> connection_;
  std::optional<ws::FrameReader> reader_;
  std::vector<ws::Event> events_;
  std::vector<char> ws_in_;
  std::optional<net::steady_timer> heartbeat_;  // keepalive, then the close deadline
  bool heard_ = false, pinged_ = false;
  std::deque<std::shared_ptr<const std::string>> outbox_;
  std::string pong_frame_;  // the answer to the latest ping, until it is written
  bool ping_due_ = false;
  std::chrono::steady_clock::time_point write_started_;
  std::string close_frame_;
  std::string batch_;
  std::vector<net::const_buffer> buffers_;
  std::vector<std::shared_ptr<const std::string>> in_flight_;
  std::size_t batch_payload_bytes_ = 0;
  bool writing_ = false;
  bool close_sent_ = false, close_written_ = false, close_received_ = false;
  bool gone_ = false;
};

template <typename Protocol, bool Tls>
class Listener : public std::enable_shared_from_this<Listener<Protocol, Tls>> {
 public:
  Listener(net::io_context& io, const Router& router, ServerLimits limits, std::shared_ptr<net::ssl::context> tls = nullptr)
      : io_(io), acceptor_(net::make_strand(io)), router_(router), limits_(std::make_shared<const ServerLimits>(limits)),
        admission_(coop::net::AdmissionLimits{limits.max_connections, limits.max_per_address, limits.max_per_network,
                                              limits.max_evictable, limits.trusted_proxies}),
        tls_(std::move(tls)) {}

  typename Protocol::acceptor& acceptor() { return acceptor_; }

  void accept() {
    acceptor_.async_accept(net::make_strand(io_), [self = this->shared_from_this()](beast::error_code ec,
                                                                                      typename Protocol::socket socket) {
      if (self->stopped_) return;
      if (ec) {
        if (ec != net::error::operation_aborted) spdlog::warn("http accept: {}", ec.message());
        if (ec == net::error::bad_descriptor) return;
        self->accept();
        return;
      }
      auto session = std::make_shared<Session<Protocol, Tls>>(std::move(socket), self, self->router_, self->limits_,
                                                              self->tls_.get());
      session->from_proxy_ = self->admission_.uncapped(session->remote());  // once per connection
      const auto decision = self->admission_.admit(session->remote());
      std::vector<std::shared_ptr<Session<Protocol, Tls>>> evicted;
      if (decision.id != 0) {
        std::lock_guard lock(self->mutex_);
        for (const auto id : decision.evicted)
          if (const auto it = self->sessions_.find(id); it != self->sessions_.end()) {
            evicted.push_back(it->second);
            self->sessions_.erase(it);
          }
        session->admission_id_ = decision.id;
        self->sessions_.emplace(decision.id, session);
      }
      for (const auto& idle : evicted) idle->close();  // the longest idle, to make room
      if (decision.id != 0) {
        session->start();
      } else {
        spdlog::warn("http: refusing a connection from {} ({})", session->remote(), decision.refusal);
        session->refuse();
      }
      self->accept();
    });
  }

  void forget(Session<Protocol, Tls>* session) {
    admission_.release(session->admission_id_);
    std::lock_guard lock(mutex_);
    if (const auto it = sessions_.find(session->admission_id_); it != sessions_.end() && it->second.get() == session)
      sessions_.erase(it);
  }

  // Between requests a connection may be let go to make room; while one is answered it may not.
  void set_evictable(Session<Protocol, Tls>* session, bool evictable) {
    admission_.set_evictable(session->admission_id_, evictable);
  }

  void stop() {
    if (stopped_.exchange(true)) return;
    // The acceptor lives on a strand: close it there, never racing an accept completion.
    net::dispatch(acceptor_.get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
    });
    std::map<coop::net::Admission::Id, std::shared_ptr<Session<Protocol, Tls>>> sessions;
    {
      std::lock_guard lock(mutex_);
      sessions.swap(sessions_);
    }
    for (const auto& [id, session] : sessions) session->close();
  }

  std::size_t active() const {
    std::lock_guard lock(mutex_);
    return sessions_.size();
  }

 private:
  net::io_context& io_;
  typename Protocol::acceptor acceptor_;
  const Router& router_;
  std::shared_ptr<const ServerLimits> limits_;
  coop::net::Admission admission_;
  mutable std::mutex mutex_;  // guards sessions_
  std::map<coop::net::Admission::Id, std::shared_ptr<Session<Protocol, Tls>>> sessions_;
  std::atomic<bool> stopped_{false};
  std::shared_ptr<net::ssl::context> tls_;
};

template <typename Protocol, bool Tls>
void Session<Protocol, Tls>::finish() {
  if (heartbeat_) heartbeat_->cancel();
  lowest().close();
  if (auto listener = listener_.lock()) listener->forget(this);
}

class UnixServer final : public Server {
 public:
  UnixServer(net::io_context& io, std::filesystem::path path, const Router& router, ServerLimits limits)
      : path_(std::move(path)), listener_(std::make_shared<Listener<local, false>>(io, router, limits)) {}
  ~UnixServer() override { stop(); }

  void start() override {
    // sun_path holds 108 bytes; a deep COOP_HOME must fail clearly, not truncate.
    if (path_.native().size() >= sizeof(sockaddr_un::sun_path))
      throw Error(errc::kListenFailed, "socket path too long: " + path_.string(), 500);
    std::error_code fs_ec;
    std::filesystem::remove(path_, fs_ec);
    beast::error_code ec;
    auto& acceptor = listener_->acceptor();
    acceptor.open(local(), ec);
    if (!ec) acceptor.bind(local::endpoint(path_.string()), ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw Error(errc::kListenFailed, "cannot listen on " + path_.string() + ": " + ec.message(), 500);
    if (::chmod(path_.c_str(), 0660) != 0) throw Error(errc::kListenFailed, "cannot chmod " + path_.string(), 500);
    listener_->accept();
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    listener_->stop();
    std::error_code fs_ec;
    std::filesystem::remove(path_, fs_ec);
  }

  std::size_t active_connections() const override { return listener_->active(); }

 private:
  std::filesystem::path path_;
  std::shared_ptr<Listener<local, false>> listener_;
  bool stopped_ = false;
};

template <bool Tls>
class TcpServer final : public Server {
 public:
  TcpServer(net::io_context& io, std::string address, uint16_t port, const Router& router, ServerLimits limits,
            std::shared_ptr<net::ssl::context> tls = nullptr)
      : address_(std::move(address)), port_(port),
        listener_(std::make_shared<Listener<Tcp, Tls>>(io, router, limits, std::move(tls))) {}
  ~TcpServer() override { stop(); }

  void start() override {
    beast::error_code ec;
    const auto address = net::ip::make_address(address_, ec);
    if (ec) throw Error(errc::kListenFailed, "'" + address_ + "' is not an IP address", 500);
    const Tcp::endpoint endpoint(address, port_);
    auto& acceptor = listener_->acceptor();
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
      throw Error(errc::kListenFailed, "cannot listen on " + address_ + ":" + std::to_string(port_) + ": " + ec.message(), 500);
    port_ = acceptor.local_endpoint().port();
    listener_->accept();
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    listener_->stop();
  }

  std::size_t active_connections() const override { return listener_->active(); }
  uint16_t port() const override { return port_; }

 private:
  std::string address_;
  uint16_t port_;
  std::shared_ptr<Listener<Tcp, Tls>> listener_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<Server> Server::unix_socket(net::io_context& io, std::filesystem::path path, const Router& router,
                                            ServerLimits limits) {
  return std::make_unique<UnixServer>(io, std::move(path), router, limits);
}

std::unique_ptr<Server> Server::tcp(net::io_context& io, std::string address, uint16_t port, const Router& router,
                                    ServerLimits limits) {
  return std::make_unique<TcpServer<false>>(io, std::move(address), port, router, limits);
}

std::unique_ptr<Server> Server::tls(net::io_context& io, std::string address, uint16_t port, const Router& router,
                                    ServerLimits limits, std::shared_ptr<net::ssl::context> context) {
  return std::make_unique<TcpServer<true>>(io, std::move(address), port, router, limits, std::move(context));
}

}  // namespace coop::http
