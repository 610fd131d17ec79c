// Ed25519 signing keys, JSON signatures and event signatures (Matrix spec, Appendices: Signing JSON / Signing Events).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/signing.h"

namespace mx = coop::matrix;
using nlohmann::json;

namespace {

// Matrix spec, Appendices: Signing JSON — the example key (server "domain", key ID "ed25519:1").
constexpr const char* kSeed = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
constexpr const char* kPublicKey = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";

// Matrix spec, Appendices: Signing Events — the minimal and redactable example events.
const char* const kMinimalEvent =
    R"({"room_id":"!x:domain","sender":"@a:domain","origin":"domain","origin_server_ts":1000000,"signatures":{},"hashes":{},"type":"X","content":{},"prev_events":[],"auth_events":[],"depth":3,"unsigned":{"age_ts":1000000}})";
const char* const kRedactableEvent =
    R"({"content":{"body":"Here is the message content"},"event_id":"$0:domain","origin":"domain","origin_server_ts":1000000,"type":"m.room.message","room_id":"!r:domain","sender":"@u:domain","signatures":{},"unsigned":{"age_ts":1000000}})";

std::string signature_of(const json& object) { return object["signatures"]["domain"]["ed25519:1"]; }

}  // namespace

TEST_CASE("the spec's example seed gives the spec's public key") {
  const auto key = mx::SigningKey::from_seed("ed25519:1", kSeed);
  CHECK(key.public_key_base64() == kPublicKey);
  // The spec's seed sets the last character's unused bits; re-encoding clears them.
  CHECK(key.seed_base64() == "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0");
  CHECK(key.key_id() == "ed25519:1");
}

