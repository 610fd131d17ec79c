// WebSocket connections (RFC 6455) as workers see them, free of Beast: the HTTP server
// upgrades a request whose path has WebSocket handlers and then calls them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/http/message.h"

namespace coop::http {

class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Queues a text message; messages leave in order, from any thread. False when the
  // connection is closed, or when the peer has stopped reading and its queue passed the
  // limit: the connection is then closed, so a slow reader cannot grow the server's memory.
  virtual bool send(std::string text) = 0;
  // The same for a frame that goes to many connections: one copy shared by all.
  virtual bool send_shared(std::shared_ptr<const std::string> text) = 0;
  // Starts the closing handshake (1000: normal, 1008: policy violation, 1009: too big).
  virtual void close(uint16_t code = 1000, std::string reason = {}) = 0;
  virtual const std::string& remote_address() const = 0;
  // The request that was upgraded (path, query, headers), e.g. to learn who signed in.
  virtual const Request& request() const = 0;
  // Unique in this process.
  virtual uint64_t id() const = 0;
};

struct WebSocketHandlers {
  // After the handshake, before any message.
  std::function<void(const std::shared_ptr<WebSocket>&)> on_open;
  // Each complete message, in order, one at a time per connection.
  std::function<void(const std::shared_ptr<WebSocket>&, std::string message)> on_message;
  // Once, when the connection is gone (closed by either side, failed, or the server stopped).
  std::function<void(const std::shared_ptr<WebSocket>&)> on_close;
  std::size_t max_message_bytes = 1 << 20;
  std::size_t max_queued_bytes = 16 << 20;
  // RFC 6455 1.9: a subprotocol the client must ask for in Sec-WebSocket-Protocol (400
  // otherwise), and the server names in its answer; empty: none.
  std::string subprotocol;
  // Before the handshake, from any thread: answer nullopt to upgrade or a response that
  // refuses (401 for missing credentials). Empty: every upgrade is admitted.
  std::function<void(const Request&, std::function<void(std::optional<Response>)>)> admit;
};

}  // namespace coop::http
