// DKIM verification on OpenSSL.
#include "workers/mail/auth/dkim_verify.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <map>
#include <mutex>

#include "common/base64.h"
#include "common/net/dns.h"
#include "common/text.h"
#include "workers/mail/auth/dkim.h"
#include "common/mail/message.h"

namespace coop::mail::dkim {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::string without_fws(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out += c;
  return out;
}

// RFC 6376 3.2 tag-list: "name=value; ..." with FWS anywhere around; each tag once.
// offsets: where each value starts and ends in text (for the b= deletion).
bool parse_tags(std::string_view text, std::map<std::string, std::string>& tags,
                std::map<std::string, std::pair<std::size_t, std::size_t>>* offsets = nullptr) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    const auto spec = text.substr(pos, end - pos);
    const auto eq = spec.find('=');
    if (eq == std::string_view::npos) {
      if (!trim(spec).empty()) return false;
    } else {
      const auto name = std::string(trim(spec.substr(0, eq)));
      if (name.empty() || tags.count(name)) return false;  // 3.2: a duplicate tag is an error
      tags[name] = std::string(trim(spec.substr(eq + 1)));
      if (offsets) (*offsets)[name] = {pos + eq + 1, end};
    }
    pos = end + 1;
  }
  return true;
}

std::string sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

Verdict verdict(const Signature& s, std::string result, std::string reason) {
  Verdict v;
  v.result = std::move(result);
  v.domain = s.domain;
  v.selector = s.selector;
  v.algorithm = s.algorithm;
  v.header_b = without_fws(s.signature).substr(0, 8);
  v.reason = std::move(reason);
  return v;
}

// Public keys by their record's p= value: decoding a key costs OpenSSL 3 more than the
// verification itself, and mail comes from the same few senders again and again.
std::shared_ptr<EVP_PKEY> decode_key(const std::string& type, const std::string& p) {
  const auto der = base64_decode(p);
  if (!der) return nullptr;
  EVP_PKEY* raw_key = nullptr;
  if (type == "ed25519") {
    if (der->size() != 32) return nullptr;
    raw_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(der->data()),
                                          der->size());
  } else {
    const auto* q = reinterpret_cast<const unsigned char*>(der->data());
    raw_key = d2i_PUBKEY(nullptr, &q, static_cast<long>(der->size()));
    if (!raw_key) {  // some publish the bare RSAPublicKey (PKCS #1)
      q = reinterpret_cast<const unsigned char*>(der->data());
      raw_key = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &q, static_cast<long>(der->size()));
    }
  }
  return raw_key ? std::shared_ptr<EVP_PKEY>(raw_key, EVP_PKEY_free) : nullptr;
}

std::shared_ptr<EVP_PKEY> public_key(const std::string& type, const std::string& p) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<EVP_PKEY>> cache;
  const auto key = type + ":" + p;
  {
    std::lock_guard lock(mutex);
    if (const auto it = cache.find(key); it != cache.end()) return it->second;
  }
  auto decoded = decode_key(type, p);
  if (!decoded) return nullptr;
  std::lock_guard lock(mutex);
  if (cache.size() >= 512) cache.clear();  // bounded: senders' keys are few, attackers' many
  cache.emplace(key, decoded);
  return decoded;
}

}  // namespace

