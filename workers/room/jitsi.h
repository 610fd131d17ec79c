// Jitsi Meet calls for rooms: the settings of [workers.room.jitsi], the conference a room's
// call happens in, the tokens Jitsi's Prosody admits people with, and the widget Element
// shows. Pure functions: no store, no network (the routes are in api/jitsi.cpp and
// room_admin_api.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace coop {
class Config;
class Home;
}  // namespace coop

namespace coop::room {

struct JitsiSettings {
  std::string domain;    // the Jitsi Meet domain ("meet.example.org"); empty: no calls
  std::string base_url;  // where people open a conference ("https://meet.example.org/")
  // "openidtoken-jwt": Element's mode (Prosody asks coop's /verify/user_in_room);
  // "token": Jitsi's own token auth (Prosody checks coop's signature); "none": open rooms.
  std::string auth;
  std::string app_id;      // iss, Prosody's app_id
  std::string app_secret;  // HS256 key, Prosody's app_secret (from app_secret_file)
  std::string audience;    // aud, in Prosody's asap_accepted_audiences
  int64_t member_lifetime_s = 3600;
  int64_t guest_lifetime_s = 7200;
  std::string wrapper_url;  // Element's Jitsi wrapper page the widget names
  std::string verify_token;  // when set, /verify/* wants "Authorization: Bearer" it (UVS_AUTH_TOKEN)

  bool enabled() const { return !domain.empty(); }
  bool signs() const { return enabled() && auth != "none"; }
};

// The longest a guest link may last: a link cannot be taken back, so it must run out.
inline constexpr int64_t kMaxGuestLifetimeSeconds = 7 * 24 * 3600;
// How far before now a token's nbf lies: clocks differ by a little.
inline constexpr int64_t kNotBeforeSkewSeconds = 30;
// The key Element's Jitsi widget signs its openidtoken-jwt tokens with (and matrix-org's
// Prosody module verifies with, when it verifies at all).
inline constexpr std::string_view kElementJwtKey = "notused";

// Reads [workers.room.jitsi]; makes keys/jitsi_app_secret (0600, 32 random bytes as hex) the
// first time when the default file is asked for and missing. Throws coop::Error
// (kConfigInvalid) for an unknown auth mode or a secret file that cannot be read.
JitsiSettings read_jitsi_settings(const Config& config, const Home& home);

// RFC 4648 section 6 base32, upper case, without padding (as Element's rfc4648 library writes it).
std::string base32(std::string_view bytes);

// The conference of a room's call. With token auth it is the room ID in base32 (what Element
// and matrix-org's Prosody module agree on, so that Prosody can decode the room from it);
// without, a random name as Element makes.
std::string conference_for(const JitsiSettings& settings, const std::string& room_id);

struct JitsiUser {
  std::string name;
  std::string avatar;   // an http(s) URL or empty
  std::string user_id;  // the Matrix ID; empty for a guest
  bool moderator = false;
};

struct JitsiToken {
  std::string jwt;
  int64_t expires_at = 0;  // seconds since the epoch
};

// A JWT as Jitsi's token authentication (Prosody's mod_auth_token with luajwtjitsi) checks it
// (RFC 7519, JWS compact serialization RFC 7515 with HS256 RFC 7518 3.2): header
// {"alg":"HS256","typ":"JWT"}; iss = app_id, aud = audience, sub = the domain, room = the
// conference lowercased, iat now, nbf a little earlier (a Prosody whose clock is behind
// still takes it), exp now + lifetime; context.user with name, avatar, id and moderator.
// With auth "token" it is signed with app_secret. In Element's mode `matrix` goes in as
// context.matrix ({token, room_id, server_name}), which is what matrix-org's Prosody module
// checks (by asking /verify/user_in_room); that module reads the JWT unverified or verifies
// it with the key Element's widgets sign with, "notused", so such tokens are signed with it.
JitsiToken sign_jitsi_token(const JitsiSettings& settings, const std::string& conference, const JitsiUser& user,
                            int64_t lifetime_s, int64_t now_s, const nlohmann::json& matrix = nullptr);

// What stands for a guest's Matrix OpenID token in context.matrix, for matrix-org's Prosody
// module, which asks /verify/user_in_room about it: "coopguest.<expiry>.<HMAC-SHA256 of the
// room and expiry with app_secret, hex>". Nothing is stored; it proves one room until expiry.
std::string guest_proof(const JitsiSettings& settings, const std::string& room_id, int64_t expires_at);
// True when `token` is a guest proof for room_id that has not expired at now_s (as a JWT's
// exp: from the expiry on it is refused).
bool guest_proof_admits(const JitsiSettings& settings, std::string_view token, const std::string& room_id, int64_t now_s);
inline constexpr std::string_view kGuestProofPrefix = "coopguest.";

// The URL a person opens: base_url + conference, with the token in ?jwt=.
std::string conference_url(const JitsiSettings& settings, const std::string& conference, const std::string& jwt);

// The content of the im.vector.modular.widgets state event Element writes for a Jitsi call
// (WidgetUtils.addJitsiWidget): type "jitsi", the wrapper URL with ?confId= and Element's
// template variables in the fragment, name, and data {conferenceId, roomName, isAudioOnly,
// isVideoChannel, domain, auth}.
nlohmann::json jitsi_widget(const JitsiSettings& settings, const std::string& conference, const std::string& room_name,
                            bool audio_only);

// The Prosody and Jitsi Meet settings that admit what coop signs, as text to paste.
std::string prosody_config(const JitsiSettings& settings, const std::string& homeserver_url);

}  // namespace coop::room
