// CryptPad-compatible pads: known answers produced with chainpad-crypto 0.3.0 and chainpad
// 5.3.1 (npm) for a fixed seed and nonce; the chain replay and the patches the CLI writes.
#include <catch2/catch.hpp>

#include <sodium.h>

#include "common/error.h"
#include "workers/docs/pad.h"

using namespace coop::docs;

namespace {

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 15];
  }
  return out;
}

const char* kPlaintext =
    "[2,[[0,0,\"h\xc3\xa9llo \xe2\x82\xac\"],\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"],"
    "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"]";

}  // namespace

TEST_CASE("pad keys from an edit key match chainpad-crypto's createEditCryptor2", "[docs][pad]") {
  const auto keys = pad_keys("AQIDBAUGBwgJCgsMDQ4PEBES");
  CHECK(keys.validate_key == "TUWNkTdZv5TaxbAz1DKqUcCYCtbaQqYnCjuqlkvSrlg=");
  CHECK(keys.channel == "6aa274db68ab106d66c9cd5c7fcd2b09");
  CHECK(to_hex(keys.crypt_key.data(), 32) == "fbe8808d5c916998bdc8e31e0a945e1904bd369a2ae4979ddffb883ae64d45c2");
  CHECK_THROWS_AS(pad_keys("short"), coop::Error);
  const auto fresh = new_pad_keys();
  CHECK(fresh.edit_key.size() == 24);
  CHECK(fresh.edit_key.find('/') == std::string::npos);
  CHECK(pad_keys(fresh.edit_key).channel == fresh.channel);
}

TEST_CASE("message encryption matches chainpad-crypto byte for byte", "[docs][pad]") {
  const auto keys = pad_keys("AQIDBAUGBwgJCgsMDQ4PEBES");
  unsigned char nonce[24];
  for (int i = 0; i < 24; ++i) nonce[i] = static_cast<unsigned char>(0xa0 + i);
  const auto wire = encrypt_message(kPlaintext, keys, false, nonce);
  CHECK(wire ==
        "qYUH/XEnH6+IWEvhmUbhksEwRDCpSVe9EmFrXZBjDHdclxLF3VPrPQLygndVZG9RNMlk93IKt2Oe9yCi5LeeBm9LR2lvNlNscHFlb3FhcXJySz"
        "J1cjdDeHNyTzB0YmEzfFVHVHptVEJsVlpLQmdaYTI4dFBrY00xaUpJTHdIcDM1eEFDRkpHNW9yaUE5OFRqTlNpcTl0cCtnMkJmWFRTVjZ2UzRh"
        "WWlMdTBMVGpuWi8xVnM2UWlDN0tNbDdtNWFvWE8rVWZ3ZVRmRk9rQjNWeEV4ZzVtemRacUYvVHFPUUovNEtEWVltYjRjY2VvcXJKc1J3SzJkZE"
        "J0Mnk2NmRIVENuSTh4NlJiay9Ra3VWc3dQbGIwL3U5WVNNMG1qbHBDaUdFc0M2ZjNYT3QxaEcvRWk0eVRWSUVFMHdVMTI2aThKbERLdVlBUDI=");
  CHECK(decrypt_message(wire, keys, true) == std::optional<std::string>(kPlaintext));
  // A different pad's key opens nothing; a forged signature fails verification.
  const auto other = pad_keys("BQIDBAUGBwgJCgsMDQ4PEBES");
  CHECK_FALSE(decrypt_message(wire, other, false));
  auto forged = wire;
  forged[5] = forged[5] == 'A' ? 'B' : 'A';
  CHECK_FALSE(decrypt_message(forged, keys, true));
  const std::string checkpoint =
      "[4,[[0,0,\"hello\"],\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"],"
      "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"]";
  const auto cp = encrypt_message(checkpoint, keys, true);
  CHECK(cp.rfind("cp|GZDL7Myr9e8=|", 0) == 0);
  CHECK(decrypt_message(cp, keys, true) == std::optional<std::string>(checkpoint));
}

