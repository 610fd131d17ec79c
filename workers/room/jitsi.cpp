#include "workers/room/jitsi.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <random>

#include "common/base64.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/paths.h"
#include "common/secret_file.h"

namespace coop::room {

using nlohmann::json;

namespace {

constexpr char kDefaultSecretFile[] = "keys/jitsi_app_secret";

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &length);
  return std::string(reinterpret_cast<const char*>(mac), length);
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// A Lua string literal for the printed Prosody configuration (Lua 5.4 manual 3.1: a quote or
// backslash escaped, a control byte as a three-digit decimal escape, so that nothing from
// coop.toml can end the string or the line).
std::string lua(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      char escape[5];
      std::snprintf(escape, sizeof escape, "\\%03u", c);
      out += escape;
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += static_cast<char>(c);
  }
  return out + "\"";
}

}  // namespace

JitsiSettings read_jitsi_settings(const Config& config, const Home& home) {
  JitsiSettings s;
  s.domain = config.get_string("workers.room.jitsi.domain", "");
  // A DNS name: it goes into URLs, token claims and the printed Jitsi settings as it is.
  const bool hostname = s.domain.size() <= 253 && std::all_of(s.domain.begin(), s.domain.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.';
  });
  if (!hostname) throw Error(errc::kConfigInvalid, "[workers.room.jitsi] domain must be a DNS name such as meet.example.org");
  s.auth = config.get_string("workers.room.jitsi.auth", "openidtoken-jwt");
  if (s.auth != "openidtoken-jwt" && s.auth != "token" && s.auth != "none")
    throw Error(errc::kConfigInvalid,
                "[workers.room.jitsi] auth must be \"openidtoken-jwt\", \"token\" or \"none\", not \"" + s.auth + "\"");
  s.base_url = config.get_string("workers.room.jitsi.url", s.domain.empty() ? "" : "https://" + s.domain + "/");
  if (!s.base_url.empty() && s.base_url.back() != '/') s.base_url += '/';
  s.app_id = config.get_string("workers.room.jitsi.app_id", "coop");
  s.audience = config.get_string("workers.room.jitsi.audience", "jitsi");
  s.member_lifetime_s = static_cast<int64_t>(config.get_count("workers.room.jitsi.member_lifetime_s", 3600, 60, 86400));
  s.guest_lifetime_s = static_cast<int64_t>(
      config.get_count("workers.room.jitsi.guest_lifetime_s", 7200, 60, kMaxGuestLifetimeSeconds));
  s.wrapper_url = config.get_string("workers.room.jitsi.wrapper_url", "https://app.element.io/jitsi.html");
  if (!s.signs()) return s;
  const std::string secret_file = config.get_string("workers.room.jitsi.app_secret_file", kDefaultSecretFile);
  if (secret_file == kDefaultSecretFile && !std::filesystem::exists(home.root() / secret_file)) {
    std::filesystem::create_directories(home.keys_dir());
    write_file_durably(home.root() / secret_file, random_hex(32) + "\n", 0600);
  }
  s.app_secret = read_secret_file(home, secret_file, "workers.room.jitsi.app_secret_file");
  if (s.app_secret.size() < 16)
    throw Error(errc::kConfigInvalid, "[workers.room.jitsi] app_secret_file holds fewer than 16 characters");
  if (const auto file = config.get_string("workers.room.jitsi.verify_token_file", ""); !file.empty())
    s.verify_token = read_secret_file(home, file, "workers.room.jitsi.verify_token_file");
  return s;
}

