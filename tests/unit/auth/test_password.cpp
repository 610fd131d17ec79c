// Account passwords: argon2id hashes, rehash detection, strength rules, generated passwords.
#include <catch2/catch.hpp>
#include <sodium.h>

#include <regex>
#include <set>
#include <string>

#include "common/auth/password.h"
#include "common/error.h"

using namespace coop::auth;

namespace {

// The weak_password message for password, or "" when it is accepted.
std::string weakness_of(const std::string& password) {
  try {
    check_password_strength(password);
  } catch (const coop::Error& e) {
    CHECK(e.code() == "weak_password");
    CHECK(e.status() == 400);
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a password verifies against its own hash") {
  const auto hash = hash_password("correct horse battery staple", test_params());
  CHECK(hash.starts_with("$argon2id$v=19$"));
  CHECK(verify_password(hash, "correct horse battery staple"));
}

TEST_CASE("a wrong password does not verify") {
  const auto hash = hash_password("correct horse battery staple", test_params());
  CHECK_FALSE(verify_password(hash, "correct horse battery stapler"));
  CHECK_FALSE(verify_password(hash, "Correct horse battery staple"));
  CHECK_FALSE(verify_password(hash, ""));
}

TEST_CASE("the same password hashes differently each time because of the salt") {
  const auto a = hash_password("correct horse battery staple", test_params());
  const auto b = hash_password("correct horse battery staple", test_params());
  CHECK(a != b);
  CHECK(verify_password(a, "correct horse battery staple"));
  CHECK(verify_password(b, "correct horse battery staple"));
}

TEST_CASE("an empty or malformed hash never verifies") {
  const auto hash = hash_password("correct horse battery staple", test_params());
  CHECK_FALSE(verify_password("", ""));
  CHECK_FALSE(verify_password("", "correct horse battery staple"));
  CHECK_FALSE(verify_password("not a hash", "correct horse battery staple"));
  CHECK_FALSE(verify_password(hash.substr(0, hash.size() - 5), "correct horse battery staple"));
  CHECK_FALSE(verify_password(hash + std::string(1, '\0') + "x", "correct horse battery staple"));
  CHECK_FALSE(verify_password(std::string(1000, 'a'), "correct horse battery staple"));
}

TEST_CASE("passwords with NUL bytes and non-ASCII characters hash in full") {
  const std::string with_nul("pass\0word-one", 13);
  const auto hash = hash_password(with_nul, test_params());
  CHECK(verify_password(hash, with_nul));
  CHECK_FALSE(verify_password(hash, "pass"));
  const auto unicode = hash_password("pässwörd-émoji-🙂", test_params());
  CHECK(verify_password(unicode, "pässwörd-émoji-🙂"));
}

TEST_CASE("production parameters are argon2id t=2 m=19 MiB p=1") {
  const auto params = production_params();
  CHECK(params.opslimit == 2);
  CHECK(params.memlimit == 19922944);
  const auto hash = hash_password("correct horse battery staple", params);
  CHECK(hash.find("$argon2id$v=19$m=19456,t=2,p=1$") == 0);
  CHECK(verify_password(hash, "correct horse battery staple"));
  CHECK_FALSE(needs_rehash(hash, production_params()));
  CHECK(needs_rehash(hash, test_params()));
}

TEST_CASE("a hash made with other parameters needs rehash") {
  const auto hash = hash_password("correct horse battery staple", test_params());
  CHECK_FALSE(needs_rehash(hash, test_params()));
  CHECK(needs_rehash(hash, production_params()));
  CHECK(needs_rehash(hash, {test_params().opslimit + 1, test_params().memlimit}));
}

TEST_CASE("an argon2i hash needs rehash to argon2id even with the same costs") {
  char out[crypto_pwhash_STRBYTES];
  const std::string password = "correct horse battery staple";
  // argon2i needs at least 3 passes.
  REQUIRE(crypto_pwhash_str_alg(out, password.data(), password.size(), 3,
                                crypto_pwhash_MEMLIMIT_MIN, crypto_pwhash_ALG_ARGON2I13) == 0);
  CHECK(verify_password(out, password));
  CHECK(needs_rehash(out, {3, crypto_pwhash_MEMLIMIT_MIN}));
}

TEST_CASE("an empty or malformed hash needs rehash") {
  CHECK(needs_rehash("", test_params()));
  CHECK(needs_rehash("not a hash", test_params()));
  CHECK(needs_rehash("$argon2id$v=19$m=garbage", test_params()));
}

TEST_CASE("a password of ten characters or more is accepted") {
  CHECK(weakness_of("tenletters") == "");
  CHECK(weakness_of("correct horse battery staple") == "");
  CHECK(weakness_of("Tr0ub4dor&3x") == "");
  CHECK(weakness_of(std::string(1023, 'a') + "b") == "");
}

TEST_CASE("an empty password is refused") { CHECK(weakness_of("") == "password is empty"); }

TEST_CASE("a password shorter than ten characters is refused") {
  CHECK(weakness_of("ninechars") == "password must be at least 10 characters long");
  CHECK(weakness_of("a1!") != "");
}

TEST_CASE("password length counts characters, not UTF-8 bytes") {
  // Nine code points in 27 bytes: too short although it has more than ten bytes.
  CHECK(weakness_of("日本語のパスワード") == "password must be at least 10 characters long");
  CHECK(weakness_of("日本語のパスワードだ") == "");
  CHECK(weakness_of("äöüéèêëàáß") == "");
}

TEST_CASE("a password longer than 1024 bytes is refused") {
  CHECK(weakness_of(std::string(1024, 'a') + "b") == "password is longer than 1024 bytes");
}

TEST_CASE("a password that is not valid UTF-8 is refused") {
  const std::string invalid = "password is not valid UTF-8";
  CHECK(weakness_of("long enough \xff") == invalid);
  CHECK(weakness_of("long enough \xc0\xaf") == invalid);      // overlong '/'
  CHECK(weakness_of("long enough \xed\xa0\x80") == invalid);  // UTF-16 surrogate
  CHECK(weakness_of("long enough \xf4\x90\x80\x80") == invalid);  // above U+10FFFF
  CHECK(weakness_of("long enough \xe6\x97") == invalid);      // truncated sequence
  CHECK(weakness_of("long enough \x80") == invalid);          // stray continuation byte
}

TEST_CASE("a password of one repeated character is refused") {
  CHECK(weakness_of("aaaaaaaaaaaa") == "password is one character repeated");
  CHECK(weakness_of("ääääääääääää") == "password is one character repeated");
  CHECK(weakness_of("aaaaaaaaaaab") == "");
}

TEST_CASE("common passwords are refused whatever their case") {
  const std::string common = "password is one of the most common passwords";
  CHECK(weakness_of("password123") == common);
  CHECK(weakness_of("PassWord123") == common);
  CHECK(weakness_of("1234567890") == common);
  CHECK(weakness_of("QWERTYUIOP") == common);
  CHECK(weakness_of("letmein123") == common);
  CHECK(weakness_of("letmein1234") == "");
}

TEST_CASE("a generated password is four groups of five unambiguous characters") {
  const std::regex shape("[2-9A-HJ-NP-Za-km-z]{5}(-[2-9A-HJ-NP-Za-km-z]{5}){3}");
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const auto password = generate_password();
    CHECK(std::regex_match(password, shape));
    CHECK(weakness_of(password) == "");
    seen.insert(password);
  }
  CHECK(seen.size() == 50);
}

TEST_CASE("the unambiguous alphabet leaves out 0, O, 1, l and I") {
  CHECK(kUnambiguousAlphabet.size() == 57);
  for (char c : std::string_view("0O1lI")) {
    CHECK(kUnambiguousAlphabet.find(c) == std::string_view::npos);
  }
}
