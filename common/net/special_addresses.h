// Addresses a server must not be made to connect to on a member's behalf (URL previews, and
// anything else that fetches what a member names): loopback, private, link-local, shared,
// documentation, multicast and reserved ranges (RFC 6890 and the IANA special-purpose
// registries), IPv4-mapped IPv6 judged by its IPv4 address.
#pragma once

#include <string_view>

namespace coop::net {

// True for a textual IPv4 or IPv6 address on the public Internet; false for any special
// range and for text that is not an address.
bool is_public_address(std::string_view address);

}  // namespace coop::net
