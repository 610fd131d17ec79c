// Matrix identifiers (Appendices "Identifier Grammar"): the parts every worker reads off them.
#pragma once

#include <string>

namespace coop::matrix {

// The server part of a user ID, room ID, alias or event ID ("" when there is none): what
// follows the first colon, which the grammar leaves to the server name.
inline std::string server_of(const std::string& id) {
  const auto colon = id.find(':');
  return colon == std::string::npos ? "" : id.substr(colon + 1);
}

// Server names (Appendices "Server Name"): a DNS name, IPv4 literal or bracketed IPv6 literal,
// with an optional port; at most 255 characters.
bool valid_server_name(const std::string& name);

// The server of a user ID ("@localpart:server") when that is a valid server name, else "":
// what may be handed on to federation as a destination.
std::string user_server(const std::string& user_id);

}  // namespace coop::matrix
