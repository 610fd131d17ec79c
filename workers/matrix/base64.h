// Unpadded base64 as Matrix uses it for keys, signatures, hashes and event IDs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace coop::matrix {

// Matrix spec, Appendices: Unpadded Base64 — RFC 4648 section 4 alphabet, no "=" padding.
std::string unpadded_base64(std::string_view bytes);

// RFC 4648 section 5 (URL- and filename-safe, "-" and "_") without padding; room versions 4+
// use it for event IDs.
std::string unpadded_base64_url(std::string_view bytes);

// Decodes padded or unpadded text in either alphabet (a mix of both is accepted too). Returns
// nullopt for characters outside the alphabets, whitespace, misplaced or wrong padding, a length
// that no encoding produces, or non-zero unused bits in the last character (so each byte string
// has exactly one accepted unpadded form per alphabet).
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace coop::matrix
