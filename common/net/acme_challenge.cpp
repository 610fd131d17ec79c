// The files under run/acme/: http-01/TOKEN holds a key authorization, tls-alpn-01/NAME.pem a
// challenge certificate and its key.
#include "common/net/acme_challenge.h"

#include <fstream>
#include <mutex>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"

namespace coop::net {

namespace fs = std::filesystem;

namespace {

std::mutex g_mutex;
fs::path g_dir;

fs::path dir() {
  std::lock_guard lock(g_mutex);
  return g_dir;
}

std::optional<std::string> read_small(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  auto text = out.str();
  if (text.size() > 64 * 1024) return std::nullopt;
  return text;
}

}  // namespace

void set_acme_challenge_dir(const fs::path& path) {
  std::lock_guard lock(g_mutex);
  g_dir = path;
}

bool valid_acme_token(std::string_view token) {
  if (token.empty() || token.size() > 256) return false;
  for (char c : token)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

bool valid_acme_name(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.' || name.front() == '-') return false;
  char previous = 0;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok || (c == '.' && previous == '.')) return false;
    previous = c;
  }
  return true;
}

std::optional<std::string> acme_http01_answer(std::string_view token) {
  const auto base = dir();
  if (base.empty() || !valid_acme_token(token)) return std::nullopt;
  return read_small(base / "http-01" / std::string(token));
}

std::optional<std::string> acme_tls_alpn01_pem(std::string_view server_name) {
  std::string name(server_name);
  for (auto& c : name)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  const auto base = dir();
  if (base.empty() || !valid_acme_name(name)) return std::nullopt;
  return read_small(base / "tls-alpn-01" / (name + ".pem"));
}

void publish_acme_http01(std::string_view token, std::string_view key_authorization) {
  if (!valid_acme_token(token)) throw Error(errc::kBadRequest, "the ACME server sent a token that is not base64url", 502);
  const auto target = dir() / "http-01";
  fs::create_directories(target);
  write_file_durably(target / std::string(token), key_authorization, 0644);
}

void publish_acme_tls_alpn01(std::string_view name, std::string_view pem) {
  if (!valid_acme_name(name)) throw Error(errc::kBadRequest, "not a DNS name: " + std::string(name), 400);
  const auto target = dir() / "tls-alpn-01";
  fs::create_directories(target);
  write_file_durably(target / (std::string(name) + ".pem"), pem, 0600);
}

void withdraw_acme_challenges() {
  const auto base = dir();
  if (base.empty()) return;
  std::error_code ec;
  fs::remove_all(base / "http-01", ec);
  fs::remove_all(base / "tls-alpn-01", ec);
}

}  // namespace coop::net
