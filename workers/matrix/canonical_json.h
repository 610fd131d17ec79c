// Matrix canonical JSON: the byte form that hashes and signatures cover, and strict parsing of input.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/json.h"

namespace coop::matrix {

// Deepest nesting of objects and arrays accepted (the top-level object counts as 1).
inline constexpr int kMaxJsonDepth = coop::kMaxJsonDepth;

// Largest magnitude an integer may have in canonical JSON (2^53 - 1).
inline constexpr long long kMaxSafeInteger = 9007199254740991LL;

// Matrix spec, Appendices: Canonical JSON. Keys sorted by code point, no insignificant
// whitespace, raw UTF-8, only integers within +-(2^53 - 1). A float with an integral value in
// range (1e10, -0.0) is written as that integer. Throws coop::Error(errc::kBadJson, ..., 400)
// (M_BAD_JSON) for other floats, out-of-range integers, invalid UTF-8, binary values or nesting
// deeper than kMaxJsonDepth.
std::string canonical_json(const nlohmann::json& value);

// Parses text that must be exactly one JSON object in UTF-8. Throws coop::Error(errc::kNotJson,
// ..., 400) (M_NOT_JSON) for syntax errors, invalid UTF-8 or lone surrogates, trailing bytes,
// a non-object top level, or nesting deeper than kMaxJsonDepth. A duplicated key keeps its last
// value (nlohmann's behaviour; the spec leaves duplicates undefined and nothing signed by a
// correct server contains them, so a signature over such input simply fails to verify).
nlohmann::json parse_json_object(std::string_view text);

}  // namespace coop::matrix
