// The compressed variants coop-site stores beside a text file at publish time.
#pragma once

#include <string>
#include <string_view>

namespace coop::site {

// RFC 1952 gzip (zlib, level 9).
std::string gzip_compress(std::string_view bytes);
// RFC 7932 brotli (quality 11 up to 1 MiB, 9 above, where 11 gets slow).
std::string brotli_compress(std::string_view bytes);

}  // namespace coop::site
