// Self-signed TLS certificates for a fresh shard (`coop init`), so every listener can speak TLS from day one.
#pragma once

#include <filesystem>
#include <string>

namespace coop {

// Generates an EC P-256 key and a self-signed X.509 v3 certificate (SHA-256) whose
// subjectAltName covers domain, localhost and 127.0.0.1, valid for `days` days.
// The key is created exclusively with mode 0600 (an existing key is never overwritten);
// the certificate is written atomically with mode 0644. Both are fsynced.
// Throws coop::Error(errc::kTlsError) on failure, leaving no new key behind.
// 825 days is the longest validity Apple clients accept for a TLS server certificate.
void generate_self_signed_cert(const std::string& domain, const std::filesystem::path& key_path,
                               const std::filesystem::path& cert_path, int days = 825);

}  // namespace coop
