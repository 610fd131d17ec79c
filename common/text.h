// Small text helpers every layer needs: ASCII case folding, URL percent-encoding, UTF-8
// checks, HTML escaping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace coop {

// Lowercases A-Z only: handles, domains and protocol keywords are ASCII, and other bytes of
// UTF-8 text must pass through unchanged.
inline std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Equal but for the case of A-Z (protocol keywords, header and property names).
inline bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    const char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

// RFC 3986 2.1: everything but the unreserved characters (2.3) as %XX, for one path segment
// or query value.
inline std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// True when text is exactly length characters of 0-9a-f (ids: channels, blobs).
// True when name is domain or one of its subdomains (both lowercase, no final dot).
inline bool within_domain(std::string_view name, std::string_view domain) {
  return name == domain || (name.size() > domain.size() && name[name.size() - domain.size() - 1] == '.' &&
                            name.substr(name.size() - domain.size()) == domain);
}

inline bool is_lower_hex(std::string_view text, std::size_t length) {
  if (text.size() != length) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// RFC 3986 2.1: undoes %XX escapes (and '+' as a space in query strings, as HTML forms and
// curl -G send them). False, with out unspecified, for a '%' without two hex digits after it.
// The one decoder: the router, DAV, sites and mailbox file names all use it.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space = false);

// Valid UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Appends a code point (below U+110000, not a surrogate) as UTF-8 (RFC 3629 3).
void append_utf8(std::string& out, uint32_t code_point);

// Text for HTML content and attribute values: & < > " ' as character references.
std::string html_escape(std::string_view text);

}  // namespace coop
