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
// nullopt for characters outside the alphabets, whitespace, misplaced or wrong padding, or a
// length that no encoding produces. Unused bits in the last character are ignored, as Python's
// and most other decoders do (the spec's example signing key seed has them set).
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace coop::matrix
