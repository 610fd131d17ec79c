// ACME's keys, signatures and certificates on OpenSSL 3's EVP interfaces.
#include "workers/supervisor/acme_crypto.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <nlohmann/json.hpp>

#include <array>
#include <fstream>
#include <sstream>

#include "common/base64.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/net/acme_challenge.h"
#include "common/openssl_util.h"

namespace coop::acme {

namespace {

template <auto Free>
using OpenSslFree = openssl::Deleter<Free>;
using Bio = std::unique_ptr<BIO, OpenSslFree<BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, OpenSslFree<BN_free>>;
using DigestContext = std::unique_ptr<EVP_MD_CTX, OpenSslFree<EVP_MD_CTX_free>>;
using EcSignature = std::unique_ptr<ECDSA_SIG, OpenSslFree<ECDSA_SIG_free>>;
using Request = std::unique_ptr<X509_REQ, OpenSslFree<X509_REQ_free>>;
using Certificate = std::unique_ptr<X509, OpenSslFree<X509_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, OpenSslFree<X509_EXTENSION_free>>;
using Object = std::unique_ptr<ASN1_OBJECT, OpenSslFree<ASN1_OBJECT_free>>;
using OctetString = std::unique_ptr<ASN1_OCTET_STRING, OpenSslFree<ASN1_OCTET_STRING_free>>;
using openssl::fail;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* key) {
  if (!key) fail("cannot make a key");
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

std::shared_ptr<EVP_PKEY> new_key(const std::string& type) {
  if (type == "ecdsa-p256") return own(EVP_EC_gen("P-256"));
  if (type == "rsa-2048") return own(EVP_RSA_gen(2048));
  throw Error(errc::kConfigInvalid, "[tls] acme_key_type must be ecdsa-p256 or rsa-2048, not " + type, 400);
}

std::string sha256(std::string_view bytes) {
  std::string digest(32, '\0');
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), reinterpret_cast<unsigned char*>(digest.data()), &length, EVP_sha256(),
                 nullptr) != 1)
    fail("SHA-256 failed");
  return digest;
}

std::string big_endian(const char* param, EVP_PKEY* key) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) fail("cannot read the account key");
  Bignum number(raw);
  std::string out(32, '\0');
  if (BN_bn2binpad(number.get(), reinterpret_cast<unsigned char*>(out.data()), 32) != 32) fail("bad P-256 coordinate");
  return out;
}

std::string private_pem_of(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) fail("cannot write a key");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

void check_names(const std::vector<std::string>& names) {
  if (names.empty()) throw Error(errc::kConfigInvalid, "no names to certify", 400);
  for (const auto& name : names)
    if (!net::valid_acme_name(name))
      throw Error(errc::kConfigInvalid, "'" + name + "' is not a DNS name an ACME server certifies", 400);
}

// "DNS:a,DNS:b": the names were checked, so none can add an entry of its own.
Extension alt_names(const std::vector<std::string>& names) {
  std::string value;
  for (const auto& name : names) value += (value.empty() ? "DNS:" : ",DNS:") + name;
  Extension extension(X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, value.c_str()));
  if (!extension) fail("cannot make subjectAltName");
  return extension;
}

}  // namespace

AccountKey AccountKey::generate() { return AccountKey(new_key("ecdsa-p256")); }

AccountKey AccountKey::from_pem(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  auto key = own(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC || EVP_PKEY_get_bits(key.get()) != 256)
    throw Error(errc::kTlsError, "the ACME account key is not an EC P-256 key", 500);
  return AccountKey(std::move(key));
}

AccountKey AccountKey::load_or_create(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (in) {
    std::ostringstream text;
    text << in.rdbuf();
    return from_pem(text.str());
  }
  auto key = generate();
  create_file_durably(file, key.private_pem(), 0600);
  return key;
}

std::string AccountKey::private_pem() const { return private_pem_of(key_.get()); }

nlohmann::json AccountKey::jwk() const {
  return {{"kty", "EC"},
          {"crv", "P-256"},
          {"x", base64url_encode(big_endian(OSSL_PKEY_PARAM_EC_PUB_X, key_.get()))},
          {"y", base64url_encode(big_endian(OSSL_PKEY_PARAM_EC_PUB_Y, key_.get()))}};
}

