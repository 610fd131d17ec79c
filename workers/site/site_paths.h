// What a published site's paths and names may be, and what each file is: checked by the CLI
// before it uploads and again by coop-site before it stores or serves anything.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace coop::site {

// Site names: 1-63 of a-z 0-9 - _, starting with a letter or digit (they appear in
// /sites/NAME/ and in image names).
bool valid_site_name(std::string_view name);

// A host name for `domain add` (lowercase letters, digits, dots and dashes; no port).
bool valid_host(std::string_view host);

// A file's path inside a version: relative, '/'-separated, no empty, "." or ".." segment, no
// backslash, NUL or control character, at most 1024 bytes. Nothing else ever reaches the disk.
bool valid_file_path(std::string_view path);

// A request path (RFC 3986 3.3) made into a file path: percent-decoded once, then held to
// valid_file_path, so "%2e%2e", "%2f" and "\" cannot climb out. The empty string is the site's
// root. nullopt when it is not acceptable.
std::optional<std::string> file_path_from_request(std::string_view request_path);

// The Content-Type for a file name, by extension (the types static sites use).
std::string content_type_for(std::string_view path);

// Worth storing gzip and brotli variants of (text, not already compressed).
bool compressible(std::string_view content_type);

}  // namespace coop::site
