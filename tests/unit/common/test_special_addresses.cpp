// Which addresses a fetch on a member's behalf may reach.
#include <catch2/catch.hpp>

#include "common/net/special_addresses.h"

using coop::net::is_public_address;

TEST_CASE("loopback, private, link-local and reserved addresses are not public") {
  for (const char* inside : {"127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                             "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1",
                             "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1",
                             "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2001:db8::1", "not an address", "", "1.2.3"})
    CHECK_FALSE(is_public_address(inside));
  for (const char* outside : {"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "2a00:1450:4001:80b::200e",
                              "::ffff:8.8.8.8", "64:ff9b::808:808"})
    CHECK(is_public_address(outside));
}
