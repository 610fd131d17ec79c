// A connection's read buffer: small while the client idles, larger while data streams in, so
// that a thousand idle clients cost a few KB each rather than the size of a message chunk.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace coop::net {

class ReadBuffer {
 public:
  static constexpr std::size_t kSmall = 4096;

  explicit ReadBuffer(std::size_t largest) : largest_(largest < kSmall ? kSmall : largest) {}

  // Where the next read goes, and how much it may take.
  char* data() {
    if (size_ != wanted_) {
      bytes_.reset(new char[wanted_]);  // not zero-filled: only what a read wrote is looked at
      size_ = wanted_;
    }
    return bytes_.get();
  }
  std::size_t size() const { return wanted_; }

  // After a read of n bytes: one that filled the buffer doubles the next (up to largest); one
  // that did not brings it back to the small size.
  std::string_view filled(std::size_t n) {
    const std::string_view bytes(bytes_.get(), n);
    wanted_ = n == size_ ? (size_ * 2 > largest_ ? largest_ : size_ * 2) : kSmall;
    return bytes;
  }

 private:
  std::size_t largest_;
  std::unique_ptr<char[]> bytes_;
  std::size_t size_ = 0, wanted_ = kSmall;
};

}  // namespace coop::net
