// Bounded JSON parsing and a dump that never throws.
#include "common/json.h"

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace coop {

std::size_t json_depth(std::string_view text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > deepest) deepest = depth;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default: break;
    }
  }
  return deepest;
}

nlohmann::json parse_json(std::string_view text, int max_depth) {
  if (json_depth(text) > static_cast<std::size_t>(max_depth))
    throw Error(errc::kNotJson, "JSON nested deeper than " + std::to_string(max_depth) + " levels", 400);
  try {
    // Strict: one value and nothing after it but whitespace; no comments.
    return nlohmann::json::parse(text.begin(), text.end(), nullptr, true, false);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() quotes the bytes it read, which may be invalid UTF-8: say where, not what.
    throw Error(errc::kNotJson, "invalid JSON at byte " + std::to_string(e.byte), 400);
  } catch (const nlohmann::json::exception&) {
    throw Error(errc::kNotJson, "invalid JSON (a number out of range)", 400);
  }
}

nlohmann::json parse_json_object(std::string_view text, int max_depth) {
  auto value = parse_json(text, max_depth);
  if (!value.is_object()) throw Error(errc::kBadJson, "expected a JSON object", 400);
  return value;
}

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace coop
