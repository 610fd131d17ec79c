// What a valid handle, email address, group name, role and status look like in the registry.
#pragma once

#include <string>
#include <string_view>

#include "common/text.h"

namespace coop::member {

// Handles are lowercase, 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit,
// without "..", not ending in "." or "-": valid both as a Matrix localpart (spec "User
// identifiers") and as an RFC 5321 dot-atom local part. Throws coop::Error(errc::kInvalidHandle).
void check_handle(std::string_view handle);
// Role-account names mail and the web expect to be the operators' (RFC 2142 and friends).
bool is_reserved_handle(std::string_view handle);

// Lowercases the domain (and the local part: coop's local parts are case-insensitive) and
// checks local@domain. Throws coop::Error(errc::kInvalidEmail).
std::string normalize_email(std::string_view address);

// Group names: lowercase a-z 0-9 _ -, 1-64 characters. Throws coop::Error(errc::kInvalidGroup).
void check_group_name(std::string_view name);

// "admin", "member", "guest"; throws coop::Error(errc::kInvalidRole).
void check_role(std::string_view role);
// "active", "suspended", "removed"; throws coop::Error(errc::kInvalidStatus).
void check_status(std::string_view status);

using coop::is_valid_utf8;

}  // namespace coop::member
