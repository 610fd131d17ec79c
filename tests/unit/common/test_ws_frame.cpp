// RFC 6455's wire format, server side: the handshake key, frame headers, and the reader of
// client frames with the examples of section 5.7 and every way a client frame can be wrong.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/http/ws_frame.h"

using namespace coop::http::ws;

namespace {

// A client frame: masked with key, FIN as given, 7/16/64-bit length as the size needs.
std::string client_frame(uint8_t opcode, const std::string& payload, bool fin = true, uint8_t extra_first_byte_bits = 0,
                         std::string key = "\x37\xfa\x21\x3d") {
  std::string out;
  out += static_cast<char>((fin ? 0x80 : 0) | extra_first_byte_bits | opcode);
  const std::size_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(0x80 | n);
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) out += static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xFF);
  }
  out += key;
  for (std::size_t i = 0; i < n; ++i) out += static_cast<char>(payload[i] ^ key[i % 4]);
  return out;
}

std::vector<Event> read_all(const std::string& bytes, std::size_t max = 1 << 20) {
  FrameReader reader(max);
  std::vector<Event> events;
  reader.feed(bytes, events);
  return events;
}

std::vector<Event> read_bytewise(const std::string& bytes, std::size_t max = 1 << 20) {
  FrameReader reader(max);
  std::vector<Event> events;
  for (char c : bytes) reader.feed(std::string_view(&c, 1), events);
  return events;
}

uint16_t error_of(const std::string& bytes, std::size_t max = 1 << 20) {
  const auto events = read_all(bytes, max);
  REQUIRE(!events.empty());
  REQUIRE(events.back().kind == Event::Kind::error);
  return events.back().code;
}

}  // namespace

TEST_CASE("the accept key of RFC 6455 4.2.2's example", "[websocket]") {
  CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ"));
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j*Q=="));
  CHECK_FALSE(valid_client_key(""));
}

