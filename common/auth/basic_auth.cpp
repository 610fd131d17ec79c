// Basic credentials through the registry, cached briefly.
#include "common/auth/basic_auth.h"

#include <sodium.h>

#include <vector>

#include "common/auth/member_client.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/http/message.h"

namespace coop::auth {

BasicAuthCache::BasicAuthCache(const Home& home, std::string protocol) : home_(home), protocol_(std::move(protocol)) {}

std::optional<std::string> BasicAuthCache::check(const http::Request& q) {
  const std::string header = q.header("authorization");
  if (header.rfind("Basic ", 0) != 0) return std::nullopt;
  const std::string encoded = header.substr(6);
  std::vector<unsigned char> raw(encoded.size());
  std::size_t length = 0;
  if (sodium_base642bin(raw.data(), raw.size(), encoded.data(), encoded.size(), nullptr, &length, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    return std::nullopt;
  const std::string decoded(reinterpret_cast<const char*>(raw.data()), length);
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string key = sha256_hex(decoded);
  {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.until > Clock::now()) return it->second.handle;
  }
  try {
    const auto member = verify_credentials(home_, decoded.substr(0, colon), decoded.substr(colon + 1), protocol_,
                                           q.remote_address);
    std::lock_guard lock(mutex_);
    if (cache_.size() > 10000) cache_.clear();
    cache_[key] = {member.handle, Clock::now() + std::chrono::seconds(60)};
    return member.handle;
  } catch (const Error& e) {
    if (e.code() == errc::kBadCredentials || e.code() == errc::kOutOfScope) return std::nullopt;
    throw;
  }
}

void BasicAuthCache::forget(const std::string& handle) {
  std::lock_guard lock(mutex_);
  for (auto it = cache_.begin(); it != cache_.end();)
    it = it->second.handle == handle ? cache_.erase(it) : std::next(it);
}

}  // namespace coop::auth
