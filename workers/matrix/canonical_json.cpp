// Canonical JSON encoder and strict JSON object parser for the Matrix workers.
#include "workers/matrix/canonical_json.h"

#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json.h"

namespace coop::matrix {

namespace {

[[noreturn]] void bad_json(const std::string& why) { throw coop::Error(errc::kBadJson, why, 400); }

// Length of the UTF-8 sequence at text[i], or 0 if it is not well-formed (RFC 3629 section 4:
// no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return length;
}

// Matrix spec, Appendices: Canonical JSON — only \b \t \n \f \r \" \\ as short escapes, other
// control characters as \u00xx (lowercase hex), everything else (including "/") raw.
void append_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t length = utf8_sequence_length(text, i);
      if (length == 0) bad_json("string is not valid UTF-8");
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0x0F]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

void append_value(std::string& out, const nlohmann::json& value, int depth) {
  using Type = nlohmann::json::value_t;
  switch (value.type()) {
    case Type::null: out += "null"; return;
    case Type::boolean: out += value.get<bool>() ? "true" : "false"; return;
    case Type::string: append_string(out, value.get_ref<const std::string&>()); return;
    case Type::number_integer: {
      const auto number = value.get<std::int64_t>();
      if (number > kMaxSafeInteger || number < -kMaxSafeInteger) bad_json("integer out of range");
      out += std::to_string(number);
      return;
    }
    case Type::number_unsigned: {
      const auto number = value.get<std::uint64_t>();
      if (number > static_cast<std::uint64_t>(kMaxSafeInteger)) bad_json("integer out of range");
      out += std::to_string(number);
      return;
    }
    case Type::number_float: {
      // Floats are not allowed; one with an integral value (1e10, -0.0) is that integer.
      const double number = value.get<double>();
      if (!std::isfinite(number) || std::trunc(number) != number) bad_json("floats are not allowed");
      if (std::fabs(number) > static_cast<double>(kMaxSafeInteger)) bad_json("integer out of range");
      out += std::to_string(static_cast<std::int64_t>(number));  // -0.0 converts to 0
      return;
    }
    case Type::object: {
      if (depth >= kMaxJsonDepth) bad_json("JSON nested too deeply");
      // nlohmann's object is a std::map<std::string, ...>: std::string compares bytes as unsigned
      // char, and UTF-8 byte order is code point order, as the spec requires.
      out.push_back('{');
      bool first = true;
      for (const auto& [key, member] : value.items()) {
        if (!first) out.push_back(',');
        first = false;
        append_string(out, key);
        out.push_back(':');
        append_value(out, member, depth + 1);
      }
      out.push_back('}');
      return;
    }
    case Type::array: {
      if (depth >= kMaxJsonDepth) bad_json("JSON nested too deeply");
      out.push_back('[');
      bool first = true;
      for (const auto& element : value) {
        if (!first) out.push_back(',');
        first = false;
        append_value(out, element, depth + 1);
      }
      out.push_back(']');
      return;
    }
    case Type::binary:
    case Type::discarded: bad_json("value has no JSON form");
  }
  bad_json("value has no JSON form");
}

}  // namespace

std::string canonical_json(const nlohmann::json& value) {
  std::string out;
  append_value(out, value, 0);
  return out;
}

nlohmann::json parse_json_object(std::string_view text) {
  auto value = coop::parse_json(text, kMaxJsonDepth);
  if (!value.is_object()) throw coop::Error(errc::kNotJson, "JSON value is not an object", 400);
  return value;
}

}  // namespace coop::matrix
