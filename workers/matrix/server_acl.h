// Server access control lists (Client-Server API "Server Access Control Lists (ACLs) for
// rooms", m.room.server_acl): which servers may take part in a room. The federation worker
// asks this of every request and PDU that concerns a room.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>

namespace coop::matrix {

// Whether an m.room.server_acl content admits a server. The port is dropped first; an IP
// literal is refused when allow_ip_literals is false; a match in `deny` refuses, then a match
// in `allow` admits, and anything else is refused; entries are Matrix globs (glob.h). A
// missing or malformed `allow` allows no one, as the spec says; an empty content (a redacted
// ACL) is no ACL.
bool server_acl_allows(const nlohmann::json& content, std::string_view server_name);

}  // namespace coop::matrix
