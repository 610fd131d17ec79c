// DKIM signatures (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463): relaxed
// canonicalisation, key generation and the TXT record to publish. Pure: no DNS, no files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace coop::mail::dkim {

enum class Algorithm { rsa_sha256, ed25519_sha256 };

std::string_view algorithm_tag(Algorithm a);  // "rsa-sha256", "ed25519-sha256"

// One header field as it stands in the message: its name and the whole raw field, name
// and continuation lines included, without the CRLF that ends it.
struct HeaderField {
  std::string name;
  std::string_view raw;
};
// The fields of a header section (which ends at the first empty line), in order.
std::vector<HeaderField> header_fields(std::string_view header);

// RFC 6376 3.4.2: "name:value\r\n", name lowercased, unfolded, runs of WSP as one SP, no
// WSP around the colon or at the end.
std::string relaxed_header(std::string_view raw_field);
// RFC 6376 3.4.4: WSP runs as one SP, none at line ends, no empty lines at the end, and a
// final CRLF unless the body is empty.
std::string relaxed_body(std::string_view body);
// RFC 6376 3.4.3: no empty lines at the end; an empty body is one CRLF.
std::string simple_body(std::string_view body);

// A signing key for one domain and selector.
class Key {
 public:
  static Key generate(Algorithm algorithm, const std::string& domain, const std::string& selector);
  // PKCS#8 or traditional PEM, RSA (at least 1024 bits) or Ed25519; coop::Error otherwise.
  static Key from_pem(std::string_view pem, const std::string& domain, const std::string& selector);

  Algorithm algorithm() const { return algorithm_; }
  const std::string& domain() const { return domain_; }
  const std::string& selector() const { return selector_; }
  std::string private_pem() const;
  // The TXT record's value for <selector>._domainkey.<domain> (RFC 6376 3.6.1; RFC 8463 4).
  std::string dns_record() const;
  // The signature over data: RSASSA-PKCS1-v1_5 with SHA-256, or Ed25519 over SHA-256(data).
  std::string sign(std::string_view data) const;

 private:
  Key(std::shared_ptr<EVP_PKEY> key, Algorithm algorithm, std::string domain, std::string selector);
  std::shared_ptr<EVP_PKEY> key_;
  Algorithm algorithm_;
  std::string domain_, selector_;
};

// The header names coop signs when present; those Gmail and Microsoft look at are also
// oversigned (listed once more than present, RFC 6376 8.15) so none can be added later.
extern const std::vector<std::string_view> kSignedHeaders;
extern const std::vector<std::string_view> kOversignedHeaders;

// The "DKIM-Signature: ...\r\n" field (folded below 80 columns) to put on top of message.
// now: the t= tag, in seconds since the epoch.
std::string sign_message(std::string_view message, const Key& key, int64_t now);

// The data a signature covers (RFC 6376 3.7): the signed fields of the message in the
// order h= names them, each taken from the bottom up, then the DKIM-Signature field itself
// with an empty b= and no final CRLF. Shared by signing and verifying.
// relaxed: 3.4.2's header canonicalisation, else 3.4.1's simple (the fields as they are).
std::string signed_data(const std::vector<HeaderField>& fields, const std::vector<std::string>& names,
                        std::string_view signature_field, bool relaxed = true);

// RFC 6376 3.7's body hash, base64 of SHA-256 of the relaxed body.
std::string body_hash(std::string_view body);

}  // namespace coop::mail::dkim
