// DKIM keys on disk, loaded once and kept in memory for signing.
#include "workers/mail/auth/dkim_keyring.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>

#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/text.h"

namespace coop::mail::dkim {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kActive = ".pem";
constexpr std::string_view kRetired = ".pem.retired";

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool valid_selector(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
  return true;
}

Keyring::Keyring(fs::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return;
  for (const auto& domain_dir : fs::directory_iterator(dir_, ec)) {
    const auto domain = domain_dir.path().filename().string();
    if (!domain_dir.is_directory() || !is_valid_domain(domain)) continue;
    for (const auto& file : fs::directory_iterator(domain_dir.path(), ec)) {
      const auto name = file.path().filename().string();
      const bool retired = ends_with(name, kRetired);
      if (!retired && !ends_with(name, kActive)) continue;
      const auto selector = name.substr(0, name.size() - (retired ? kRetired : kActive).size());
      if (!valid_selector(selector)) continue;
      try {
        auto key = Key::from_pem(read_all(file.path()), domain, selector);
        (retired ? retired_ : active_)[domain].push_back(std::move(key));
      } catch (const std::exception& e) {
        spdlog::error("dkim: {} is not used: {}", file.path().string(), e.what());
      }
    }
  }
  auto by_selector = [](const Key& a, const Key& b) { return a.selector() < b.selector(); };
  for (auto& [domain, keys] : active_) std::sort(keys.begin(), keys.end(), by_selector);
  for (auto& [domain, keys] : retired_) std::sort(keys.begin(), keys.end(), by_selector);
}

KeyInfo Keyring::info(const Key& key, bool active) const {
  return KeyInfo{key.domain(), key.selector(), key.algorithm(), active,
                 key.selector() + "._domainkey." + key.domain(), key.dns_record()};
}

KeyInfo Keyring::generate(const std::string& domain_in, Algorithm algorithm, const std::string& selector_in) {
  const auto domain = ascii_lower(domain_in);
  if (!is_valid_domain(domain)) throw Error(errc::kInvalidDomain, "'" + domain_in + "' is not a valid domain name", 400);
  std::string selector = ascii_lower(selector_in);
  if (selector.empty()) {
    const std::time_t now = ::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char stamp[16];
    std::strftime(stamp, sizeof stamp, "%Y%m", &tm);
    selector = std::string(algorithm == Algorithm::rsa_sha256 ? "r" : "e") + stamp;
  }
  if (!valid_selector(selector))
    throw Error(errc::kBadName, "'" + selector_in + "' is not a DKIM selector (letters, digits and hyphens)", 400);
  std::lock_guard lock(mutex_);
  for (const auto* set : {&active_, &retired_}) {
    const auto it = set->find(domain);
    if (it == set->end()) continue;
    for (const auto& k : it->second)
      if (k.selector() == selector)
        throw Error(errc::kExists, "selector " + selector + " already exists for " + domain, 409);
  }
  auto key = Key::generate(algorithm, domain, selector);
  const auto domain_dir = dir_ / domain;
  fs::create_directories(domain_dir);
  fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::replace);
  fs::permissions(domain_dir, fs::perms::owner_all, fs::perm_options::replace);
  create_file_durably(domain_dir / (selector + std::string(kActive)), key.private_pem(), 0600);
  auto& keys = active_[domain];
  keys.push_back(key);
  std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) { return a.selector() < b.selector(); });
  return info(key, true);
}

void Keyring::retire(const std::string& domain_in, const std::string& selector) {
  const auto domain = ascii_lower(domain_in);
  std::lock_guard lock(mutex_);
  auto it = active_.find(domain);
  if (it != active_.end()) {
    auto& keys = it->second;
    for (auto k = keys.begin(); k != keys.end(); ++k) {
      if (k->selector() != selector) continue;
      const auto file = dir_ / domain / (selector + std::string(kActive));
      fs::rename(file, dir_ / domain / (selector + std::string(kRetired)));
      fsync_directory(dir_ / domain);
      retired_[domain].push_back(*k);
      keys.erase(k);
      return;
    }
  }
  throw Error(errc::kNoSuchKey, "no active DKIM key " + selector + " for " + domain, 404);
}

std::vector<KeyInfo> Keyring::list(const std::string& domain) const {
  std::lock_guard lock(mutex_);
  std::vector<KeyInfo> out;
  for (const auto& [set, active] : {std::pair{&active_, true}, std::pair{&retired_, false}})
    for (const auto& [d, keys] : *set)
      if (domain.empty() || d == ascii_lower(domain))
        for (const auto& k : keys) out.push_back(info(k, active));
  std::sort(out.begin(), out.end(), [](const KeyInfo& a, const KeyInfo& b) {
    return std::tie(a.domain, a.selector) < std::tie(b.domain, b.selector);
  });
  return out;
}

bool Keyring::has_keys(const std::string& domain) const {
  std::lock_guard lock(mutex_);
  const auto it = active_.find(ascii_lower(domain));
  return it != active_.end() && !it->second.empty();
}

std::string Keyring::sign(const std::string& domain, std::string_view message, int64_t now) const {
  std::vector<Key> keys;
  {
    std::lock_guard lock(mutex_);
    const auto it = active_.find(ascii_lower(domain));
    if (it == active_.end()) return {};
    keys = it->second;
  }
  std::string fields;
  for (const auto& k : keys) fields += sign_message(message, k, now);
  return fields;
}

}  // namespace coop::mail::dkim
