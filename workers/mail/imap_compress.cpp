// COMPRESS=DEFLATE on zlib: raw deflate streams (negative window bits, RFC 4978 3).
#include "workers/mail/imap_compress.h"

#include <zlib.h>

#include <cstring>

#include "common/error.h"

namespace coop::mail::imap {

struct DeflateStreams::Impl {
  z_stream out{}, in{};
  Impl() {
    // Window and memory levels a little under zlib's defaults: a compressing session holds
    // about 150 KiB instead of 300.
    if (deflateInit2(&out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -14, 7, Z_DEFAULT_STRATEGY) != Z_OK ||
        inflateInit2(&in, -15) != Z_OK)
      throw Error(errc::kInternal, "zlib would not start", 500);
  }
  ~Impl() {
    deflateEnd(&out);
    inflateEnd(&in);
  }
};

DeflateStreams::DeflateStreams() : impl_(std::make_unique<Impl>()) {}
DeflateStreams::~DeflateStreams() = default;

std::string DeflateStreams::compress(std::string_view plain) {
  std::string result;
  auto& z = impl_->out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  z.avail_in = static_cast<uInt>(plain.size());
  char buffer[16384];
  do {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof buffer;
    deflate(&z, Z_SYNC_FLUSH);
    result.append(buffer, sizeof buffer - z.avail_out);
  } while (z.avail_out == 0 || z.avail_in > 0);
  return result;
}

std::optional<std::string> DeflateStreams::decompress(std::string_view compressed, std::size_t limit) {
  std::string result;
  auto& z = impl_->in;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  z.avail_in = static_cast<uInt>(compressed.size());
  char buffer[16384];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof buffer;
    const int rc = inflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return std::nullopt;  // corrupt, or the stream ended
    result.append(buffer, sizeof buffer - z.avail_out);
    if (result.size() > limit) return std::nullopt;
    if (rc == Z_BUF_ERROR || (z.avail_in == 0 && z.avail_out != 0)) break;  // all read, all given out
  }
  return result;
}

}  // namespace coop::mail::imap
