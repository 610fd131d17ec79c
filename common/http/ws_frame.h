// The server side of RFC 6455's wire format, free of any socket: the opening handshake's
// accept key, frame headers for what the server sends, and an incremental reader for what
// clients send. The HTTP server drives it; the fuzz target feeds it bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coop::http::ws {

// RFC 6455 5.2
enum class Opcode : uint8_t { continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA };

// RFC 6455 7.4.1
inline constexpr uint16_t kNormalClosure = 1000;
inline constexpr uint16_t kGoingAway = 1001;
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kNoStatus = 1005;
inline constexpr uint16_t kInvalidPayload = 1007;
inline constexpr uint16_t kPolicyViolation = 1008;
inline constexpr uint16_t kMessageTooBig = 1009;
inline constexpr uint16_t kInternalError = 1011;

// RFC 6455 4.2.2: base64(SHA-1(key + the protocol's GUID)) for Sec-WebSocket-Accept.
std::string accept_key(std::string_view client_key);
// RFC 6455 4.1: a client's key is 16 random bytes in base64.
bool valid_client_key(std::string_view client_key);

// The header of one unfragmented, unmasked frame (servers never mask, 5.1): 2 to 10 bytes
// written to out; returns how many.
std::size_t encode_header(Opcode opcode, std::size_t payload_size, unsigned char out[10]);

// A close frame's payload (5.5.1): the code, then a reason cut to fit the 125-byte limit of
// control frames without splitting a UTF-8 sequence.
std::string close_payload(uint16_t code, std::string_view reason);

struct Event {
  enum class Kind { text, binary, ping, pong, close, error };
  Kind kind;
  std::string payload;  // the message, ping or pong data, or the close reason
  uint16_t code = 0;    // close: the peer's code (kNoStatus when it sent none); error: ours
};

// Reads client frames as bytes arrive, in any split: unmasks, joins fragments, checks what
// 5.2-5.6 and 8.1 require, and yields whole messages and control frames. After an error event
// (protocol error 1002, invalid UTF-8 1007, message over the limit 1009) it reads nothing more;
// after a close event neither.
class FrameReader {
 public:
  explicit FrameReader(std::size_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Consumes all of input, appending what completed to events.
  void feed(std::string_view input, std::vector<Event>& events);
  bool done() const { return done_; }

 private:
  void fail(uint16_t code, std::string reason, std::vector<Event>& events);
  bool parse_header(std::vector<Event>& events);
  void finish_frame(std::vector<Event>& events);

  std::size_t max_message_;
  bool done_ = false;
  std::string header_;  // the current frame's header bytes until it is whole
  bool header_complete_ = false;
  // The frame being read.
  Opcode opcode_ = Opcode::continuation;
  bool fin_ = false;
  uint64_t remaining_ = 0;
  unsigned char mask_[4] = {};
  std::size_t mask_at_ = 0;
  std::string control_;
  // The message being joined from its fragments.
  bool in_message_ = false;
  Opcode message_opcode_ = Opcode::text;
  std::string message_;
};

}  // namespace coop::http::ws
