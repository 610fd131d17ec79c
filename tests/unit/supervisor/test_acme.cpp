// The ACME client's cryptography and the challenge files every worker answers from.
#include <catch2/catch.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "common/base64.h"
#include "common/config.h"
#include "common/net/acme_challenge.h"
#include "../common/temp_dir.h"
#include "workers/supervisor/acme_crypto.h"
#include "workers/supervisor/certificate_renewer.h"

using namespace coop;

namespace {

std::string base64url_decode(std::string text) {
  for (auto& c : text) c = c == '-' ? '+' : c == '_' ? '/' : c;
  return base64_decode(text).value();
}

std::string sha256(const std::string& bytes) {
  unsigned char digest[32];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), length);
}

}  // namespace

TEST_CASE("the JWK thumbprint is RFC 7638's for its example key") {
  // RFC 7638 3.1: the RSA key of RFC 7517 appendix A.1 (members beyond kty, n and e ignored).
  const nlohmann::json jwk = {
      {"kty", "RSA"},
      {"n", "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
            "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n9"
            "1CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"},
      {"e", "AQAB"},
      {"alg", "RS256"},
      {"kid", "2011-04-29"}};
  CHECK(acme::jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  CHECK(acme::key_authorization("tok", jwk) == "tok.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

TEST_CASE("an account key signs ES256 JWS that its public key verifies") {
  const auto key = acme::AccountKey::generate();
  const auto jwk = key.jwk();
  CHECK(jwk["kty"] == "EC");
  CHECK(base64url_decode(jwk["x"]).size() == 32);

  const auto jws = key.sign({{"identifiers", nlohmann::json::array()}}, "nonce-1", "https://ca.test/new-order", "");
  const auto header = nlohmann::json::parse(base64url_decode(jws["protected"]));
  CHECK(header["alg"] == "ES256");
  CHECK(header["nonce"] == "nonce-1");
  CHECK(header["url"] == "https://ca.test/new-order");
  CHECK(header["jwk"] == jwk);
  CHECK_FALSE(header.contains("kid"));

  // RFC 7518 3.4: R and S, 32 bytes each, which OpenSSL verifies once made DER again.
  const auto raw = base64url_decode(jws["signature"]);
  REQUIRE(raw.size() == 64);
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int der_length = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  const std::string pem = key.private_pem();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  const std::string input = jws["protected"].get<std::string>() + "." + jws["payload"].get<std::string>();
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  REQUIRE(EVP_DigestVerifyInit(context, nullptr, EVP_sha256(), nullptr, pkey) == 1);
  CHECK(EVP_DigestVerify(context, der, der_length, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  EVP_MD_CTX_free(context);
  EVP_PKEY_free(pkey);
  OPENSSL_free(der);

  // With an account URL, kid replaces jwk; POST-as-GET has an empty payload (RFC 8555 6.3).
  const auto get = key.sign(nullptr, "n2", "https://ca.test/order/1", "https://ca.test/acct/7");
  const auto get_header = nlohmann::json::parse(base64url_decode(get["protected"]));
  CHECK(get_header["kid"] == "https://ca.test/acct/7");
  CHECK_FALSE(get_header.contains("jwk"));
  CHECK(get["payload"] == "");
}

TEST_CASE("an account key is kept in its file and read back the same") {
  test::TempDir dir;
  const auto file = dir.path() / "acme-account.key";
  const auto first = acme::AccountKey::load_or_create(file);
  CHECK((std::filesystem::status(file).permissions() & std::filesystem::perms::others_read) == std::filesystem::perms::none);
  CHECK(acme::AccountKey::load_or_create(file).jwk() == first.jwk());
}

TEST_CASE("a CSR names every DNS name and is signed by the new key") {
  for (const std::string type : {"ecdsa-p256", "rsa-2048"}) {
    const auto made = acme::make_key_and_csr({"example.org", "mail.example.org"}, type);
    const auto* cursor = reinterpret_cast<const unsigned char*>(made.csr_der.data());
    X509_REQ* request = d2i_X509_REQ(nullptr, &cursor, static_cast<long>(made.csr_der.size()));
    REQUIRE(request);
    EVP_PKEY* public_key = X509_REQ_get_pubkey(request);
    CHECK(X509_REQ_verify(request, public_key) == 1);
    STACK_OF(X509_EXTENSION)* extensions = X509_REQ_get_extensions(request);
    auto* names = static_cast<GENERAL_NAMES*>(X509V3_get_d2i(extensions, NID_subject_alt_name, nullptr, nullptr));
    REQUIRE(names);
    CHECK(sk_GENERAL_NAME_num(names) == 2);
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
    EVP_PKEY_free(public_key);
    X509_REQ_free(request);
    CHECK(made.key_pem.find("PRIVATE KEY") != std::string::npos);
  }
  // A name that could smuggle another subjectAltName entry in is refused.
  CHECK_THROWS(acme::make_key_and_csr({"example.org,DNS:evil.test"}, "ecdsa-p256"));
  CHECK_THROWS(acme::make_key_and_csr({"example.org"}, "dsa-1024"));
}

TEST_CASE("a TLS-ALPN-01 certificate carries the key authorization's digest, critical") {
  const auto pem = acme::make_tls_alpn01_certificate("mail.example.org", "token.thumb");
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  REQUIRE(cert);
  REQUIRE(key);
  CHECK(X509_check_private_key(cert, key) == 1);
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  const int at = X509_get_ext_by_OBJ(cert, oid, -1);
  REQUIRE(at >= 0);
  X509_EXTENSION* extension = X509_get_ext(cert, at);
  CHECK(X509_EXTENSION_get_critical(extension) == 1);
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(extension);
  const std::string bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)), ASN1_STRING_length(value));
  CHECK(bytes == std::string("\x04\x20", 2) + sha256("token.thumb"));
  CHECK(X509_check_host(cert, "mail.example.org", 0, 0, nullptr) == 1);
  ASN1_OBJECT_free(oid);
  EVP_PKEY_free(key);
  X509_free(cert);
}

TEST_CASE("challenge answers are found by token and name, and nothing else reaches a path") {
  test::TempDir dir;
  net::set_acme_challenge_dir(dir.path());
  net::publish_acme_http01("abc-DEF_123", "abc-DEF_123.thumb");
  CHECK(net::acme_http01_answer("abc-DEF_123") == "abc-DEF_123.thumb");
  CHECK_FALSE(net::acme_http01_answer("nope"));
  for (const char* hostile : {"..", "../http-01/abc-DEF_123", "a/b", "", "abc DEF", "abc%2F"})
    CHECK_FALSE(net::acme_http01_answer(hostile));
  CHECK_THROWS(net::publish_acme_http01("../../x", "y"));

  net::publish_acme_tls_alpn01("mail.example.org", "PEM");
  CHECK(net::acme_tls_alpn01_pem("MAIL.Example.ORG") == "PEM");  // server names are case-blind
  for (const char* hostile : {"..", "../x", "mail..example.org", ".mail.example.org", "mail.example.org/", "-x.org"})
    CHECK_FALSE(net::acme_tls_alpn01_pem(hostile));

  net::withdraw_acme_challenges();
  CHECK_FALSE(net::acme_http01_answer("abc-DEF_123"));
  CHECK_FALSE(net::acme_tls_alpn01_pem("mail.example.org"));
  net::set_acme_challenge_dir({});
}

TEST_CASE("the shard's names come from its domain, mail host and public URLs") {
  test::TempDir dir;
  const auto file = dir.path() / "coop.toml";
  {
    std::ofstream out(file);
    out << "[shard]\ndomain = \"example.org\"\n"
           "[workers.mail.public]\nhostname = \"mail.example.org\"\n"
           "[workers.room]\npublic_url = \"https://chat.example.org:8443/\"\n"
           "[workers.tiles]\npublic_url = \"http://127.0.0.1:8080\"\n"
           "[workers.docs]\npublic_url = \"https://localhost/docs\"\n"
           "[workers.site]\npublic_url = \"https://Example.ORG/sites\"\n";
  }
  CHECK(CertificateRenewer::shard_names(Config::load(file)) ==
        std::vector<std::string>{"example.org", "mail.example.org", "chat.example.org"});
  {
    std::ofstream out(file);
    out << "[shard]\ndomain = \"example.org\"\n[tls]\nnames = [\"a.example.org\", \"b.example.org\"]\n";
  }
  CHECK(CertificateRenewer::shard_names(Config::load(file)) == std::vector<std::string>{"a.example.org", "b.example.org"});
}
