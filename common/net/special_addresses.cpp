// The special-purpose address ranges a fetch on a member's behalf refuses.
#include "common/net/special_addresses.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "common/net/cidr.h"

namespace coop::net {

namespace {

const std::vector<Cidr>& special_ranges() {
  static const std::vector<Cidr> ranges = [] {
    std::vector<Cidr> out;
    for (const char* text : {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                             "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
                             "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128",
                             "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7",
                             "fe80::/10", "fec0::/10", "ff00::/8"})
      out.push_back(*Cidr::parse(text));
    return out;
  }();
  return ranges;
}

}  // namespace

bool is_public_address(std::string_view address) {
  const std::string text(address);
  std::array<unsigned char, 16> v6{};
  if (inet_pton(AF_INET6, text.c_str(), v6.data()) == 1) {
    // ::ffff:a.b.c.d and the NAT64 prefix carry an IPv4 address: judge that one.
    const bool mapped = std::all_of(v6.begin(), v6.begin() + 10, [](unsigned char b) { return b == 0; }) && v6[10] == 0xff && v6[11] == 0xff;
    const std::array<unsigned char, 12> nat64 = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (mapped || std::equal(nat64.begin(), nat64.end(), v6.begin())) {
      char v4[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, v6.data() + 12, v4, sizeof v4);
      return is_public_address(v4);
    }
  } else {
    unsigned char v4[4];
    if (inet_pton(AF_INET, text.c_str(), v4) != 1) return false;
  }
  for (const auto& range : special_ranges())
    if (range.contains(address)) return false;
  return true;
}

}  // namespace coop::net