nlohmann::json AccountKey::sign(const nlohmann::json& payload, const std::string& nonce, const std::string& url,
                                const std::string& kid) const {
  nlohmann::json header = {{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
  if (kid.empty())
    header["jwk"] = jwk();
  else
    header["kid"] = kid;
  const std::string protected_b64 = base64url_encode(header.dump());
  const std::string payload_b64 = payload.is_null() ? "" : base64url_encode(payload.dump());
  const std::string input = protected_b64 + "." + payload_b64;

  DigestContext context(EVP_MD_CTX_new());
  std::size_t length = 0;
  if (!context || EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1)
    fail("cannot sign an ACME request");
  std::string der(length, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(der.data()), &length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    fail("cannot sign an ACME request");
  // RFC 7518 3.4: the signature is R and S, 32 bytes each, not OpenSSL's DER.
  const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
  EcSignature signature(d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(length)));
  if (!signature) fail("cannot read an ECDSA signature");
  std::string raw(64, '\0');
  if (BN_bn2binpad(ECDSA_SIG_get0_r(signature.get()), reinterpret_cast<unsigned char*>(raw.data()), 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(signature.get()), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32) != 32)
    fail("bad ECDSA signature");
  return {{"protected", protected_b64}, {"payload", payload_b64}, {"signature", base64url_encode(raw)}};
}

std::string jwk_thumbprint(const nlohmann::json& jwk) {
  // nlohmann::json keeps object members sorted and dumps without whitespace: RFC 7638's form.
  nlohmann::json required;
  const std::string kty = jwk.value("kty", "");
  const std::vector<std::string> members = kty == "EC"    ? std::vector<std::string>{"crv", "kty", "x", "y"}
                                           : kty == "RSA" ? std::vector<std::string>{"e", "kty", "n"}
                                                          : std::vector<std::string>{};
  if (members.empty()) throw Error(errc::kTlsError, "a JWK of type '" + kty + "' has no thumbprint here", 500);
  for (const auto& member : members) required[member] = jwk.at(member);
  return base64url_encode(sha256(required.dump()));
}

std::string key_authorization(const std::string& token, const nlohmann::json& account_jwk) {
  return token + "." + jwk_thumbprint(account_jwk);
}

KeyAndCsr make_key_and_csr(const std::vector<std::string>& names, const std::string& key_type) {
  check_names(names);
  const auto key = new_key(key_type);
  Request request(X509_REQ_new());
  if (!request || X509_REQ_set_version(request.get(), X509_REQ_VERSION_1) != 1) fail("cannot make a CSR");
  X509_NAME* subject = X509_REQ_get_subject_name(request.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(names[0].c_str()),
                                 -1, -1, 0) != 1 ||
      X509_REQ_set_pubkey(request.get(), key.get()) != 1)
    fail("cannot make a CSR");
  STACK_OF(X509_EXTENSION)* extensions = sk_X509_EXTENSION_new_null();
  auto names_extension = alt_names(names);
  sk_X509_EXTENSION_push(extensions, names_extension.get());
  const int added = X509_REQ_add_extensions(request.get(), extensions);
  sk_X509_EXTENSION_free(extensions);
  if (added != 1 || X509_REQ_sign(request.get(), key.get(), EVP_sha256()) <= 0) fail("cannot sign the CSR");
  const int length = i2d_X509_REQ(request.get(), nullptr);
  std::string der(static_cast<std::size_t>(length), '\0');
  auto* cursor = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(request.get(), &cursor);
  return {private_pem_of(key.get()), der};
}

std::string make_tls_alpn01_certificate(const std::string& name, const std::string& key_authorization) {
  check_names({name});
  const auto key = new_key("ecdsa-p256");
  Certificate cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("cannot make a challenge certificate");
  std::array<unsigned char, 16> serial{};
  RAND_bytes(serial.data(), serial.size());
  serial[0] &= 0x7f;
  Bignum serial_number(BN_bin2bn(serial.data(), serial.size(), nullptr));
  BN_to_ASN1_INTEGER(serial_number.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), subject);
  X509_set_pubkey(cert.get(), key.get());
  auto names_extension = alt_names({name});
  X509_add_ext(cert.get(), names_extension.get(), -1);
  // id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31), critical; its value is the DER of an
  // OCTET STRING holding the 32-byte SHA-256 of the key authorization.
  Object oid(OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));
  std::string value = std::string("\x04\x20", 2) + sha256(key_authorization);
  OctetString octets(ASN1_OCTET_STRING_new());
  if (!oid || !octets ||
      ASN1_OCTET_STRING_set(octets.get(), reinterpret_cast<const unsigned char*>(value.data()),
                            static_cast<int>(value.size())) != 1)
    fail("cannot make the acmeIdentifier extension");
  Extension identifier(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, octets.get()));
  if (!identifier || X509_add_ext(cert.get(), identifier.get(), -1) != 1) fail("cannot add the acmeIdentifier extension");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) fail("cannot sign the challenge certificate");
  Bio bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(bio.get(), cert.get())) fail("cannot write the challenge certificate");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size)) + private_pem_of(key.get());
}

}  // namespace coop::acme