TEST_CASE("server frame headers use the shortest length form", "[websocket]") {
  unsigned char header[10];
  // RFC 6455 5.7: "Hello" unmasked, then 256 bytes and 64 KiB of binary data in one frame.
  REQUIRE(encode_header(Opcode::text, 5, header) == 2);
  CHECK(std::string(reinterpret_cast<char*>(header), 2) == "\x81\x05");
  REQUIRE(encode_header(Opcode::binary, 256, header) == 4);
  CHECK(std::string(reinterpret_cast<char*>(header), 4) == std::string("\x82\x7E\x01\x00", 4));
  REQUIRE(encode_header(Opcode::binary, 65536, header) == 10);
  CHECK(std::string(reinterpret_cast<char*>(header), 10) == std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  CHECK(encode_header(Opcode::text, 125, header) == 2);
  CHECK(encode_header(Opcode::text, 126, header) == 4);
  CHECK(encode_header(Opcode::text, 65535, header) == 4);
}

TEST_CASE("a close reason is cut to the control frame limit on a character boundary", "[websocket]") {
  CHECK(close_payload(1000, "") == std::string("\x03\xE8", 2));
  CHECK(close_payload(1009, "too big") == std::string("\x03\xF1too big", 9));
  std::string long_reason(122, 'a');
  long_reason += "\xC3\xA9\xC3\xA9";  // é straddles the 123-byte cut
  const auto payload = close_payload(1008, long_reason);
  CHECK(payload.size() == 2 + 122);
  CHECK(payload.substr(2) == std::string(122, 'a'));
}

TEST_CASE("RFC 6455 5.7's masked examples read whole and a byte at a time", "[websocket]") {
  const std::string hello("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  const std::string pong("\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  for (const auto& events : {read_all(hello + pong), read_bytewise(hello + pong)}) {
    REQUIRE(events.size() == 2);
    CHECK(events[0].kind == Event::Kind::text);
    CHECK(events[0].payload == "Hello");
    CHECK(events[1].kind == Event::Kind::pong);
    CHECK(events[1].payload == "Hello");
  }
}

TEST_CASE("fragments join into one message and a ping may come between them", "[websocket]") {
  const std::string big(70000, 'z');
  const auto bytes = client_frame(0x1, "Hel", false) + client_frame(0x9, "are you there") + client_frame(0x0, "lo", false) +
                     client_frame(0x0, big) + client_frame(0x2, std::string("\xFF\x00", 2));
  for (const auto& events : {read_all(bytes), read_bytewise(bytes)}) {
    REQUIRE(events.size() == 3);
    CHECK(events[0].kind == Event::Kind::ping);
    CHECK(events[0].payload == "are you there");
    CHECK(events[1].kind == Event::Kind::text);
    CHECK(events[1].payload == "Hello" + big);
    CHECK(events[2].kind == Event::Kind::binary);  // binary data need not be UTF-8
    CHECK(events[2].payload == std::string("\xFF\x00", 2));
  }
}

TEST_CASE("a close frame ends the reading, with its code and reason", "[websocket]") {
  auto events = read_all(client_frame(0x8, std::string("\x03\xE8", 2) + "bye") + client_frame(0x1, "after"));
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == Event::Kind::close);
  CHECK(events[0].code == 1000);
  CHECK(events[0].payload == "bye");
  events = read_all(client_frame(0x8, ""));
  REQUIRE(events.size() == 1);
  CHECK(events[0].code == kNoStatus);
  events = read_all(client_frame(0x8, std::string("\x0F\xA0", 2)));  // 4000, a private code
  REQUIRE(events.size() == 1);
  CHECK(events[0].code == 4000);
}

TEST_CASE("every malformed client frame fails the connection with the right code", "[websocket]") {
  // 5.1: unmasked
  CHECK(error_of(std::string("\x81\x05Hello", 7)) == kProtocolError);
  // 5.2: reserved bits without an extension, unknown opcodes
  CHECK(error_of(client_frame(0x1, "x", true, 0x40)) == kProtocolError);
  CHECK(error_of(client_frame(0x3, "x")) == kProtocolError);
  CHECK(error_of(client_frame(0xB, "x")) == kProtocolError);
  // 5.5: control frames are whole and short
  CHECK(error_of(client_frame(0x9, "x", false)) == kProtocolError);
  CHECK(error_of(client_frame(0x9, std::string(126, 'p'))) == kProtocolError);
  // 5.4: fragments in order
  CHECK(error_of(client_frame(0x0, "orphan")) == kProtocolError);
  CHECK(error_of(client_frame(0x1, "a", false) + client_frame(0x1, "b")) == kProtocolError);
  // 5.2: the length in its minimal form, without the high bit
  CHECK(error_of(std::string("\x81\xFE\x00\x05\x37\xfa\x21\x3d", 8)) == kProtocolError);
  CHECK(error_of(std::string("\x81\xFF\x80\x00\x00\x00\x00\x00\x00\x00\x37\xfa\x21\x3d", 14)) == kProtocolError);
  // 8.1: text is UTF-8
  CHECK(error_of(client_frame(0x1, "caf\xC3")) == kInvalidPayload);
  CHECK(error_of(client_frame(0x1, "\xED\xA0\x80")) == kInvalidPayload);
  // 5.5.1: a close body is empty or a valid code and UTF-8
  CHECK(error_of(client_frame(0x8, "\x03")) == kProtocolError);
  CHECK(error_of(client_frame(0x8, std::string("\x03\xED", 2))) == kProtocolError);  // 1005 is never sent
  CHECK(error_of(client_frame(0x8, std::string("\x03\xE8\xFF", 3))) == kInvalidPayload);
}

TEST_CASE("a message over the limit is refused from its header, before its payload", "[websocket]") {
  const auto frame = client_frame(0x1, std::string(2000, 'a'));
  FrameReader reader(1000);
  std::vector<Event> events;
  reader.feed(std::string_view(frame).substr(0, 8), events);  // the header only
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == Event::Kind::error);
  CHECK(events[0].code == kMessageTooBig);
  CHECK(reader.done());
  // Fragments count together.
  CHECK(error_of(client_frame(0x1, std::string(600, 'a'), false) + client_frame(0x0, std::string(600, 'a')), 1000) ==
        kMessageTooBig);
  CHECK(read_all(client_frame(0x1, std::string(1000, 'a')), 1000).at(0).kind == Event::Kind::text);
}
