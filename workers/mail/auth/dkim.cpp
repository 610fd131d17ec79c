// DKIM signing on OpenSSL's EVP interface (RFC 6376, RFC 8463).
#include "workers/mail/auth/dkim.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <map>

#include "common/base64.h"
#include "common/error.h"
#include "common/text.h"
#include "common/mail/message.h"

namespace coop::mail::dkim {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

std::string sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

[[noreturn]] void fail(const std::string& what) { throw Error(errc::kBadSigningKey, "DKIM: " + what, 400); }

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* key) { return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free); }

// Folds "tag=value;" items into header lines of at most about 78 columns (RFC 5322 2.1.1),
// breaking before an item, or inside a value where RFC 6376 3.2 allows FWS: anywhere in
// base64 (bh=, b=), and only next to a colon in a header list (h=).
void append_folded(std::string& out, std::size_t& column, std::string_view item, char breaks = 0) {
  if (column + item.size() + 1 > 78 && column > 1) {
    out += "\r\n\t";
    column = 1;
  } else if (column > 0) {
    out += ' ';
    ++column;
  }
  while (breaks && column + item.size() > 78) {
    std::size_t take = 78 - column;
    if (breaks == ':') {
      const auto colon = item.substr(0, take).rfind(':');
      if (colon == std::string_view::npos || colon == 0) break;  // one long name: the line stays long
      take = colon;
    }
    out.append(item.substr(0, take));
    item.remove_prefix(take);
    out += "\r\n\t";
    column = 1;
  }
  out.append(item);
  column += item.size();
}

}  // namespace

std::string_view algorithm_tag(Algorithm a) { return a == Algorithm::rsa_sha256 ? "rsa-sha256" : "ed25519-sha256"; }

const std::vector<std::string_view> kSignedHeaders = {
    "from", "reply-to", "subject", "date", "to", "cc", "message-id", "in-reply-to", "references", "mime-version",
    "content-type", "content-transfer-encoding", "content-disposition", "sender", "list-id", "list-unsubscribe",
    "list-unsubscribe-post", "list-post", "list-help", "list-subscribe", "list-owner", "list-archive",
    "resent-date", "resent-from", "resent-to", "resent-cc", "resent-message-id", "autocrypt"};
const std::vector<std::string_view> kOversignedHeaders = {
    "from", "reply-to", "subject", "date", "to", "cc", "message-id", "mime-version", "content-type",
    "content-transfer-encoding", "sender", "list-unsubscribe", "list-unsubscribe-post"};

std::vector<HeaderField> header_fields(std::string_view header) {
  std::vector<HeaderField> fields;
  std::size_t pos = 0;
  while (pos < header.size()) {
    // One field: up to a line end not followed by WSP (RFC 5322 2.2.3).
    std::size_t end = pos;
    while (true) {
      const auto eol = header.find('\n', end);
      if (eol == std::string_view::npos) {
        end = header.size();
        break;
      }
      if (eol + 1 < header.size() && is_wsp(header[eol + 1])) {
        end = eol + 1;
        continue;
      }
      end = eol + 1;
      break;
    }
    std::string_view raw = header.substr(pos, end - pos);
    pos = end;
    while (!raw.empty() && (raw.back() == '\n' || raw.back() == '\r')) raw.remove_suffix(1);
    if (raw.empty()) break;  // the blank line ending the header
    const auto colon = raw.find(':');
    if (colon == std::string_view::npos) continue;  // not a field: never signed or counted
    std::string_view name = raw.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    fields.push_back({ascii_lower(name), raw});
  }
  return fields;
}

std::string relaxed_header(std::string_view raw) {
  const auto colon = raw.find(':');
  std::string_view name = raw.substr(0, colon);
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  std::string out = ascii_lower(name);
  out += ':';
  std::string value;
  bool space = false;
  for (char c : colon == std::string_view::npos ? std::string_view() : raw.substr(colon + 1)) {
    if (c == '\r' || c == '\n') continue;  // unfold
    if (is_wsp(c)) {
      space = true;
      continue;
    }
    if (space && !value.empty()) value += ' ';
    space = false;
    value += c;
  }
  out += value;
  out += "\r\n";
  return out;
}

std::string relaxed_body(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  std::size_t pending_blank = 0;  // empty lines held back: they count only if text follows
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto eol = body.find('\n', pos);
    const bool last = eol == std::string_view::npos;
    std::string_view line = body.substr(pos, last ? std::string_view::npos : eol - pos);
    pos = last ? body.size() : eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string canon;
    bool space = false;
    for (char c : line) {
      if (is_wsp(c)) {
        space = true;
        continue;
      }
      if (space) canon += ' ';
      space = false;
      canon += c;
    }
    if (canon.empty()) {
      ++pending_blank;
      continue;
    }
    for (; pending_blank > 0; --pending_blank) out += "\r\n";
    out += canon;
    out += "\r\n";
  }
  return out;
}

std::string simple_body(std::string_view body) {
  std::size_t end = body.size();
  // Strip CRLFs at the end, then put one back.
  while (end >= 2 && body.substr(end - 2, 2) == "\r\n") end -= 2;
  std::string out(body.substr(0, end));
  out += "\r\n";
  return out;
}

std::string body_hash(std::string_view body) { return base64_encode(sha256(relaxed_body(body))); }

Key::Key(std::shared_ptr<EVP_PKEY> key, Algorithm algorithm, std::string domain, std::string selector)
    : key_(std::move(key)), algorithm_(algorithm), domain_(std::move(domain)), selector_(std::move(selector)) {}