std::optional<Signature> parse_signature(std::string_view raw, std::string* error) {
  const auto colon = raw.find(':');
  std::map<std::string, std::string> tags;
  if (colon == std::string_view::npos || !parse_tags(raw.substr(colon + 1), tags)) {
    *error = "the DKIM-Signature tag list is malformed";
    return std::nullopt;
  }
  Signature s;
  s.raw = std::string(raw);
  auto take = [&](const char* name, std::string& into) {
    const auto it = tags.find(name);
    if (it != tags.end()) into = it->second;
    return it != tags.end();
  };
  for (const char* required : {"v", "a", "b", "bh", "d", "h", "s"})
    if (!tags.count(required)) {
      *error = std::string("the signature has no ") + required + "= tag";
      return std::nullopt;
    }
  take("v", s.version);
  if (s.version != "1") {
    *error = "v=" + s.version + " is not DKIM version 1";
    return std::nullopt;
  }
  take("a", s.algorithm);
  s.algorithm = ascii_lower(s.algorithm);
  s.signature = without_fws(tags["b"]);
  s.body_hash = without_fws(tags["bh"]);
  s.domain = ascii_lower(tags["d"]);
  s.selector = ascii_lower(tags["s"]);
  std::string canon;
  if (take("c", canon)) {
    canon = ascii_lower(canon);
    const auto slash = canon.find('/');
    s.header_canon = canon.substr(0, slash);
    if (slash != std::string::npos) s.body_canon = canon.substr(slash + 1);
    for (const auto* c : {&s.header_canon, &s.body_canon})
      if (*c != "simple" && *c != "relaxed") {
        *error = "c=" + canon + " is not a canonicalisation";
        return std::nullopt;
      }
  }
  for (std::string_view h = tags["h"]; !h.empty();) {
    const auto c = h.find(':');
    const auto name = ascii_lower(trim(h.substr(0, c)));
    if (!name.empty()) s.headers.push_back(name);
    if (c == std::string_view::npos) break;
    h.remove_prefix(c + 1);
  }
  bool has_from = false;
  for (const auto& h : s.headers) has_from = has_from || h == "from";
  if (!has_from) {  // 6.1.1: From must be signed
    *error = "the signature does not cover From";
    return std::nullopt;
  }
  if (take("i", s.identity)) {
    const auto at = s.identity.rfind('@');
    if (at == std::string::npos || !within_domain(ascii_lower(s.identity.substr(at + 1)), s.domain)) {
      *error = "i= is not in the domain of d=";
      return std::nullopt;
    }
  }
  auto number = [&](const char* name, int64_t& into) {
    std::string text;
    if (!take(name, text)) return true;
    if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) return false;
    into = std::stoll(text);
    return true;
  };
  if (!number("l", s.length) || !number("t", s.timestamp) || !number("x", s.expiration)) {
    *error = "l=, t= or x= is not a number";
    return std::nullopt;
  }
  take("q", s.query);
  return s;
}

std::vector<std::string_view> signature_fields(std::string_view message, std::size_t max) {
  std::vector<std::string_view> out;
  const auto split = header_end(message);
  for (const auto& f : header_fields(message.substr(0, split)))
    if (f.name == "dkim-signature" && out.size() < max) out.push_back(f.raw);
  return out;
}

