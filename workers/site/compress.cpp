// gzip and brotli for publish-time variants.
#include "workers/site/compress.h"

#include <brotli/encode.h>
#include <zlib.h>

#include "common/error.h"

namespace coop::site {

std::string gzip_compress(std::string_view bytes) {
  z_stream z{};
  // windowBits 15 + 16: a gzip wrapper rather than zlib's (RFC 1952).
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error(errc::kCompressFailed, "zlib would not start", 500);
  std::string out(deflateBound(&z, static_cast<uLong>(bytes.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (result != Z_STREAM_END) throw Error(errc::kCompressFailed, "gzip failed", 500);
  return out;
}

std::string brotli_compress(std::string_view bytes) {
  std::size_t size = BrotliEncoderMaxCompressedSize(bytes.size());
  if (size == 0) size = bytes.size() + 1024;
  std::string out(size, '\0');
  const int quality = bytes.size() <= (1u << 20) ? BROTLI_MAX_QUALITY : 9;
  if (!BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, bytes.size(),
                             reinterpret_cast<const uint8_t*>(bytes.data()), &size, reinterpret_cast<uint8_t*>(out.data())))
    throw Error(errc::kCompressFailed, "brotli failed", 500);
  out.resize(size);
  return out;
}

}  // namespace coop::site
