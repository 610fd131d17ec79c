// JSON from the network: parsed with bounded nesting, written without ever throwing.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace coop {

// Containers deeper than this are refused before anything recursive (dump, canonical JSON,
// comparisons) walks them; Matrix's canonical JSON and every HTTP body share it.
inline constexpr int kMaxJsonDepth = 100;

// The deepest nesting of objects and arrays in text, counting brackets outside strings.
// Exact for valid JSON; for invalid JSON it only has to be no lower than what a parser that
// accepted a prefix would have built.
std::size_t json_depth(std::string_view text);

// Parses text that came from outside: coop::Error(errc::kNotJson, 400) when it is not JSON
// (nlohmann's lexer rejects invalid UTF-8 and lone surrogates) or nests deeper than
// max_depth. The message gives the byte offset, never the bytes themselves.
nlohmann::json parse_json(std::string_view text, int max_depth = kMaxJsonDepth);

// The same, for a body that must be an object: coop::Error(errc::kBadJson, 400) for any other
// value (an array posted where an object belongs).
nlohmann::json parse_json_object(std::string_view text, int max_depth = kMaxJsonDepth);

// Compact JSON text; invalid UTF-8 in a string becomes U+FFFD instead of an exception, so
// an error reply that quotes client input can always be written.
std::string dump_json(const nlohmann::json& value);

}  // namespace coop
