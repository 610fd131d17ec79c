// RFC 6455's wire format for the server side: handshake key, frame headers, client frames.
#include "common/http/ws_frame.h"

#include <openssl/evp.h>

#include "common/text.h"

namespace coop::http::ws {

namespace {

bool is_control(Opcode opcode) { return (static_cast<uint8_t>(opcode) & 0x8) != 0; }

bool known_opcode(uint8_t opcode) { return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA); }

// RFC 6455 7.4.1 and 7.4.2, with the IANA registry's 1012-1014: the codes a peer may send.
bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

}  // namespace

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(client_key);
  input += kGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha1(), nullptr);
  std::string out(4 * ((length + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), digest, static_cast<int>(length));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

bool valid_client_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (std::size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

std::size_t encode_header(Opcode opcode, std::size_t payload_size, unsigned char out[10]) {
  out[0] = static_cast<unsigned char>(0x80 | static_cast<uint8_t>(opcode));
  if (payload_size < 126) {
    out[1] = static_cast<unsigned char>(payload_size);
    return 2;
  }
  if (payload_size <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<unsigned char>(payload_size >> 8);
    out[3] = static_cast<unsigned char>(payload_size);
    return 4;
  }
  out[1] = 127;
  const auto size = static_cast<uint64_t>(payload_size);
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<unsigned char>(size >> (56 - 8 * i));
  return 10;
}

std::string close_payload(uint16_t code, std::string_view reason) {
  std::size_t cut = std::min<std::size_t>(reason.size(), 123);
  // Back off to the start of a UTF-8 sequence: the reason must stay valid text (5.5.1).
  if (cut < reason.size())
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xFF);
  out += reason.substr(0, cut);
  return out;
}

void FrameReader::fail(uint16_t code, std::string reason, std::vector<Event>& events) {
  done_ = true;
  message_.clear();
  control_.clear();
  events.push_back(Event{Event::Kind::error, std::move(reason), code});
}

// RFC 6455 5.2: FIN, RSV1-3, opcode; MASK and the 7, 7+16 or 7+64-bit length; the masking key.
// True once the header is whole and acceptable.
bool FrameReader::parse_header(std::vector<Event>& events) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(header_.data());
  const uint8_t opcode = bytes[0] & 0x0F;
  fin_ = (bytes[0] & 0x80) != 0;
  // 5.2: no extension was negotiated, so the reserved bits must be clear.
  if ((bytes[0] & 0x70) != 0) return fail(kProtocolError, "reserved bits set", events), false;
  if (!known_opcode(opcode)) return fail(kProtocolError, "unknown opcode", events), false;
  // 5.1: a server closes the connection on an unmasked client frame.
  if ((bytes[1] & 0x80) == 0) return fail(kProtocolError, "client frame not masked", events), false;
  opcode_ = static_cast<Opcode>(opcode);
  const uint8_t length7 = bytes[1] & 0x7F;
  std::size_t at = 2;
  if (length7 == 126) {
    remaining_ = (uint64_t{bytes[2]} << 8) | bytes[3];
    if (remaining_ < 126) return fail(kProtocolError, "length not in its minimal form", events), false;
    at = 4;
  } else if (length7 == 127) {
    remaining_ = 0;
    for (int i = 0; i < 8; ++i) remaining_ = (remaining_ << 8) | bytes[2 + i];
    if (remaining_ >> 63) return fail(kProtocolError, "length with the high bit set", events), false;
    if (remaining_ <= 0xFFFF) return fail(kProtocolError, "length not in its minimal form", events), false;
    at = 10;
  } else {
    remaining_ = length7;
  }
  for (int i = 0; i < 4; ++i) mask_[i] = bytes[at + i];
  mask_at_ = 0;
  if (is_control(opcode_)) {
    // 5.5: control frames are never fragmented and carry at most 125 bytes.
    if (!fin_) return fail(kProtocolError, "fragmented control frame", events), false;
    if (remaining_ > 125) return fail(kProtocolError, "control frame over 125 bytes", events), false;
    return true;
  }
  // 5.4: a continuation continues a message; a new message waits for the last one's end.
  if (opcode_ == Opcode::continuation && !in_message_) return fail(kProtocolError, "continuation without a message", events), false;
  if (opcode_ != Opcode::continuation && in_message_) return fail(kProtocolError, "new message inside a fragmented one", events), false;
  if (remaining_ > max_message_ || message_.size() + remaining_ > max_message_)
    return fail(kMessageTooBig, "message too big", events), false;
  if (opcode_ != Opcode::continuation) {
    in_message_ = true;
    message_opcode_ = opcode_;
  }
  return true;
}

