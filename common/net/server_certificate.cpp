// Reloadable server certificates: one entry per (certificate, key) path pair in the process,
// each handshake served from the entry's current pair.
#include "common/net/server_certificate.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <mutex>

#include "common/digest.h"
#include "common/error.h"
#include "common/net/acme_challenge.h"
#include "common/openssl_util.h"

namespace coop::net {

namespace {

using openssl::fail;
using X509Free = openssl::Deleter<X509_free>;
using KeyFree = openssl::Deleter<EVP_PKEY_free>;
using BioFree = openssl::Deleter<BIO_free>;
struct ChainFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

// One loaded pair; immutable once made, shared with the handshakes that use it.
struct Pair {
  std::unique_ptr<X509, X509Free> leaf;
  std::unique_ptr<STACK_OF(X509), ChainFree> chain{sk_X509_new_null()};
  std::unique_ptr<EVP_PKEY, KeyFree> key;
};

std::shared_ptr<Pair> load_pair(const std::filesystem::path& cert, const std::filesystem::path& key) {
  auto pair = std::make_shared<Pair>();
  std::unique_ptr<BIO, BioFree> cert_bio(BIO_new_file(cert.c_str(), "r"));
  if (!cert_bio) fail("cannot read TLS certificate " + cert.string());
  pair->leaf.reset(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!pair->leaf) fail("no PEM certificate in " + cert.string());
  while (X509* next = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) sk_X509_push(pair->chain.get(), next);
  ERR_clear_error();  // the end of the file reads as an error
  std::unique_ptr<BIO, BioFree> key_bio(BIO_new_file(key.c_str(), "r"));
  if (!key_bio) fail("cannot read TLS key " + key.string());
  pair->key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!pair->key) fail("no PEM private key in " + key.string());
  if (X509_check_private_key(pair->leaf.get(), pair->key.get()) != 1)
    fail("TLS key " + key.string() + " does not match certificate " + cert.string());
  return pair;
}

int64_t unix_seconds(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string name_text(const X509_NAME* name) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

CertificateInfo describe(X509* leaf) {
  CertificateInfo info;
  info.subject = name_text(X509_get_subject_name(leaf));
  info.issuer = name_text(X509_get_issuer_name(leaf));
  info.not_before = unix_seconds(X509_get0_notBefore(leaf));
  info.not_after = unix_seconds(X509_get0_notAfter(leaf));
  // Issued by itself: its own name as issuer and its own key's signature.
  info.self_signed = X509_NAME_cmp(X509_get_subject_name(leaf), X509_get_issuer_name(leaf)) == 0 &&
                     X509_verify(leaf, X509_get0_pubkey(leaf)) == 1;
  ERR_clear_error();
  if (auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type == GEN_DNS) {
        const auto* s = name->d.dNSName;
        info.names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
      } else if (name->type == GEN_IPADD) {
        const auto* s = name->d.iPAddress;
        const unsigned char* b = ASN1_STRING_get0_data(s);
        if (ASN1_STRING_length(s) == 4)
          info.names.push_back(std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." +
                               std::to_string(b[3]));
      }
    }
    GENERAL_NAMES_free(names);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(leaf, EVP_sha256(), digest, &length);
  info.sha256 = to_hex(digest, length);
  return info;
}

struct Entry {
  std::filesystem::path cert, key;
  std::mutex mutex;
  std::shared_ptr<Pair> current;

  std::shared_ptr<Pair> get() {
    std::lock_guard lock(mutex);
    return current;
  }
};

std::mutex g_registry_mutex;
std::map<std::pair<std::string, std::string>, std::unique_ptr<Entry>>& registry() {
  static std::map<std::pair<std::string, std::string>, std::unique_ptr<Entry>> entries;  // lives as long as the process
  return entries;
}

constexpr unsigned char kAcmeTls1[] = {'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1'};

bool acme_tls1_selected(const SSL* ssl) {
  const unsigned char* selected = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl, &selected, &length);
  return length == sizeof kAcmeTls1 && std::equal(selected, selected + length, kAcmeTls1);
}