std::string base32(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

std::string conference_for(const JitsiSettings& settings, const std::string& room_id) {
  if (settings.auth != "none") return base32(room_id);
  // Element's own form: "Jitsi", one upper-case letter and 23 lower-case ones.
  std::random_device random;
  std::string name = "Jitsi";
  name += static_cast<char>('A' + random() % 26);
  for (int i = 0; i < 23; ++i) name += static_cast<char>('a' + random() % 26);
  return name;
}

JitsiToken sign_jitsi_token(const JitsiSettings& settings, const std::string& conference, const JitsiUser& user,
                            int64_t lifetime_s, int64_t now_s, const json& matrix) {
  json person{{"name", user.name}, {"moderator", user.moderator}, {"affiliation", user.moderator ? "owner" : "member"}};
  if (!user.avatar.empty()) person["avatar"] = user.avatar;
  if (!user.user_id.empty()) person["id"] = user.user_id;
  json context{{"user", person}};
  if (!matrix.is_null()) context["matrix"] = matrix;
  const json claims{{"iss", settings.app_id},
                    {"aud", settings.audience},
                    {"sub", settings.domain},
                    {"room", lower(conference)},
                    {"iat", now_s},
                    {"nbf", now_s - kNotBeforeSkewSeconds},
                    {"exp", now_s + lifetime_s},
                    {"context", context}};
  // RFC 7515 7.1: BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature).
  const std::string signing_input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url_encode(claims.dump());
  const std::string_view key = settings.auth == "openidtoken-jwt" ? kElementJwtKey : std::string_view(settings.app_secret);
  return {signing_input + "." + base64url_encode(hmac_sha256(key, signing_input)), now_s + lifetime_s};
}

std::string guest_proof(const JitsiSettings& settings, const std::string& room_id, int64_t expires_at) {
  const std::string mac = hmac_sha256(settings.app_secret, "coop guest\n" + room_id + "\n" + std::to_string(expires_at));
  return std::string(kGuestProofPrefix) + std::to_string(expires_at) + "." +
         to_hex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
}

bool guest_proof_admits(const JitsiSettings& settings, std::string_view token, const std::string& room_id, int64_t now_s) {
  if (!settings.signs() || token.substr(0, kGuestProofPrefix.size()) != kGuestProofPrefix) return false;
  const auto rest = token.substr(kGuestProofPrefix.size());
  const auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 12) return false;
  int64_t expires_at = 0;
  for (char c : rest.substr(0, dot)) {
    if (c < '0' || c > '9') return false;
    expires_at = expires_at * 10 + (c - '0');
  }
  if (expires_at <= now_s) return false;
  const std::string expected = guest_proof(settings, room_id, expires_at);
  return expected.size() == token.size() && CRYPTO_memcmp(expected.data(), token.data(), token.size()) == 0;
}

std::string conference_url(const JitsiSettings& settings, const std::string& conference, const std::string& jwt) {
  return settings.base_url + conference + (jwt.empty() ? "" : "?jwt=" + jwt);
}

json jitsi_widget(const JitsiSettings& settings, const std::string& conference, const std::string& room_name,
                  bool audio_only) {
  // Element's getLocalJitsiWrapperUrl: the widget's options in the fragment as template
  // variables the client fills in, the conference in the query (for mobile clients).
  std::string url = settings.wrapper_url + (settings.wrapper_url.find('?') == std::string::npos ? "?" : "&") +
                    "confId=" + conference +
                    "#conferenceDomain=$domain&conferenceId=$conferenceId&isAudioOnly=$isAudioOnly"
                    "&isVideoChannel=$isVideoChannel&displayName=$matrix_display_name&avatarUrl=$matrix_avatar_url"
                    "&userId=$matrix_user_id&roomId=$matrix_room_id&theme=$theme&roomName=$roomName"
                    "&supportsScreensharing=true&language=$org.matrix.msc2873.client_language";
  json data{{"conferenceId", conference},
            {"roomName", room_name},
            {"isAudioOnly", audio_only},
            {"isVideoChannel", false},
            {"domain", settings.domain}};
  // Element knows one auth mode; with Jitsi's plain token auth its wrapper has no token to
  // give, so the widget says nothing and members join by coop's links.
  if (settings.auth == "openidtoken-jwt") {
    url += "&auth=openidtoken-jwt";
    data["auth"] = "openidtoken-jwt";
  }
  return {{"type", "jitsi"}, {"url", url}, {"name", "Jitsi"}, {"data", data}};
}

