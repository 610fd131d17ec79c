// RFC 4978 COMPRESS=DEFLATE: once a session asks, everything both ways is raw deflate
// (RFC 1951), each write flushed so the other side can read it whole.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace coop::mail::imap {

class DeflateStreams {
 public:
  DeflateStreams();
  ~DeflateStreams();
  DeflateStreams(const DeflateStreams&) = delete;
  DeflateStreams& operator=(const DeflateStreams&) = delete;

  // What is about to be written, compressed and flushed (Z_SYNC_FLUSH).
  std::string compress(std::string_view plain);
  // What was read, decompressed; nullopt when it is not deflate data or would expand past
  // `limit` bytes (a few compressed bytes must not make megabytes of commands).
  std::optional<std::string> decompress(std::string_view compressed, std::size_t limit);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::mail::imap