void FrameReader::finish_frame(std::vector<Event>& events) {
  header_.clear();
  if (opcode_ == Opcode::ping || opcode_ == Opcode::pong) {
    events.push_back(Event{opcode_ == Opcode::ping ? Event::Kind::ping : Event::Kind::pong, std::move(control_), 0});
    control_.clear();
    return;
  }
  if (opcode_ == Opcode::close) {
    // 5.5.1: no body, or a two-byte code and a UTF-8 reason.
    if (control_.size() == 1) return fail(kProtocolError, "close frame of one byte", events);
    uint16_t code = kNoStatus;
    std::string reason;
    if (control_.size() >= 2) {
      code = static_cast<uint16_t>((static_cast<unsigned char>(control_[0]) << 8) | static_cast<unsigned char>(control_[1]));
      if (!valid_close_code(code)) return fail(kProtocolError, "invalid close code", events);
      reason = control_.substr(2);
      if (!is_valid_utf8(reason)) return fail(kInvalidPayload, "close reason is not UTF-8", events);
    }
    done_ = true;
    events.push_back(Event{Event::Kind::close, std::move(reason), code});
    return;
  }
  if (!fin_) return;
  in_message_ = false;
  // 8.1: a text message that is not UTF-8 fails the connection.
  if (message_opcode_ == Opcode::text && !is_valid_utf8(message_)) return fail(kInvalidPayload, "text message is not UTF-8", events);
  events.push_back(Event{message_opcode_ == Opcode::text ? Event::Kind::text : Event::Kind::binary, std::move(message_), 0});
  message_.clear();
}

void FrameReader::feed(std::string_view input, std::vector<Event>& events) {
  while (!done_ && !input.empty()) {
    if (!header_complete_) {
      // Two bytes tell how long the header is; then take the rest of it.
      if (header_.size() < 2) {
        const std::size_t take = std::min<std::size_t>(2 - header_.size(), input.size());
        header_.append(input.substr(0, take));
        input.remove_prefix(take);
        if (header_.size() < 2) return;
      }
      const uint8_t length7 = static_cast<unsigned char>(header_[1]) & 0x7F;
      const std::size_t need = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((header_[1] & 0x80) ? 4 : 0);
      const std::size_t take = std::min(need - header_.size(), input.size());
      header_.append(input.substr(0, take));
      input.remove_prefix(take);
      if (header_.size() < need) return;
      if (!parse_header(events)) return;
      header_complete_ = true;
      if (remaining_ == 0) {
        header_complete_ = false;
        finish_frame(events);
      }
      continue;
    }
    // The payload, unmasked as it arrives (5.3).
    const std::size_t take = static_cast<std::size_t>(std::min<uint64_t>(remaining_, input.size()));
    std::string& into = is_control(opcode_) ? control_ : message_;
    const std::size_t start = into.size();
    into.append(input.substr(0, take));
    for (std::size_t i = start; i < into.size(); ++i) into[i] = static_cast<char>(into[i] ^ mask_[mask_at_++ & 3]);
    input.remove_prefix(take);
    remaining_ -= take;
    if (remaining_ == 0) {
      header_complete_ = false;
      finish_frame(events);
    }
  }
}

}  // namespace coop::http::ws
