// libFuzzer target: HTTP Basic credentials (RFC 7617) as DAV, tiles and docs decode them.
// Checked: what parses has no control character, and encoding the pair again parses back to
// the same pair.
#include <sodium.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/basic_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto parsed = coop::auth::parse_basic(input);
  if (!parsed) return 0;
  const std::string pair = parsed->first + ":" + parsed->second;
  for (const unsigned char c : pair)
    if (c < 0x20 || c == 0x7f) std::abort();
  std::vector<char> encoded(sodium_base64_ENCODED_LEN(pair.size(), sodium_base64_VARIANT_ORIGINAL));
  sodium_bin2base64(encoded.data(), encoded.size(), reinterpret_cast<const unsigned char*>(pair.data()), pair.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  const auto again = coop::auth::parse_basic("Basic " + std::string(encoded.data()));
  if (!again || *again != *parsed) std::abort();
  return 0;
}