TEST_CASE("signing JSON matches the spec appendix vectors") {
  // Matrix spec, Appendices: Signing JSON.
  const auto key = mx::SigningKey::from_seed("ed25519:1", kSeed);
  const json empty = mx::sign_json(json::object(), "domain", key);
  CHECK(empty == json{{"signatures", {{"domain", {{"ed25519:1", "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}}}}});
  const json two = mx::sign_json(json{{"one", 1}, {"two", "Two"}}, "domain", key);
  CHECK(signature_of(two) ==
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw");
  CHECK(mx::verify_json_signature(empty, "domain", "ed25519:1", kPublicKey));
  CHECK(mx::verify_json_signature(two, "domain", "ed25519:1", kPublicKey));
}

TEST_CASE("signing JSON ignores and restores unsigned, and keeps other signatures") {
  const auto key = mx::SigningKey::from_seed("ed25519:1", kSeed);
  const json object = {{"one", 1},
                       {"two", "Two"},
                       {"unsigned", {{"age", 5}}},
                       {"signatures", {{"other", {{"ed25519:x", "abc"}}}, {"domain", {{"ed25519:0", "old"}}}}}};
  const json signed_object = mx::sign_json(object, "domain", key);
  CHECK(signed_object["unsigned"] == json{{"age", 5}});
  CHECK(signed_object["signatures"]["other"] == json{{"ed25519:x", "abc"}});
  CHECK(signed_object["signatures"]["domain"]["ed25519:0"] == "old");
  CHECK(signature_of(signed_object) ==
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw");
  CHECK_THROWS_AS(mx::sign_json(json::array(), "domain", key), coop::Error);
  CHECK_THROWS_AS(mx::sign_json(json{{"f", 0.5}}, "domain", key), coop::Error);
}

TEST_CASE("signature verification fails on tampering or bad keys") {
  const auto key = mx::SigningKey::from_seed("ed25519:1", kSeed);
  json object = mx::sign_json(json{{"one", 1}}, "domain", key);
  CHECK(mx::verify_json_signature(object, "domain", "ed25519:1", kPublicKey));
  CHECK_FALSE(mx::verify_json_signature(object, "domain", "ed25519:2", kPublicKey));
  CHECK_FALSE(mx::verify_json_signature(object, "other", "ed25519:1", kPublicKey));
  CHECK_FALSE(mx::verify_json_signature(object, "domain", "ed25519:1", "not base64!"));
  CHECK_FALSE(mx::verify_json_signature(object, "domain", "ed25519:1", "Zm9v"));
  const auto other = mx::SigningKey::generate("ed25519:1");
  CHECK_FALSE(mx::verify_json_signature(object, "domain", "ed25519:1", other.public_key_base64()));
  object["unsigned"] = {{"anything", true}};
  CHECK(mx::verify_json_signature(object, "domain", "ed25519:1", kPublicKey));
  object["one"] = 2;
  CHECK_FALSE(mx::verify_json_signature(object, "domain", "ed25519:1", kPublicKey));
  object["one"] = 1.5;
  CHECK_FALSE(mx::verify_json_signature(object, "domain", "ed25519:1", kPublicKey));
  CHECK_FALSE(mx::verify_json_signature(json::array(), "domain", "ed25519:1", kPublicKey));
  CHECK_FALSE(mx::verify_json_signature(json{{"signatures", {{"domain", {{"ed25519:1", 5}}}}}}, "domain",
                                        "ed25519:1", kPublicKey));
}

TEST_CASE("signing the spec's example events under room version 10") {
  // Matrix spec, Appendices: Signing Events (redaction rules of room versions 1-10, which keep
  // "origin").
  const auto key = mx::SigningKey::from_seed("ed25519:1", kSeed);
  const json minimal = mx::sign_event(mx::with_content_hash(json::parse(kMinimalEvent)), "domain", key, "10");
  CHECK(minimal["hashes"]["sha256"] == "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos");
  CHECK(signature_of(minimal) ==
        "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg");
  CHECK(minimal["unsigned"] == json{{"age_ts", 1000000}});

  const json redactable = mx::sign_event(mx::with_content_hash(json::parse(kRedactableEvent)), "domain", key, "10");
  CHECK(redactable["hashes"]["sha256"] == "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g");
  CHECK(signature_of(redactable) ==
        "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA");
  CHECK(redactable["content"] == json{{"body", "Here is the message content"}});  // full content returned
  CHECK(mx::verify_event_signature(redactable, "domain", "ed25519:1", kPublicKey, "10"));
}

TEST_CASE("signing the redactable example event under room version 11 matches python3-signedjson") {
  // Independent signer: Debian's python3-signedjson sign_json over the v11-redacted event
  // {"content":{},"event_id":"$0:domain","hashes":{"sha256":"onLKD1..."},"origin_server_ts":1000000,
  //  "room_id":"!r:domain","sender":"@u:domain","signatures":{},"type":"m.room.message"}
  // (no "origin"), with the spec's example key.
  const auto key = mx::SigningKey::from_seed("ed25519:1", kSeed);
  const json event = mx::sign_event(mx::with_content_hash(json::parse(kRedactableEvent)), "domain", key, "11");
  CHECK(signature_of(event) ==
        "4WQB/6LN2OtkUN/+18xUNB/U4RTX1N3EeKBdlCxux08YO8izKDrSRqML1XB8V97IK7AujkNO1xMl7TaBLA4kDw");
  CHECK(mx::verify_event_signature(event, "domain", "ed25519:1", kPublicKey, "11"));
  CHECK_FALSE(mx::verify_event_signature(event, "domain", "ed25519:1", kPublicKey, "10"));
  CHECK_FALSE(mx::verify_event_signature(event, "domain", "ed25519:1", kPublicKey, "unknown"));

  // Redacted content does not affect the signature; the hashed-in content hash does.
  json edited = event;
  edited["content"]["body"] = "changed";
  CHECK(mx::verify_event_signature(edited, "domain", "ed25519:1", kPublicKey, "11"));
  CHECK(mx::content_hash(edited) != edited["hashes"]["sha256"].get<std::string>());
}

TEST_CASE("sign_event requires a content hash and keeps earlier signatures") {
  const auto key = mx::SigningKey::from_seed("ed25519:1", kSeed);
  CHECK_THROWS_AS(mx::sign_event(json::parse(kRedactableEvent), "domain", key, "11"), coop::Error);
  json event = mx::with_content_hash(json::parse(kRedactableEvent));
  event["signatures"] = {{"origin.example", {{"ed25519:o", "sig"}}}};
  const json signed_event = mx::sign_event(event, "domain", key, "11");
  CHECK(signed_event["signatures"]["origin.example"] == json{{"ed25519:o", "sig"}});
  CHECK(signed_event["signatures"]["domain"].contains("ed25519:1"));
}

TEST_CASE("signing keys validate key IDs and seeds, and generated keys differ") {
  CHECK_THROWS_AS(mx::SigningKey::generate("rsa:1"), coop::Error);
  CHECK_THROWS_AS(mx::SigningKey::generate("ed25519:"), coop::Error);
  CHECK_THROWS_AS(mx::SigningKey::generate("ed25519:a-b"), coop::Error);
  CHECK_THROWS_AS(mx::SigningKey::from_seed("ed25519:1", "Zm9v"), coop::Error);
  CHECK_THROWS_AS(mx::SigningKey::from_seed("ed25519:1", "%%%"), coop::Error);
  CHECK_NOTHROW(mx::SigningKey::from_seed("ed25519:a_XyZ1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0="));

  auto first = mx::SigningKey::generate("ed25519:a_XyZ1");
  const auto second = mx::SigningKey::generate("ed25519:a_XyZ1");
  CHECK(first.public_key_base64() != second.public_key_base64());
  const auto restored = mx::SigningKey::from_seed("ed25519:a_XyZ1", first.seed_base64());
  CHECK(restored.public_key_base64() == first.public_key_base64());
  CHECK(restored.sign("abc") == first.sign("abc"));  // Ed25519 is deterministic

  const std::string public_key = first.public_key_base64();
  mx::SigningKey moved = std::move(first);
  const json signed_object = mx::sign_json(json{{"a", 1}}, "s", moved);
  CHECK(mx::verify_json_signature(signed_object, "s", "ed25519:a_XyZ1", public_key));
}
