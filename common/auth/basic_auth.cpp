// Basic credentials through the registry, cached briefly.
#include "common/auth/basic_auth.h"

#include <sodium.h>

#include <functional>
#include <vector>

#include "common/auth/member_client.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/http/message.h"
#include "common/text.h"

namespace coop::auth {

std::optional<std::pair<std::string, std::string>> parse_basic(std::string_view authorization) {
  // The scheme is case-insensitive (RFC 9110 11.1); one space, then the token68.
  if (authorization.size() < 6 || ascii_lower(authorization.substr(0, 6)) != "basic ") return std::nullopt;
  std::string_view encoded = authorization.substr(6);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  while (!encoded.empty() && encoded.back() == ' ') encoded.remove_suffix(1);
  std::vector<unsigned char> raw(encoded.size());
  std::size_t length = 0;
  const auto variant = encoded.size() % 4 == 0 ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
  if (sodium_base642bin(raw.data(), raw.size(), encoded.data(), encoded.size(), nullptr, &length, nullptr, variant) != 0)
    return std::nullopt;
  const std::string_view decoded(reinterpret_cast<const char*>(raw.data()), length);
  const auto colon = decoded.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  for (const unsigned char c : decoded)
    if (c < 0x20 || c == 0x7f) return std::nullopt;
  return std::make_pair(std::string(decoded.substr(0, colon)), std::string(decoded.substr(colon + 1)));
}

BasicAuthCache::BasicAuthCache(const Home& home, std::string protocol) : home_(home), protocol_(std::move(protocol)) {}

std::optional<std::string> BasicAuthCache::check(const http::Request& q) {
  const auto member = check_member(q);
  if (!member) return std::nullopt;
  return member->handle;
}

std::optional<std::string> parse_bearer(std::string_view authorization) {
  if (authorization.size() < 8 || !ascii_iequals(authorization.substr(0, 7), "bearer ")) return std::nullopt;
  auto token = authorization.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  // b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "=" padding.
  if (token.empty() || token.size() > 512) return std::nullopt;
  for (std::size_t i = 0; i < token.size(); ++i) {
    const char c = token[i];
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
                    c == '/' || (c == '=' && i > 0);
    if (!ok) return std::nullopt;
  }
  return std::string(token);
}

std::optional<VerifiedMember> BasicAuthCache::check_member(const http::Request& q, const std::string& protocol_asked) {
  const std::string protocol = protocol_asked.empty() ? protocol_ : protocol_asked;
  const auto authorization = q.header("authorization");
  // A verified credential is remembered for a minute by its digest (with the protocol).
  auto remembered = [&](const std::string& key, const std::function<VerifiedMember()>& verify) -> std::optional<VerifiedMember> {
    {
      std::lock_guard lock(mutex_);
      auto it = cache_.find(key);
      if (it != cache_.end() && it->second.until > Clock::now()) return it->second.member;
    }
    try {
      const auto member = verify();
      std::lock_guard lock(mutex_);
      if (cache_.size() > 10000) cache_.clear();
      cache_[key] = {member, Clock::now() + std::chrono::seconds(60)};
      return member;
    } catch (const Error& e) {
      if (e.code() == errc::kBadCredentials || e.code() == errc::kOutOfScope) return std::nullopt;
      throw;
    }
  };
  // RFC 6750 2.1: "Bearer" and an app password from the member portal.
  if (const auto token = parse_bearer(authorization))
    return remembered(sha256_hex(protocol + "\nbearer\n" + *token),
                      [&] { return verify_token(home_, *token, protocol, q.remote_address); });
  const auto credentials = parse_basic(authorization);
  if (!credentials) return std::nullopt;
  const auto& [user, password] = *credentials;
  return remembered(sha256_hex(protocol + '\n' + user + ':' + password),
                    [&] { return verify_credentials(home_, user, password, protocol, q.remote_address); });
}

void BasicAuthCache::forget(const std::string& handle) {
  std::lock_guard lock(mutex_);
  for (auto it = cache_.begin(); it != cache_.end();)
    it = it->second.member.handle == handle ? cache_.erase(it) : std::next(it);
}

void BasicAuthCache::forget_all() {
  std::lock_guard lock(mutex_);
  cache_.clear();
}

}  // namespace coop::auth
