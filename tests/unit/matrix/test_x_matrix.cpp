// Server-Server API "Request Authentication": the X-Matrix header, made and checked.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "workers/matrix/signing.h"
#include "workers/matrix/x_matrix.h"

using namespace coop::matrix;
using nlohmann::json;

namespace {
// The appendices' example key (../shared/vectors/matrix.md).
SigningKey key() { return SigningKey::from_seed("ed25519:1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"); }
}  // namespace

TEST_CASE("X-Matrix headers are parsed as auth-params") {
  auto h = parse_x_matrix(R"(X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF...")");
  REQUIRE(h);
  CHECK(h->origin == "origin.hs.example.com");
  CHECK(h->destination == "destination.hs.example.com");
  CHECK(h->key_id == "ed25519:key1");
  CHECK(h->signature == "ABCDEF...");
  // Unquoted values, a port in the name, spaces after commas, names in any case.
  h = parse_x_matrix("x-matrix Origin=a.test:8448, KEY=\"ed25519:a\", sig=\"s\\\"q\"");
  REQUIRE(h);
  CHECK(h->origin == "a.test:8448");
  CHECK(h->destination.empty());
  CHECK(h->signature == "s\"q");
  // Missing or repeated parameters, another scheme, unterminated quotes: refused.
  CHECK_FALSE(parse_x_matrix("X-Matrix origin=a,key=\"k\""));
  CHECK_FALSE(parse_x_matrix("X-Matrix origin=a,origin=b,key=\"k\",sig=\"s\""));
  CHECK_FALSE(parse_x_matrix("Bearer abc"));
  CHECK_FALSE(parse_x_matrix("X-Matrix origin=a,key=\"k,sig=\"s\""));
  CHECK_FALSE(parse_x_matrix(""));
  CHECK_FALSE(parse_x_matrix("X-Matrix "));
}

TEST_CASE("a request signed with X-Matrix verifies, and only as it was sent") {
  const auto k = key();
  const json body{{"pdus", json::array()}};
  const auto header = x_matrix_authorization("PUT", "/_matrix/federation/v1/send/1", "domain", "b.test", &body, k);
  const auto parsed = parse_x_matrix(header);
  REQUIRE(parsed);
  CHECK(parsed->origin == "domain");
  CHECK(parsed->key_id == "ed25519:1");
  const std::string public_key = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
  CHECK(verify_x_matrix(*parsed, "PUT", "/_matrix/federation/v1/send/1", "b.test", &body, public_key));
  CHECK_FALSE(verify_x_matrix(*parsed, "POST", "/_matrix/federation/v1/send/1", "b.test", &body, public_key));
  CHECK_FALSE(verify_x_matrix(*parsed, "PUT", "/_matrix/federation/v1/send/2", "b.test", &body, public_key));
  CHECK_FALSE(verify_x_matrix(*parsed, "PUT", "/_matrix/federation/v1/send/1", "c.test", &body, public_key));
  const json other{{"pdus", {1}}};
  CHECK_FALSE(verify_x_matrix(*parsed, "PUT", "/_matrix/federation/v1/send/1", "b.test", &other, public_key));
  CHECK_FALSE(verify_x_matrix(*parsed, "PUT", "/_matrix/federation/v1/send/1", "b.test", nullptr, public_key));
  CHECK_FALSE(verify_x_matrix(*parsed, "PUT", "/_matrix/federation/v1/send/1", "b.test", &body,
                              SigningKey::generate("ed25519:x").public_key_base64()));
  // A GET has no content member at all.
  const auto get = parse_x_matrix(x_matrix_authorization("GET", "/_matrix/federation/v1/version", "domain", "b.test", nullptr, k));
  CHECK(verify_x_matrix(*get, "GET", "/_matrix/federation/v1/version", "b.test", nullptr, public_key));
  CHECK(request_json("GET", "/x", "a", "b", nullptr).contains("content") == false);
}