Key Key::generate(Algorithm algorithm, const std::string& domain, const std::string& selector) {
  const int id = algorithm == Algorithm::rsa_sha256 ? EVP_PKEY_RSA : EVP_PKEY_ED25519;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(id, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0) fail("cannot set up key generation");
  // RFC 8301 3.2: at least 1024 bits, 2048 recommended; 2048 fits a single TXT string set.
  if (id == EVP_PKEY_RSA && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048) <= 0) fail("cannot set the RSA size");
  if (EVP_PKEY_keygen(ctx.get(), &key) <= 0) fail("key generation failed");
  return Key(own(key), algorithm, domain, selector);
}

Key Key::from_pem(std::string_view pem, const std::string& domain, const std::string& selector) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!raw) fail("the key of " + selector + "._domainkey." + domain + " is not a PEM private key");
  auto key = own(raw);
  const int id = EVP_PKEY_base_id(raw);
  if (id == EVP_PKEY_ED25519) return Key(key, Algorithm::ed25519_sha256, domain, selector);
  if (id == EVP_PKEY_RSA && EVP_PKEY_bits(raw) >= 1024) return Key(key, Algorithm::rsa_sha256, domain, selector);
  fail("the key of " + selector + "._domainkey." + domain + " is neither RSA (1024 bits or more) nor Ed25519");
}

std::string Key::private_pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("cannot write the key");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string Key::dns_record() const {
  std::string public_key;
  if (algorithm_ == Algorithm::ed25519_sha256) {
    // RFC 8463 4.2: the raw 32-byte public key.
    std::size_t length = 32;
    public_key.resize(length);
    EVP_PKEY_get_raw_public_key(key_.get(), reinterpret_cast<unsigned char*>(public_key.data()), &length);
    public_key.resize(length);
  } else {
    // RFC 6376 3.6.1: the DER SubjectPublicKeyInfo.
    const int length = i2d_PUBKEY(key_.get(), nullptr);
    public_key.resize(static_cast<std::size_t>(length));
    auto* p = reinterpret_cast<unsigned char*>(public_key.data());
    i2d_PUBKEY(key_.get(), &p);
  }
  return std::string("v=DKIM1; k=") + (algorithm_ == Algorithm::ed25519_sha256 ? "ed25519" : "rsa") +
         "; p=" + base64_encode(public_key);
}

std::string Key::sign(std::string_view data) const {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::string input(data);
  const EVP_MD* md = EVP_sha256();
  if (algorithm_ == Algorithm::ed25519_sha256) {
    input = sha256(data);  // RFC 8463 3: PureEdDSA over the SHA-256 hash
    md = nullptr;
  }
  std::size_t length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    fail("signing failed");
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    fail("signing failed");
  signature.resize(length);
  return signature;
}

std::string signed_data(const std::vector<HeaderField>& fields, const std::vector<std::string>& names,
                        std::string_view signature_field, bool relaxed) {
  auto canon = [relaxed](std::string_view raw) { return relaxed ? relaxed_header(raw) : std::string(raw) + "\r\n"; };
  std::string data;
  // RFC 6376 5.4.2: each name takes the next instance from the bottom; a name with none
  // left adds nothing (which is what makes oversigning work).
  std::map<std::string, std::size_t> used;
  for (const auto& name : names) {
    const auto lower = ascii_lower(name);
    std::size_t skip = used[lower]++;
    for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
      if (it->name != lower) continue;
      if (skip-- > 0) continue;
      data += canon(it->raw);
      break;
    }
  }
  auto own_field = canon(signature_field);
  own_field.resize(own_field.size() - 2);  // RFC 6376 3.7: without its CRLF
  data += own_field;
  return data;
}

std::string sign_message(std::string_view message, const Key& key, int64_t now) {
  const auto split = header_end(message);
  const auto fields = header_fields(message.substr(0, split));
  std::map<std::string_view, int> present;
  for (const auto& f : fields) ++present[f.name];
  std::vector<std::string> names;
  for (auto name : kSignedHeaders) {
    const auto it = present.find(name);
    if (it == present.end()) continue;
    int count = it->second;
    for (auto over : kOversignedHeaders) count += over == name ? 1 : 0;
    for (int i = 0; i < count; ++i) names.emplace_back(name);
  }
  std::string h;
  for (const auto& n : names) h += (h.empty() ? "" : ":") + n;

  std::string field = "DKIM-Signature:";
  std::size_t column = field.size();
  append_folded(field, column, "v=1;");
  append_folded(field, column, "a=" + std::string(algorithm_tag(key.algorithm())) + ";");
  append_folded(field, column, "c=relaxed/relaxed;");
  append_folded(field, column, "d=" + key.domain() + ";");
  append_folded(field, column, "s=" + key.selector() + ";");
  append_folded(field, column, "t=" + std::to_string(now) + ";");
  append_folded(field, column, "h=" + h + ";", ':');
  append_folded(field, column, "bh=" + body_hash(message.substr(split)) + ";", 'b');
  append_folded(field, column, "b=");
  const auto signature = base64_encode(key.sign(signed_data(fields, names, field)));
  // The signature goes on the b= line and the lines after it; relaxed verification drops
  // it whole, folding included.
  std::string_view rest = signature;
  while (!rest.empty()) {
    const std::size_t take = std::min<std::size_t>(rest.size(), column >= 78 ? 76 : 78 - column);
    if (column >= 78) {
      field += "\r\n\t";
      column = 1;
      continue;
    }
    field.append(rest.substr(0, take));
    column += take;
    rest.remove_prefix(take);
  }
  return field + "\r\n";
}

}  // namespace coop::mail::dkim
