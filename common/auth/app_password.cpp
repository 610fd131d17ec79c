// App passwords: random secrets stored as a BLAKE2b digest, and their protocol scopes.
#include "common/auth/app_password.h"

#include <sodium.h>

#include <algorithm>
#include <array>

#include "common/auth/password.h"
#include "common/error.h"

namespace coop::auth {

namespace {

// The lowercase half of kUnambiguousAlphabet: the digest ignores case, so mixed case would only
// look stronger than it is. 33 symbols, 24 characters: about 121 bits.
constexpr std::string_view kAppPasswordAlphabet = "23456789abcdefghijkmnopqrstuvwxyz";

constexpr std::array<Protocol, 10> kProtocols = {Protocol::mail,     Protocol::dav,   Protocol::calendars,
                                                 Protocol::contacts, Protocol::files, Protocol::room,
                                                 Protocol::docs,     Protocol::tiles, Protocol::site,
                                                 Protocol::federate};

// An unknown scope is echoed back in the error; a hostile value is not echoed whole.
constexpr std::size_t kMaxEchoedScope = 40;

std::string normalise(std::string_view typed) {
  std::string out;
  out.reserve(typed.size());
  for (char c : typed) {
    if (c == '-') continue;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out += c;
  }
  return out;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

std::vector<std::string> every_protocol() {
  std::vector<std::string> all;
  for (Protocol p : kProtocols) all.emplace_back(protocol_name(p));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

NewAppPassword make_app_password() {
  NewAppPassword created;
  created.secret = random_grouped(kAppPasswordAlphabet, 6, 4);
  created.digest = app_password_digest(created.secret);
  return created;
}

// A fast unsalted hash is enough here: the secret is ~121 random bits, so a stolen digest cannot
// be brute-forced however fast the hash, unlike a human-chosen password that needs argon2id.
// Being fast also matters because mail and DAV clients authenticate on every connection.
std::string app_password_digest(std::string_view typed) {
  ensure_sodium();
  const std::string normal = normalise(typed);
  unsigned char hash[crypto_generichash_BYTES];  // 32 bytes: BLAKE2b-256
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(normal.data()),
                     normal.size(), nullptr, 0);
  char hex[sizeof hash * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
  return hex;
}

bool digest_equals(std::string_view a_hex, std::string_view b_hex) {
  ensure_sodium();
  // A missing digest must never match another missing digest.
  if (a_hex.empty() || a_hex.size() != b_hex.size()) return false;
  return sodium_memcmp(a_hex.data(), b_hex.data(), a_hex.size()) == 0;
}

std::string_view protocol_name(Protocol protocol) {
  switch (protocol) {
    case Protocol::mail: return "mail";
    case Protocol::dav: return "dav";
    case Protocol::room: return "room";
    case Protocol::docs: return "docs";
    case Protocol::tiles: return "tiles";
    case Protocol::site: return "site";
    case Protocol::federate: return "federate";
    case Protocol::calendars: return "calendars";
    case Protocol::contacts: return "contacts";
    case Protocol::files: return "files";
  }
  return "unknown";
}

std::optional<Protocol> parse_protocol(std::string_view name) {
  for (Protocol p : kProtocols) {
    if (protocol_name(p) == name) return p;
  }
  return std::nullopt;
}

std::vector<std::string> parse_scopes(std::string_view comma_list) {
  std::vector<std::string> scopes;
  bool all = false;
  while (true) {
    const auto comma = comma_list.find(',');
    const std::string_view item = trim(comma_list.substr(0, comma));
    if (item == "all") {
      all = true;
    } else if (!item.empty()) {
      if (!parse_protocol(item)) {
        throw Error(errc::kBadScope,
                    "unknown scope '" + std::string(item.substr(0, kMaxEchoedScope)) +
                        "' (" + scope_names() + ")",
                    400);
      }
      scopes.emplace_back(item);
    }
    if (comma == std::string_view::npos) break;
    comma_list.remove_prefix(comma + 1);
  }
  if (all || scopes.empty()) return every_protocol();
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  return scopes;
}

bool scope_allows(const std::vector<std::string>& scopes, std::string_view protocol) {
  const auto has = [&](std::string_view scope) { return std::find(scopes.begin(), scopes.end(), scope) != scopes.end(); };
  if (has(protocol)) return true;
  if (protocol == "calendars" || protocol == "contacts" || protocol == "files") return has("dav");
  if (protocol == "dav") return has("calendars") || has("contacts") || has("files");
  return false;
}

std::string scope_names() {
  std::string out;
  for (Protocol p : kProtocols) out += (out.empty() ? "" : ", ") + std::string(protocol_name(p));
  return out;
}

}  // namespace coop::auth
