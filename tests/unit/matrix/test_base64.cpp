// Unpadded base64 encoding and tolerant decoding (Matrix spec, Appendices: Unpadded Base64).
#include <catch2/catch.hpp>

#include "workers/matrix/base64.h"

namespace mx = coop::matrix;

TEST_CASE("unpadded base64 matches the spec appendix vectors") {
  // Matrix spec, Appendices: Unpadded Base64 (the RFC 4648 test vectors without padding).
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg"},         {"fo", "Zm8"},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    CHECK(mx::unpadded_base64(plain) == encoded);
    CHECK(mx::unpadded_base64_url(plain) == encoded);
    CHECK(mx::decode_base64(encoded) == std::optional<std::string>(plain));
  }
}

TEST_CASE("base64 decoding accepts padding and both alphabets") {
  CHECK(mx::decode_base64("Zg==") == std::optional<std::string>("f"));
  CHECK(mx::decode_base64("Zm8=") == std::optional<std::string>("fo"));
  CHECK(mx::decode_base64("Zm9v") == std::optional<std::string>("foo"));
  const std::string bytes("\xfb\xff\xbf\x00\x3e", 5);
  CHECK(mx::unpadded_base64(bytes) == "+/+/AD4");
  CHECK(mx::unpadded_base64_url(bytes) == "-_-_AD4");
  CHECK(mx::decode_base64("+/+/AD4") == std::optional<std::string>(bytes));
  CHECK(mx::decode_base64("-_-_AD4") == std::optional<std::string>(bytes));
  CHECK(mx::decode_base64("-_-_AD4=") == std::optional<std::string>(bytes));
  // Unused bits of the last character are ignored, as in the spec's example seed.
  CHECK(mx::decode_base64("Zh") == std::optional<std::string>("f"));
}

TEST_CASE("base64 decoding rejects malformed text") {
  CHECK_FALSE(mx::decode_base64("Z"));         // no encoding has 1 character left over
  CHECK_FALSE(mx::decode_base64("Zg="));       // padding that does not complete a group
  CHECK_FALSE(mx::decode_base64("Zg==="));
  CHECK_FALSE(mx::decode_base64("Z=g="));      // padding in the middle
  CHECK_FALSE(mx::decode_base64("===="));
  CHECK_FALSE(mx::decode_base64("Zm 9v"));     // whitespace
  CHECK_FALSE(mx::decode_base64("Zm9v\n"));
  CHECK_FALSE(mx::decode_base64(std::string_view("Zg\0", 3)));
}

TEST_CASE("base64 round-trips every byte value") {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (std::size_t length = 0; length <= bytes.size(); length += 37) {
    const auto prefix = bytes.substr(0, length);
    CHECK(mx::decode_base64(mx::unpadded_base64(prefix)) == std::optional<std::string>(prefix));
    CHECK(mx::decode_base64(mx::unpadded_base64_url(prefix)) == std::optional<std::string>(prefix));
  }
}
