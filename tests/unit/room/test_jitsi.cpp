// Jitsi calls: RFC 4648 base32, the JWT coop signs (RFC 7519/7515 HS256), guest proofs, the
// widget Element writes, and [workers.room.jitsi].
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <filesystem>
#include <string>

#include "common/base64.h"
#include "common/config.h"
#include "common/error.h"
#include "common/paths.h"
#include "workers/room/jitsi.h"

using namespace coop::room;
using nlohmann::json;

namespace {

JitsiSettings settings(const std::string& auth = "token") {
  JitsiSettings s;
  s.domain = "meet.example.org";
  s.base_url = "https://meet.example.org/";
  s.auth = auth;
  s.app_id = "coop";
  s.app_secret = "0123456789abcdef0123456789abcdef";
  s.audience = "jitsi";
  s.wrapper_url = "https://app.element.io/jitsi.html";
  return s;
}

std::vector<std::string> split(const std::string& jwt) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = jwt.find('.', start)) != std::string::npos; start = dot + 1) parts.push_back(jwt.substr(start, dot - start));
  parts.push_back(jwt.substr(start));
  return parts;
}

json decode_part(const std::string& part) {
  std::string b64 = part;
  for (auto& c : b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
  return json::parse(*coop::base64_decode(b64));
}

}  // namespace

TEST_CASE("base32 is RFC 4648's alphabet without padding") {
  // RFC 4648 section 10's test vectors, padding dropped.
  CHECK(base32("") == "");
  CHECK(base32("f") == "MY");
  CHECK(base32("fo") == "MZXQ");
  CHECK(base32("foo") == "MZXW6");
  CHECK(base32("foob") == "MZXW6YQ");
  CHECK(base32("fooba") == "MZXW6YTB");
  CHECK(base32("foobar") == "MZXW6YTBOI");
}

TEST_CASE("a room's conference is its ID in base32 with token auth, random without") {
  CHECK(conference_for(settings(), "!abc:example.org") == base32("!abc:example.org"));
  CHECK(conference_for(settings("openidtoken-jwt"), "!abc:example.org") == base32("!abc:example.org"));
  const auto open = conference_for(settings("none"), "!abc:example.org");
  CHECK(open.size() == 29);
  CHECK(open.rfind("Jitsi", 0) == 0);
  CHECK(open != conference_for(settings("none"), "!abc:example.org"));
}

TEST_CASE("the token is an HS256 JWT with the claims Jitsi's token auth checks") {
  const auto s = settings();
  JitsiUser user{"Alice", "https://hs/_matrix/media/v3/thumbnail/hs/x", "@alice:example.org", true};
  const auto token = sign_jitsi_token(s, "MZXW6YTBOI", user, 600, 1700000000);
  const auto parts = split(token.jwt);
  REQUIRE(parts.size() == 3);
  const auto header = decode_part(parts[0]);
  CHECK(header == json{{"alg", "HS256"}, {"typ", "JWT"}});
  const auto claims = decode_part(parts[1]);
  CHECK(claims["iss"] == "coop");
  CHECK(claims["aud"] == "jitsi");
  CHECK(claims["sub"] == "meet.example.org");
  CHECK(claims["room"] == "mzxw6ytboi");
  CHECK(claims["iat"] == 1700000000);
  CHECK(claims["nbf"] == 1700000000 - kNotBeforeSkewSeconds);
  CHECK(claims["exp"] == 1700000600);
  CHECK(token.expires_at == 1700000600);
  CHECK(claims["context"]["user"]["name"] == "Alice");
  CHECK(claims["context"]["user"]["id"] == "@alice:example.org");
  CHECK(claims["context"]["user"]["moderator"] == true);
  CHECK_FALSE(claims["context"].contains("matrix"));
  // The signature is HMAC-SHA256 of "header.payload" with app_secret, computed here apart.
  const std::string input = parts[0] + "." + parts[1];
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), s.app_secret.data(), static_cast<int>(s.app_secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &length);
  CHECK(parts[2] == coop::base64url_encode(std::string(reinterpret_cast<const char*>(mac), length)));

  // In Element's mode the signature is made with the key Element's widgets use: matrix-org's
  // Prosody module verifies with it when it verifies at all.
  auto element = s;
  element.auth = "openidtoken-jwt";
  const auto unsigned_parts = split(sign_jitsi_token(element, "MZXW6YTBOI", user, 600, 1700000000).jwt);
  const std::string element_input = unsigned_parts[0] + "." + unsigned_parts[1];
  HMAC(EVP_sha256(), kElementJwtKey.data(), static_cast<int>(kElementJwtKey.size()),
       reinterpret_cast<const unsigned char*>(element_input.data()), element_input.size(), mac, &length);
  CHECK(unsigned_parts[2] == coop::base64url_encode(std::string(reinterpret_cast<const char*>(mac), length)));

  const auto with_matrix = sign_jitsi_token(s, "X", JitsiUser{"Guest", "", "", false}, 60, 1, json{{"room_id", "!r:hs"}});
  const auto guest = decode_part(split(with_matrix.jwt)[1]);
  CHECK(guest["context"]["matrix"]["room_id"] == "!r:hs");
  CHECK(guest["context"]["user"]["moderator"] == false);
  CHECK_FALSE(guest["context"]["user"].contains("id"));
}