TEST_CASE("ChainPad hashes: low bytes of UTF-16 units; JSON.stringify strings", "[docs][pad]") {
  CHECK(chainpad_hash(u"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(chainpad_hash(to_utf16("hello")) == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  CHECK(chainpad_hash(to_utf16("h\xc3\xa9llo \xe2\x82\xac")) == "8d2cdb6ebef75bf5d6d7ec333546775397091b4ad10eabdacb3f9c73a7dac493");
  CHECK(chainpad_hash(to_utf16("a\xf0\x9f\x98\x80" "b")) == "f8abc9168105675428c8330d7d7f2f1ed3acd6e78789bcc7f22c1567a5837ba1");
  CHECK(chainpad_hash(to_utf16(kPlaintext)) == "c74dc15b444d94b35d5c8656e76fa012213f960316e5bcfe78f8cb059e0776fc");
  CHECK(to_utf16("a\xf0\x9f\x98\x80" "b").size() == 4);
  CHECK(to_utf8(to_utf16("a\xf0\x9f\x98\x80" "b")) == "a\xf0\x9f\x98\x80" "b");
  CHECK(js_string(u"a\"b\\c\n\t\x01/\u00e9") == "\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\"");
  CHECK(js_string(std::u16string(1, u'\xd83d')) == "\"\\ud83d\"");
}

TEST_CASE("replay follows the longest chain; patches are ChainPad's simplified form", "[docs][pad]") {
  PadState empty;
  const auto first = make_patch(empty, u"Hello world");
  REQUIRE(first);
  CHECK(*first == "[2,[[0,0,\"Hello world\"],\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"],\"" +
                      std::string(kGenesisHash) + "\"]");
  auto state = replay({*first});
  CHECK(state.doc == u"Hello world");
  CHECK(state.messages == 1);
  const auto second = make_patch(state, u"Hello, brave world");
  REQUIRE(second);
  CHECK(second->rfind("[2,[[5,0,\", brave\"]", 0) == 0);
  state = replay({*first, *second});
  CHECK(state.doc == u"Hello, brave world");
  CHECK_FALSE(make_patch(state, u"Hello, brave world"));
  // A patch made on another document is not applied.
  PadState stale;
  stale.doc = u"something else";
  stale.head = state.head;
  const auto bad = make_patch(stale, u"x");
  CHECK(replay({*first, *second, *bad}).doc == u"Hello, brave world");
  // A checkpoint with an unknown parent starts the chain (history replayed from it).
  const std::string cp = "[4,[[0,3,\"whole text\"],\"" + chainpad_hash(u"old") + "\"],\"" + std::string(64, 'f') + "\"]";
  const auto from_cp = replay({cp});
  CHECK(from_cp.doc == u"whole text");
  const auto after = make_patch(from_cp, u"whole text!");
  CHECK(replay({cp, *after}).doc == u"whole text!");
}

TEST_CASE("a patch that splits a surrogate pair replays (JSON.stringify writes the lone half)", "[docs][pad]") {
  // "a😀" -> "a😁": the pairs share their first unit, so the simplified patch replaces the
  // second alone, written as "\ude01" by JSON.stringify.
  PadState start = replay({*make_patch(PadState{}, to_utf16("a\xf0\x9f\x98\x80"))});
  REQUIRE(start.doc == to_utf16("a\xf0\x9f\x98\x80"));
  const auto patch = make_patch(start, to_utf16("a\xf0\x9f\x98\x81"));
  REQUIRE(patch);
  CHECK(patch->find("\\ude01") != std::string::npos);
  const auto first = make_patch(PadState{}, to_utf16("a\xf0\x9f\x98\x80"));
  const auto state = replay({*first, *patch});
  CHECK(to_utf8(state.doc) == "a\xf0\x9f\x98\x81");
  CHECK(state.messages == 2);
}

TEST_CASE("view keys match chainpad-crypto's createEditCryptor2 and createViewCryptor2", "[docs][pad]") {
  // node -e "C=require('chainpad-crypto'); k=C.createEditCryptor2('BQIDBAUGBwgJCgsMDQ4PEBES'); ..."
  const auto edit = pad_keys("BQIDBAUGBwgJCgsMDQ4PEBES");
  CHECK(edit.view_key == "4pvDcQjrNBxRu+NzoKNS-SIE68SLwiz1FQ3I9n77aAA");
  CHECK(edit.can_write());
  const auto view = view_pad_keys(edit.view_key);
  CHECK_FALSE(view.can_write());
  CHECK(view.channel == "367044a313deac47b195a4f46e3a0950");
  CHECK(view.channel == edit.channel);
  CHECK(view.crypt_key == edit.crypt_key);
  // A view link opens the same document, read-only; a bad view key is refused.
  const auto link = parse_link("http://docs.test:8410/docs/#/2/pad/view/" + edit.view_key + "/");
  CHECK(link.keys.channel == edit.channel);
  CHECK_FALSE(link.keys.can_write());
  CHECK(make_view_link("http://docs.test:8410", edit) == "http://docs.test:8410/docs/#/2/pad/view/" + edit.view_key + "/");
  CHECK_THROWS(view_pad_keys("short"));
  CHECK_THROWS(parse_link("http://docs.test/docs/#/2/pad/read/" + edit.view_key + "/"));
  // A message from the edit key decrypts with the view key.
  const auto wire = encrypt_message("hello", edit);
  CHECK(decrypt_message(wire, view, false) == std::optional<std::string>("hello"));
}
