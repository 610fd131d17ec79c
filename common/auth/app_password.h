// Per-device app passwords (as Fastmail and Stalwart offer), shown once, and the protocols they open.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::auth {

struct NewAppPassword {
  std::string secret;  // shown to the member once, never stored
  std::string digest;  // what the registry stores: app_password_digest(secret)
};

// A new secret xxxx-xxxx-xxxx-xxxx-xxxx-xxxx (24 random characters, about 121 bits) and its digest.
NewAppPassword make_app_password();

// Lowercase hex BLAKE2b-256 of typed with '-' removed and ASCII letters lowercased, so a member
// may type the secret without dashes or in upper case.
std::string app_password_digest(std::string_view typed);

// Constant-time comparison of two hex digests; false when the lengths differ or either is empty.
bool digest_equals(std::string_view a_hex, std::string_view b_hex);

// The protocols an app password may be limited to. calendars, contacts and files are DAV's
// three parts (CalDAV, CardDAV, plain WebDAV); dav is all three.
enum class Protocol { mail, dav, room, docs, tiles, site, federate, calendars, contacts, files };

std::string_view protocol_name(Protocol protocol);
std::optional<Protocol> parse_protocol(std::string_view name);

// "mail,dav" -> {"dav", "mail"} (sorted, unique, spaces around names ignored); "" or "all" -> every
// protocol. Throws coop::Error(errc::kBadScope, ..., 400) naming an unknown scope.
std::vector<std::string> parse_scopes(std::string_view comma_list);

// Whether an app password with these scopes opens protocol: its own name, or for
// calendars, contacts and files also "dav"; "dav" itself (DAV's discovery: the principal and
// the roots every client starts from) is opened by any of the four.
bool scope_allows(const std::vector<std::string>& scopes, std::string_view protocol);

// "mail, dav, calendars, contacts, files, room, docs, tiles, site, federate", for messages.
std::string scope_names();

}  // namespace coop::auth
