// What every file that calls OpenSSL directly shares: owning pointers that free with the
// right function, and errors that carry OpenSSL's own reason.
#pragma once

#include <openssl/ossl_typ.h>

#include <memory>
#include <string>

namespace coop::openssl {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* object) const { Free(object); }
};
template <typename T, auto Free>
using Owned = std::unique_ptr<T, Deleter<Free>>;

// Throws coop::Error(errc::kTlsError, 500) with what and OpenSSL's first queued reason,
// and clears the queue.
[[noreturn]] void fail(const std::string& what);

}  // namespace coop::openssl