std::string prosody_config(const JitsiSettings& s, const std::string& homeserver_url) {
  const std::string host = s.domain.empty() ? "meet.example.org" : s.domain;
  std::string out;
  if (s.auth == "none") {
    return "# [workers.room.jitsi] auth = \"none\": coop signs nothing and Jitsi decides alone who\n"
           "# joins. Set auth to \"openidtoken-jwt\" (Element's mode) or \"token\" for coop to decide.\n";
  }
  out += "-- Prosody (/etc/prosody/conf.avail/" + host + ".cfg.lua, jitsi-meet-prosody)\n";
  if (s.auth == "openidtoken-jwt") {
    out += "-- Element's \"openidtoken-jwt\" mode: Element puts a Matrix OpenID token in the JWT and\n"
           "-- matrix-org's prosody-mod-auth-matrix-user-verification asks coop (its /verify/user_in_room)\n"
           "-- whether that member is in the room whose ID the conference name encodes; the JWT's\n"
           "-- signature is not what admits (Element signs with \"notused\"). coop's guest links carry\n"
           "-- a proof for one room that /verify/user_in_room checks the same way.\n";
    out += "VirtualHost " + lua(host) + "\n";
    out += "    authentication = \"matrix_user_verification\"\n";
    out += "    app_id = " + lua(host) + "  -- the iss Element's widget writes\n";
    out += "    uvs_base_url = " + lua(homeserver_url) + "\n";
    if (!s.verify_token.empty()) out += "    uvs_auth_token = " + lua(s.verify_token) + "\n";
    out += "    -- Members whose power in the room reaches its state_default own the conference.\n";
    out += "    uvs_sync_power_levels = true\n";
    out += "\n-- The conference MUC: owners from the Matrix room's power levels, never from the JWT's\n"
           "-- own claims (nobody checks its signature here).\n";
    out += "Component " + lua("conference." + host) + " \"muc\"\n";
    out += "    modules_enabled = { \"matrix_power_sync\" }\n";
  } else {
    out += "-- Jitsi's token authentication, matched to what coop signs: iss " + lua(s.app_id) + ", aud " +
           lua(s.audience) + ", sub " + lua(host) + ", room = the conference, HS256 with app_secret.\n";
    out += "VirtualHost " + lua(host) + "\n";
    out += "    authentication = \"token\"\n";
    out += "    app_id = " + lua(s.app_id) + "\n";
    out += "    app_secret = " + lua(s.app_secret) + "\n";
    out += "    asap_accepted_issuers = { " + lua(s.app_id) + " }\n";
    out += "    asap_accepted_audiences = { " + lua(s.audience) + " }\n";
    out += "    allow_empty_token = false\n";
    out += "\n-- The conference MUC: a token admits to the room it names and no other; its\n"
           "-- context.user.moderator (a member who may kick in the room) makes an owner.\n";
    out += "Component " + lua("conference." + host) + " \"muc\"\n";
    out += "    modules_enabled = { \"token_verification\", \"token_affiliation\" }\n";
  }
  out += "\n";
  out += "// Jitsi Meet (/etc/jitsi/meet/" + host + "-config.js)\n";
  out += "config.hosts.domain = '" + host + "';\n";
  out += "config.hosts.muc = 'conference." + host + "';\n";
  out += "// Guests: no anonymous domain. A guest comes with a link from\n";
  out += "// `coop room call ROOM --guest-link`, a token for that one conference, no moderator, and\n";
  out += "// only until it runs out (" + std::to_string(s.guest_lifetime_s / 60) + " minutes unless --valid says otherwise).\n";
  out += "// delete config.hosts.anonymousdomain;\n";
  out += "config.enableUserRolesBasedOnToken = true;\n";
  if (s.auth == "openidtoken-jwt") {
    out += "\n# Element asks the Jitsi domain how to authenticate: proxy this path to coop-room.\n";
    out += "#   https://" + host + "/.well-known/element/jitsi -> " + homeserver_url + "/.well-known/element/jitsi\n";
  }
  return out;
}

}  // namespace coop::room
