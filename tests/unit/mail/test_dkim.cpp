// DKIM signing (RFC 6376, RFC 8463) and the keyring.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <filesystem>

#include "common/base64.h"
#include "tests/unit/common/temp_dir.h"
#include "workers/mail/auth/dkim.h"
#include "workers/mail/auth/dkim_keyring.h"

using namespace coop::mail::dkim;

namespace {

// RFC 8463 A.2's key, from its 32-byte seed, as PKCS#8 PEM (RFC 8410 7).
std::string rfc8463_pem() {
  const auto seed = coop::base64_decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=").value();
  const std::string prefix("\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20", 16);
  return "-----BEGIN PRIVATE KEY-----\n" + coop::base64_encode(prefix + seed) + "\n-----END PRIVATE KEY-----\n";
}

// RFC 6376 A.2's message (RFC 8463 A.3 signs it).
const std::string kMessage =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n";

}  // namespace

TEST_CASE("relaxed canonicalisation follows RFC 6376 3.4.5's example") {
  const std::string header = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n";
  const auto fields = header_fields(header);
  REQUIRE(fields.size() == 2);
  CHECK(fields[0].name == "a");
  CHECK(fields[1].name == "b");
  CHECK(relaxed_header(fields[0].raw) == "a:X\r\n");
  CHECK(relaxed_header(fields[1].raw) == "b:Y Z\r\n");
  CHECK(relaxed_body(" C \r\nD \t E\r\n\r\n\r\n") == " C\r\nD E\r\n");
  CHECK(relaxed_body("") == "");
  CHECK(relaxed_body("\r\n\r\n") == "");
  CHECK(relaxed_body("no final line end") == "no final line end\r\n");
}

