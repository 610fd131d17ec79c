// Prefix matching on the bytes of IPv4 and IPv6 addresses.
#include "common/net/cidr.h"

#include <boost/asio/ip/address.hpp>

#include <string>

namespace coop::net {

namespace {

// The address's bytes (4 or 16) and whether it is IPv6; nullopt when it does not parse.
std::optional<std::pair<bool, std::array<uint8_t, 16>>> address_bytes(std::string_view text) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  std::array<uint8_t, 16> bytes{};
  if (address.is_v4()) {
    const auto v4 = address.to_v4().to_bytes();
    std::copy(v4.begin(), v4.end(), bytes.begin());
    return std::make_pair(false, bytes);
  }
  const auto v6 = address.to_v6().to_bytes();
  std::copy(v6.begin(), v6.end(), bytes.begin());
  return std::make_pair(true, bytes);
}

}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  const auto parsed = address_bytes(text.substr(0, slash));
  if (!parsed) return std::nullopt;
  Cidr cidr;
  cidr.v6_ = parsed->first;
  cidr.bytes_ = parsed->second;
  const unsigned bits = cidr.v6_ ? 128 : 32;
  cidr.prefix_ = bits;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    unsigned prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > bits) return std::nullopt;
    cidr.prefix_ = prefix;
  }
  return cidr;
}

bool Cidr::contains(std::string_view address) const {
  const auto parsed = address_bytes(address);
  if (!parsed || parsed->first != v6_) return false;
  for (unsigned bit = 0; bit < prefix_; bit += 8) {
    const unsigned take = prefix_ - bit >= 8 ? 8 : prefix_ - bit;
    const uint8_t mask = static_cast<uint8_t>(0xFF << (8 - take));
    if ((parsed->second[bit / 8] & mask) != (bytes_[bit / 8] & mask)) return false;
  }
  return true;
}

}  // namespace coop::net