// RFC 8737 3: a client that offers the acme-tls/1 protocol is an ACME server validating a
// TLS-ALPN-01 challenge; it gets the challenge certificate for its server name when the
// supervisor has published one, and the handshake is refused otherwise. Any other client
// negotiates no protocol, as before.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                unsigned int in_length, void*) {
  const unsigned char* offered = nullptr;  // the protocol in the client's list
  for (unsigned int i = 0; i < in_length;) {
    const unsigned int length = in[i];
    if (i + 1 + length > in_length) break;
    if (length == sizeof kAcmeTls1 && std::equal(in + i + 1, in + i + 1 + length, kAcmeTls1)) offered = in + i + 1;
    i += 1 + length;
  }
  if (!offered) return SSL_TLSEXT_ERR_NOACK;
  const char* server_name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const auto pem = server_name ? acme_tls_alpn01_pem(server_name) : std::nullopt;
  if (!pem) return SSL_TLSEXT_ERR_ALERT_FATAL;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!cert || !key || SSL_use_cert_and_key(ssl, cert.get(), key.get(), nullptr, 1) != 1) {
    ERR_clear_error();
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = offered;
  *out_length = sizeof kAcmeTls1;
  return SSL_TLSEXT_ERR_OK;
}

// OpenSSL calls this at each ClientHello: the handshake gets the entry's pair of the moment.
int use_current_pair(SSL* ssl, void* arg) {
  if (acme_tls1_selected(ssl)) return 1;  // the challenge certificate is in place (select_alpn)
  const auto pair = static_cast<Entry*>(arg)->get();
  if (!pair) return 0;
  return SSL_use_cert_and_key(ssl, pair->leaf.get(), pair->key.get(), pair->chain.get(), 1) == 1 ? 1 : 0;
}

}  // namespace

CertificateInfo check_certificate_pair(const std::filesystem::path& cert, const std::filesystem::path& key) {
  return describe(load_pair(cert, key)->leaf.get());
}

CertificateInfo certificate_info(const std::filesystem::path& cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(cert.c_str(), "r"));
  if (!bio) fail("cannot read TLS certificate " + cert.string());
  std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) fail("no PEM certificate in " + cert.string());
  return describe(leaf.get());
}

void serve_certificate(SSL_CTX* ctx, const std::filesystem::path& cert, const std::filesystem::path& key) {
  Entry* entry = nullptr;
  {
    std::lock_guard lock(g_registry_mutex);
    auto& slot = registry()[{cert.string(), key.string()}];
    if (!slot) {
      slot = std::make_unique<Entry>();
      slot->cert = cert;
      slot->key = key;
    }
    entry = slot.get();
  }
  if (!entry->get()) {
    auto pair = load_pair(cert, key);
    std::lock_guard lock(entry->mutex);
    if (!entry->current) entry->current = std::move(pair);
  }
  SSL_CTX_set_cert_cb(ctx, use_current_pair, entry);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
}

std::vector<std::string> reload_server_certificates() {
  std::vector<Entry*> entries;
  {
    std::lock_guard lock(g_registry_mutex);
    for (auto& [paths, entry] : registry()) entries.push_back(entry.get());
  }
  std::vector<std::string> errors;
  for (auto* entry : entries) {
    try {
      auto pair = load_pair(entry->cert, entry->key);
      const auto info = describe(pair->leaf.get());
      std::lock_guard lock(entry->mutex);
      if (!entry->current || describe(entry->current->leaf.get()).sha256 != info.sha256)
        spdlog::info("TLS: now serving {} (sha256 {}, until {})", entry->cert.string(), info.sha256.substr(0, 16),
                     info.not_after);
      entry->current = std::move(pair);
    } catch (const std::exception& e) {
      spdlog::error("TLS: kept the certificate served so far: {}", e.what());
      errors.push_back(e.what());
    }
  }
  return errors;
}

std::unique_ptr<CertificateInfo> served_certificate(const std::filesystem::path& cert) {
  std::vector<Entry*> entries;
  {
    std::lock_guard lock(g_registry_mutex);
    for (auto& [paths, entry] : registry())
      if (paths.first == cert.string()) entries.push_back(entry.get());
  }
  for (auto* entry : entries)
    if (auto pair = entry->get()) return std::make_unique<CertificateInfo>(describe(pair->leaf.get()));
  return nullptr;
}

}  // namespace coop::net
