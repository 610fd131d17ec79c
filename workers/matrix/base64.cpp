// Base64 encoding and lenient-alphabet, strict-structure decoding (RFC 4648).
#include "workers/matrix/base64.h"

#include <array>
#include <cstdint>

namespace coop::matrix {

namespace {

constexpr char kStandardAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::int8_t kInvalid = -1;

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& entry : table) entry = kInvalid;
  for (int i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kStandardAlphabet[i])] = static_cast<std::int8_t>(i);
    table[static_cast<unsigned char>(kUrlAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}

constexpr auto kDecodeTable = make_decode_table();

std::string encode(std::string_view bytes, const char* alphabet) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(alphabet[group >> 18 & 0x3F]);
    out.push_back(alphabet[group >> 12 & 0x3F]);
    out.push_back(alphabet[group >> 6 & 0x3F]);
    out.push_back(alphabet[group & 0x3F]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t group = byte(i) << 16;
    out.push_back(alphabet[group >> 18 & 0x3F]);
    out.push_back(alphabet[group >> 12 & 0x3F]);
  } else if (rest == 2) {
    const std::uint32_t group = byte(i) << 16 | byte(i + 1) << 8;
    out.push_back(alphabet[group >> 18 & 0x3F]);
    out.push_back(alphabet[group >> 12 & 0x3F]);
    out.push_back(alphabet[group >> 6 & 0x3F]);
  }
  return out;
}

}  // namespace

std::string unpadded_base64(std::string_view bytes) { return encode(bytes, kStandardAlphabet); }

std::string unpadded_base64_url(std::string_view bytes) { return encode(bytes, kUrlAlphabet); }

std::optional<std::string> decode_base64(std::string_view text) {
  // Padding, if present, must complete the last group of four exactly.
  if (text.size() % 4 == 0 && !text.empty()) {
    std::size_t pad = 0;
    while (pad < 2 && text[text.size() - 1 - pad] == '=') ++pad;
    text.remove_suffix(pad);
  }
  if (text.size() % 4 == 1) return std::nullopt;

  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t group = 0;
  int bits = 0;  // bits held in group, always fewer than 8 after each step
  for (const char c : text) {
    const std::int8_t value = kDecodeTable[static_cast<unsigned char>(c)];
    if (value == kInvalid) return std::nullopt;  // includes any '=' left in the middle
    group = group << 6 | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(group >> bits & 0xFF));
      group &= (1u << bits) - 1;
    }
  }
  // Unused low bits of the last character are ignored, not required to be zero: the spec's own
  // example seed "...Mw+3XA1" sets them.
  return out;
}

}  // namespace coop::matrix
