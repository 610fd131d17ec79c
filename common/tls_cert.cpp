// Generates the self-signed key and certificate a new shard starts with (OpenSSL 3 EVP APIs).
#include "common/tls_cert.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <string_view>

#include "common/error.h"
#include "common/fs.h"
#include "common/openssl_util.h"

namespace coop {

namespace {

template <auto Free>
using OpenSslFree = openssl::Deleter<Free>;
using Pkey = std::unique_ptr<EVP_PKEY, OpenSslFree<EVP_PKEY_free>>;
using Certificate = std::unique_ptr<X509, OpenSslFree<X509_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, OpenSslFree<X509_EXTENSION_free>>;
using Bignum = std::unique_ptr<BIGNUM, OpenSslFree<BN_free>>;
using Bio = std::unique_ptr<BIO, OpenSslFree<BIO_free_all>>;
using openssl::fail;

bool is_ip_literal(const std::string& text) {
  std::array<unsigned char, 16> address{};
  return ::inet_pton(AF_INET, text.c_str(), address.data()) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), address.data()) == 1;
}

// The name ends up inside an X509V3 config string ("DNS:a,DNS:b"), so anything but a
// plain host name could smuggle in extra entries.
bool is_host_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string subject_alt_names(const std::string& domain) {
  std::string names = is_ip_literal(domain) ? "IP:" + domain : "DNS:" + domain;
  if (domain != "localhost") names += ",DNS:localhost";
  if (domain != "127.0.0.1") names += ",IP:127.0.0.1";
  return names;
}

void add_extension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
  Extension extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
  if (!extension || X509_add_ext(cert, extension.get(), -1) != 1)
    fail("cannot add certificate extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
}

// RFC 5280 4.1.2.2: a positive serial of at most 20 octets; 128 random bits keep
// regenerated certificates from colliding in clients' caches.
void set_random_serial(X509* cert) {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) fail("cannot draw a random serial");
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;  // never zero
  Bignum serial(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr)
    fail("cannot set the certificate serial");
}

Certificate make_certificate(const std::string& domain, EVP_PKEY* key, int days) {
  Certificate cert(X509_new());
  if (!cert) fail("cannot allocate a certificate");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("cannot set the certificate version");
  set_random_serial(cert.get());
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 24 * 60 * 60) == nullptr)
    fail("cannot set the certificate validity");
  if (X509_set_pubkey(cert.get(), key) != 1) fail("cannot set the certificate key");

  // RFC 5280 4.1.2.6: CN is limited to 64 characters; clients match on subjectAltName anyway (RFC 6125).
  const std::string common_name = domain.size() <= 64 ? domain : "coop";
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1)
    fail("cannot set the certificate subject");

  add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), NID_key_usage, "critical,digitalSignature");
  add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), NID_subject_alt_name, subject_alt_names(domain));

  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) fail("cannot sign the certificate");
  return cert;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("cannot encode the private key");
  return bio_text(bio.get());
}

std::string cert_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("cannot encode the certificate");
  return bio_text(bio.get());
}

// Wipes the key's PEM text when it goes out of scope, however we leave.
struct SecretText {
  std::string text;
  ~SecretText() { OPENSSL_cleanse(text.data(), text.size()); }
};

}  // namespace

void generate_self_signed_cert(const std::string& domain, const std::filesystem::path& key_path,
                               const std::filesystem::path& cert_path, int days) {
  if (!is_host_name(domain) && !is_ip_literal(domain))
    throw Error(errc::kTlsError, "cannot make a certificate for '" + domain + "': not a host name", 400);
  if (days <= 0) throw Error(errc::kTlsError, "certificate validity must be at least one day", 400);

  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("cannot generate an EC P-256 key");
  const Certificate cert = make_certificate(domain, key.get(), days);
  const SecretText key_text{key_pem(key.get())};
  const std::string cert_text = cert_pem(cert.get());

  try {
    create_file_durably(key_path, key_text.text, 0600);
  } catch (const Error& e) {
    throw Error(errc::kTlsError, std::string("cannot write TLS key: ") + e.what(), 500);
  }
  try {
    write_file_durably(cert_path, cert_text, 0644);
  } catch (const Error& e) {
    // A key without its certificate would block the next attempt (the key is created exclusively).
    ::unlink(key_path.c_str());
    throw Error(errc::kTlsError, std::string("cannot write TLS certificate: ") + e.what(), 500);
  }
}

}  // namespace coop