TEST_CASE("RFC 8463 A: the Ed25519 key, body hash and signature come out exactly") {
  const auto key = Key::from_pem(rfc8463_pem(), "football.example.com", "brisbane");
  CHECK(key.algorithm() == Algorithm::ed25519_sha256);
  CHECK(key.dns_record() == "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  const auto split = kMessage.find("\r\n\r\n") + 4;
  CHECK(body_hash(kMessage.substr(split)) == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
  // A.3's signature field with b= empty; Ed25519 is deterministic, so b= must match.
  const std::string field =
      "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
      " d=football.example.com; i=@football.example.com;\r\n"
      " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
      " subject : date : message-id : from : subject : date;\r\n"
      " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
      " b=";
  const auto data = signed_data(header_fields(kMessage.substr(0, split)),
                                {"from", "to", "subject", "date", "message-id", "from", "subject", "date"}, field);
  CHECK(coop::base64_encode(key.sign(data)) ==
        "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
}

TEST_CASE("sign_message signs and oversigns what is there, folded under 80 columns") {
  const auto key = Key::from_pem(rfc8463_pem(), "football.example.com", "brisbane");
  const auto field = sign_message(kMessage, key, 1528637909);
  CHECK(field.rfind("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;", 0) == 0);
  CHECK(field.find("d=football.example.com;") != std::string::npos);
  CHECK(field.find("t=1528637909;") != std::string::npos);
  std::string unfolded = field;
  for (std::size_t p; (p = unfolded.find("\r\n\t")) != std::string::npos;) unfolded.erase(p, 3);
  CHECK(unfolded.find("h=from:from:subject:subject:date:date:to:to:message-id:message-id;") != std::string::npos);
  std::size_t start = 0;
  while (start < field.size()) {
    const auto end = field.find("\r\n", start);
    CHECK(end - start <= 80);
    start = end + 2;
  }
  // The same message and key always sign alike; another body does not.
  CHECK(sign_message(kMessage, key, 1528637909) == field);
  CHECK(sign_message(kMessage + "P.S.\r\n", key, 1528637909) != field);
}

TEST_CASE("RSA keys are 2048 bits and publish their SubjectPublicKeyInfo") {
  const auto key = Key::generate(Algorithm::rsa_sha256, "example.org", "r1");
  const auto again = Key::from_pem(key.private_pem(), "example.org", "r1");
  CHECK(again.dns_record() == key.dns_record());
  CHECK(key.dns_record().rfind("v=DKIM1; k=rsa; p=MIIBIjAN", 0) == 0);  // 2048-bit SPKI
  CHECK(key.sign("data").size() == 256);
  CHECK_THROWS(Key::from_pem("not a key", "example.org", "r1"));
}

TEST_CASE("the keyring stores keys 0600, signs with every active one and retires") {
  coop::test::TempDir dir;
  const auto root = dir.path() / "dkim";
  {
    Keyring ring(root);
    CHECK_FALSE(ring.has_keys("example.org"));
    CHECK(ring.sign("example.org", kMessage, 1).empty());
    const auto rsa = ring.generate("Example.ORG", Algorithm::rsa_sha256, "");
    CHECK(rsa.selector.size() == 7);  // r + YYYYMM
    CHECK(rsa.dns_name == rsa.selector + "._domainkey.example.org");
    ring.generate("example.org", Algorithm::ed25519_sha256, "e1");
    CHECK_THROWS(ring.generate("example.org", Algorithm::ed25519_sha256, "e1"));
    CHECK_THROWS(ring.generate("example.org", Algorithm::ed25519_sha256, "../x"));
    CHECK_THROWS(ring.generate("bad..domain", Algorithm::ed25519_sha256, "e2"));
    struct stat st {};
    REQUIRE(::stat((root / "example.org" / "e1.pem").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
  Keyring ring(root);  // loads what is on disk
  REQUIRE(ring.list("example.org").size() == 2);
  auto signed_fields = ring.sign("example.org", kMessage, 1);
  CHECK(signed_fields.find("s=e1;") != std::string::npos);
  CHECK(signed_fields.find("a=rsa-sha256") != std::string::npos);
  ring.retire("example.org", "e1");
  CHECK_THROWS(ring.retire("example.org", "e1"));
  signed_fields = ring.sign("example.org", kMessage, 1);
  CHECK(signed_fields.find("s=e1;") == std::string::npos);
  CHECK(std::filesystem::exists(root / "example.org" / "e1.pem.retired"));
  Keyring reloaded(root);
  const auto keys = reloaded.list("example.org");
  REQUIRE(keys.size() == 2);
  CHECK((keys[0].selector == "e1" && !keys[0].active));
}

#include "workers/mail/auth/dkim_verify.h"
#include "workers/mail/auth/dmarc.h"

TEST_CASE("verification accepts what coop signs and RFC 8463 A.3, and refuses changes") {
  const auto key = Key::from_pem(rfc8463_pem(), "football.example.com", "brisbane");
  const auto signed_message = sign_message(kMessage, key, 1528637909) + kMessage;
  const auto fields = signature_fields(signed_message);
  REQUIRE(fields.size() == 1);
  std::string error;
  const auto sig = parse_signature(fields[0], &error);
  REQUIRE(sig);
  CHECK(verify_signature(signed_message, *sig, key.dns_record(), 0).result == "pass");
  // A changed body, a changed signed header, a revoked key, a wrong key type.
  auto body = signed_message;
  body.replace(body.find("hungry"), 6, "thirst");
  CHECK(verify_signature(body, *sig, key.dns_record(), 0).result == "fail");
  auto header = signed_message;
  header.replace(header.find("Is dinner ready?"), 16, "Is lunch ready??");
  CHECK(verify_signature(header, *sig, key.dns_record(), 0).result == "fail");
  CHECK(verify_signature(signed_message, *sig, "v=DKIM1; k=ed25519; p=", 0).result == "fail");
  CHECK(verify_signature(signed_message, *sig, "v=DKIM1; k=rsa; p=MIIB", 0).result == "permerror");
  // An added From: above the signed one is what oversigning catches.
  CHECK(verify_signature("From: mallory@evil.example\r\n" + signed_message, *sig, key.dns_record(), 0).result == "fail");

  const std::string rfc =
      "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
      " d=football.example.com; i=@football.example.com;\r\n"
      " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
      " subject : date : message-id : from : subject : date;\r\n"
      " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
      " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
      " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n" + kMessage;
  const auto rfc_sig = parse_signature(signature_fields(rfc)[0], &error);
  REQUIRE(rfc_sig);
  CHECK(rfc_sig->headers.size() == 8);
  CHECK(verify_signature(rfc, *rfc_sig, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", 0).result == "pass");
}

TEST_CASE("malformed signatures are permerrors with a reason") {
  std::string error;
  CHECK_FALSE(parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; b=AA; bh=AA", &error));
  CHECK(error.find("h=") != std::string::npos);
  CHECK_FALSE(parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=to; b=AA; bh=AA", &error));
  CHECK(error.find("From") != std::string::npos);
  CHECK_FALSE(parse_signature("DKIM-Signature: v=1; v=1; a=rsa-sha256; d=x.example; s=s; h=from; b=AA; bh=AA", &error));
  CHECK_FALSE(parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from; b=AA; bh=AA; i=a@evil.example", &error));
  CHECK_FALSE(parse_signature("DKIM-Signature: v=2; a=rsa-sha256; d=x.example; s=s; h=from; b=AA; bh=AA", &error));
  CHECK_FALSE(parse_signature("DKIM-Signature", &error));
}

TEST_CASE("DMARC records and organizational domains") {
  using coop::mail::dmarc::organizational_domain;
  using coop::mail::dmarc::parse_record;
  CHECK(organizational_domain("mail.example.co.uk") == "example.co.uk");
  CHECK(organizational_domain("a.b.example.com") == "example.com");
  CHECK(organizational_domain("example.org") == "example.org");
  const auto r = parse_record("v=DMARC1; p=quarantine; sp=reject; adkim=s; pct=20");
  REQUIRE(r);
  CHECK(r->policy == "quarantine");
  CHECK(r->subdomain_policy == "reject");
  CHECK(r->strict_dkim);
  CHECK_FALSE(r->strict_spf);
  CHECK(r->percent == 20);
  CHECK_FALSE(parse_record("p=reject; v=DMARC1"));
  CHECK_FALSE(parse_record("v=DMARC1; p=bogus"));
  CHECK_FALSE(parse_record("v=spf1 -all"));
}
