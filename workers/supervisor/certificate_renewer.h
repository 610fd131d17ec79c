// Keeps keys/tls.crt issued by ACME when coop.toml names a directory ([tls] acme): orders a
// certificate for the shard's names when the one on disk is self-signed, does not cover them
// or expires within [tls] acme_renew_days, installs it, and has every worker serve it from its
// next handshake. Failures back off (state kept in keys/acme-state.json, so that a restart
// does not hammer the CA) and their reason is in the supervisor's status.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace coop {

class Config;
class Home;

class CertificateRenewer {
 public:
  // ready: whether the workers that answer challenges are up; reload: makes every worker
  // load keys/tls.crt again. Starts nothing when [tls] acme is empty.
  CertificateRenewer(const Config& config, const Home& home, std::function<bool()> ready, std::function<void()> reload);
  ~CertificateRenewer();
  CertificateRenewer(const CertificateRenewer&) = delete;
  CertificateRenewer& operator=(const CertificateRenewer&) = delete;

  bool enabled() const;
  // Tries now (forget any backoff); with force, even when the certificate is not due.
  void renew_now(bool force);
  // {"directory","names","state","attempts","last_error","next_attempt","renew_at",...}
  nlohmann::json status() const;

  // The names a certificate for this shard covers: [tls] names, or else shard.domain, the
  // mail host name and the host of every public_url (IP addresses and localhost left out).
  static std::vector<std::string> shard_names(const Config& config);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop
