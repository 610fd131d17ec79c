// IP networks written as address/prefix ("127.0.0.0/8", "2001:db8::/32"), for lists such as
// [workers.mail] trusted_networks.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace coop::net {

class Cidr {
 public:
  // nullopt for text that is not an address with an optional prefix length (a bare address
  // is the network of that one address).
  static std::optional<Cidr> parse(std::string_view text);
  // False for an address of the other family or that does not parse.
  bool contains(std::string_view address) const;

 private:
  bool v6_ = false;
  std::array<uint8_t, 16> bytes_{};
  unsigned prefix_ = 0;
};

}  // namespace coop::net