TEST_CASE("a guest proof admits to its one room until it expires") {
  const auto s = settings("openidtoken-jwt");
  const auto proof = guest_proof(s, "!room:hs", 2000);
  CHECK(guest_proof_admits(s, proof, "!room:hs", 1999));
  CHECK_FALSE(guest_proof_admits(s, proof, "!room:hs", 2000));   // expired, as a JWT's exp
  CHECK_FALSE(guest_proof_admits(s, proof, "!other:hs", 1999));  // another room
  auto tampered = proof;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  CHECK_FALSE(guest_proof_admits(s, tampered, "!room:hs", 1999));
  // A later expiry with the old MAC, and junk.
  CHECK_FALSE(guest_proof_admits(s, "coopguest.9999" + proof.substr(proof.find('.', 10)), "!room:hs", 1999));
  CHECK_FALSE(guest_proof_admits(s, "coopguest..", "!room:hs", 0));
  CHECK_FALSE(guest_proof_admits(s, "", "!room:hs", 0));
  auto other_secret = s;
  other_secret.app_secret = "another secret of enough length";
  CHECK_FALSE(guest_proof_admits(other_secret, proof, "!room:hs", 1999));
}

TEST_CASE("the widget is the one Element writes for a Jitsi call") {
  const auto widget = jitsi_widget(settings("openidtoken-jwt"), "CONF", "Team", true);
  CHECK(widget["type"] == "jitsi");
  CHECK(widget["name"] == "Jitsi");
  const std::string url = widget["url"];
  CHECK(url.rfind("https://app.element.io/jitsi.html?confId=CONF#conferenceDomain=$domain&conferenceId=$conferenceId", 0) == 0);
  CHECK(url.find("&auth=openidtoken-jwt") != std::string::npos);
  CHECK(widget["data"] == json{{"conferenceId", "CONF"}, {"roomName", "Team"}, {"isAudioOnly", true},
                                {"isVideoChannel", false}, {"domain", "meet.example.org"}, {"auth", "openidtoken-jwt"}});
  const auto plain = jitsi_widget(settings("token"), "CONF", "Team", false);
  CHECK_FALSE(plain["data"].contains("auth"));
  CHECK(plain["url"].get<std::string>().find("auth=") == std::string::npos);
}

TEST_CASE("the Prosody settings match what coop signs, and nothing in them escapes its string") {
  auto s = settings("token");
  s.app_id = "co\"op\nx = 1";
  const auto text = prosody_config(s, "https://matrix.example.org");
  CHECK(text.find("authentication = \"token\"") != std::string::npos);
  CHECK(text.find("app_id = \"co\\\"op\\010x = 1\"") != std::string::npos);
  CHECK(text.find("asap_accepted_audiences = { \"jitsi\" }") != std::string::npos);
  CHECK(text.find("app_secret = \"0123456789abcdef0123456789abcdef\"") != std::string::npos);
  const auto element = prosody_config(settings("openidtoken-jwt"), "https://matrix.example.org");
  CHECK(element.find("authentication = \"matrix_user_verification\"") != std::string::npos);
  CHECK(element.find("uvs_base_url = \"https://matrix.example.org\"") != std::string::npos);
  CHECK(element.find("app_secret") == std::string::npos);
  // Unsigned tokens must not make owners by their own claims there.
  CHECK(element.find("token_affiliation") == std::string::npos);
  CHECK(element.find("matrix_power_sync") != std::string::npos);
}

TEST_CASE("[workers.room.jitsi] is read, its secret made once, bad modes refused") {
  const auto home_dir = std::filesystem::temp_directory_path() / ("coop-jitsi-" + std::to_string(::getpid()));
  std::filesystem::remove_all(home_dir);
  std::filesystem::create_directories(home_dir);
  coop::Home home(home_dir);
  const auto config = coop::Config::parse("[shard]\ndomain = \"example.org\"\n[workers.room.jitsi]\ndomain = \"meet.example.org\"\n", "t");
  const auto first = read_jitsi_settings(config, home);
  CHECK(first.auth == "openidtoken-jwt");
  CHECK(first.base_url == "https://meet.example.org/");
  CHECK(first.app_secret.size() == 64);
  CHECK((std::filesystem::status(home_dir / "keys/jitsi_app_secret").permissions() & std::filesystem::perms::others_read) ==
        std::filesystem::perms::none);
  CHECK(read_jitsi_settings(config, home).app_secret == first.app_secret);  // kept, not made again

  const auto off = coop::Config::parse("[shard]\ndomain = \"example.org\"\n", "t");
  CHECK_FALSE(read_jitsi_settings(off, home).enabled());
  const auto bad = coop::Config::parse("[shard]\ndomain = \"example.org\"\n[workers.room.jitsi]\nauth = \"jwt\"\n", "t");
  CHECK_THROWS_AS(read_jitsi_settings(bad, home), coop::Error);
  const auto quote = coop::Config::parse("[shard]\ndomain = \"example.org\"\n[workers.room.jitsi]\ndomain = \"meet'x\"\n", "t");
  CHECK_THROWS_AS(read_jitsi_settings(quote, home), coop::Error);
  std::filesystem::remove_all(home_dir);
}
