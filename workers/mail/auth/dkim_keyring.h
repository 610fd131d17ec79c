// The shard's DKIM keys: keys/dkim/<domain>/<selector>.pem (0600). Every active key of a
// domain signs its mail, so a new selector can be published beside the old one and the
// old one retired later (rotation without a gap); a retired key stays on disk, unused.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "workers/mail/auth/dkim.h"

namespace coop::mail::dkim {

struct KeyInfo {
  std::string domain, selector;
  Algorithm algorithm;
  bool active = true;
  std::string dns_name;    // <selector>._domainkey.<domain>
  std::string dns_record;  // the TXT value
};

class Keyring {
 public:
  explicit Keyring(std::filesystem::path dir);  // loads what is there

  // Generates and stores a key; coop::Error when the selector exists for the domain or a
  // name is not a DNS label/domain. selector "": a dated default ("r202612", "e202612").
  KeyInfo generate(const std::string& domain, Algorithm algorithm, const std::string& selector);
  // Stops signing with a selector (the file is renamed to <selector>.pem.retired).
  void retire(const std::string& domain, const std::string& selector);
  std::vector<KeyInfo> list(const std::string& domain = {}) const;

  // "DKIM-Signature" fields of every active key of domain, in selector order; "" when the
  // domain has none.
  std::string sign(const std::string& domain, std::string_view message, int64_t now) const;
  bool has_keys(const std::string& domain) const;

 private:
  KeyInfo info(const Key& key, bool active) const;
  std::filesystem::path dir_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Key>> active_;   // by domain
  std::map<std::string, std::vector<Key>> retired_;  // listed, never used
};

// DNS labels as selectors (RFC 6376 3.1): letters, digits and hyphens, 1..63.
bool valid_selector(std::string_view selector);

}  // namespace coop::mail::dkim