Verdict verify_signature(std::string_view message, const Signature& s, std::string_view record, int64_t now) {
  if (s.algorithm != "rsa-sha256" && s.algorithm != "ed25519-sha256")
    return verdict(s, "permerror", "a=" + s.algorithm + " is not accepted (RFC 8301: rsa-sha256, ed25519-sha256)");
  if (s.expiration >= 0 && s.expiration < now) return verdict(s, "fail", "the signature expired (x=)");

  // The key record (RFC 6376 3.6.1).
  std::map<std::string, std::string> key;
  if (!parse_tags(record, key)) return verdict(s, "permerror", "the key record is malformed");
  if (key.count("v") && key["v"] != "DKIM1") return verdict(s, "permerror", "the key record is not DKIM1");
  const std::string type = key.count("k") ? ascii_lower(key["k"]) : "rsa";
  if (!key.count("p")) return verdict(s, "permerror", "the key record has no p=");
  const auto p = without_fws(key["p"]);
  if (p.empty()) return verdict(s, "fail", "the key was revoked (empty p=)");
  if ((type == "rsa") != (s.algorithm == "rsa-sha256") || (type != "rsa" && type != "ed25519"))
    return verdict(s, "permerror", "the key's type k=" + type + " does not fit a=" + s.algorithm);
  if (key.count("h")) {
    const auto h = ascii_lower(key["h"]);
    if (h.find("sha256") == std::string::npos) return verdict(s, "permerror", "the key does not allow sha256");
  }
  if (key.count("t")) {
    // "s": the i= domain must be d= itself (3.6.1).
    const auto flags = without_fws(key["t"]);
    if (flags.find('s') != std::string::npos && !s.identity.empty() &&
        ascii_lower(s.identity.substr(s.identity.rfind('@') + 1)) != s.domain)
      return verdict(s, "fail", "the key's t=s forbids a subdomain in i=");
  }
  auto pkey = public_key(type, p);
  if (!pkey) return verdict(s, "permerror", "the key cannot be read");
  if (type == "rsa" && (EVP_PKEY_base_id(pkey.get()) != EVP_PKEY_RSA || EVP_PKEY_bits(pkey.get()) < 1024))
    return verdict(s, "permerror", "RSA keys under 1024 bits are refused (RFC 8301 3.2)");

  // The body hash (3.7), over l= bytes when given.
  const auto split = header_end(message);
  const auto body = message.substr(split);
  std::string canon = s.body_canon == "relaxed" ? relaxed_body(body) : simple_body(body);
  if (s.length >= 0) {
    if (static_cast<uint64_t>(s.length) > canon.size()) return verdict(s, "permerror", "l= is longer than the body");
    canon.resize(static_cast<std::size_t>(s.length));
  }
  if (base64_encode(sha256(canon)) != s.body_hash) return verdict(s, "fail", "the body hash does not match (body changed)");

  // The header hash, with this signature's b= value deleted (3.7).
  std::map<std::string, std::string> tags;
  std::map<std::string, std::pair<std::size_t, std::size_t>> offsets;
  const auto colon = s.raw.find(':');
  parse_tags(std::string_view(s.raw).substr(colon + 1), tags, &offsets);
  std::string field = s.raw;
  const auto [from, to] = offsets["b"];
  field.erase(colon + 1 + from, to - from);
  const auto data = signed_data(header_fields(message.substr(0, split)), s.headers, field, s.header_canon == "relaxed");
  const auto signature = base64_decode(s.signature);
  if (!signature) return verdict(s, "permerror", "b= is not base64");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const bool ed = type == "ed25519";
  const std::string input = ed ? sha256(data) : data;
  // Fetched once: OpenSSL 3 looks an implicit EVP_sha256() up in its providers every time.
  static EVP_MD* const sha256_md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const int ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, ed ? nullptr : sha256_md, nullptr, pkey.get()) == 1 &&
                         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()), signature->size(),
                                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (!ok) return verdict(s, "fail", "the signature does not match the signed headers");
  return verdict(s, "pass", "");
}

void verify_message(net::DnsResolver& dns, std::shared_ptr<const std::string> message, int64_t now,
                    std::function<void(std::vector<Verdict>)> done) {
  struct State {
    std::mutex mutex;  // answers may come back on several io threads at once
    std::vector<Verdict> verdicts;
    std::size_t left = 0;
    std::function<void(std::vector<Verdict>)> done;
  };
  auto state = std::make_shared<State>();
  state->done = std::move(done);
  std::vector<std::pair<std::size_t, Signature>> lookups;
  for (const auto raw : signature_fields(*message)) {
    std::string error;
    auto parsed = parse_signature(raw, &error);
    Verdict v;
    if (!parsed) {
      v.result = "permerror";
      v.reason = error;
      state->verdicts.push_back(v);
      continue;
    }
    state->verdicts.push_back(verdict(*parsed, "temperror", "no answer yet"));
    lookups.emplace_back(state->verdicts.size() - 1, std::move(*parsed));
  }
  if (lookups.empty()) return state->done(std::move(state->verdicts));
  state->left = lookups.size();
  for (auto& [index, signature] : lookups) {
    const auto name = signature.selector + "._domainkey." + signature.domain;
    dns.query(name, net::kDnsTxt, [state, index = index, signature = signature, message, now](net::DnsAnswer answer) {
      std::unique_lock lock(state->mutex);
      Verdict& v = state->verdicts[index];
      using S = net::DnsAnswer::Status;
      if (answer.status == S::temporary) {
        v = verdict(signature, "temperror", "looking up the key: " + answer.error);
      } else {
        const auto records = net::parse_txt(answer);
        if (records.empty()) v = verdict(signature, "permerror", "no key published at " + signature.selector + "._domainkey." + signature.domain);
        else if (records.size() > 1) v = verdict(signature, "permerror", "more than one key record");
        else v = verify_signature(*message, signature, records.front(), now);
      }
      if (--state->left > 0) return;
      auto verdicts = std::move(state->verdicts);
      lock.unlock();
      state->done(std::move(verdicts));
    });
  }
}

}  // namespace coop::mail::dkim
