// coop.toml: the shard's configuration, written by `coop init` and edited by people.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace coop {

// One public listener of a worker, e.g. room's "client" on http://127.0.0.1:8400.
struct ListenerConfig {
  std::string name;     // "client", "smtp", "imaps"...
  std::string address;  // "127.0.0.1", "::1", "0.0.0.0"
  uint16_t port = 0;
  std::string scheme;   // URL scheme: http, https, smtp, smtps, imap, imaps
  std::string url() const;
};

class Config {
 public:
  // Throws coop::Error(errc::kConfigInvalid, "<file>:<line>:<col>: <what>") on bad input.
  static Config load(const std::filesystem::path& file);
  static Config parse(std::string_view text, const std::string& source_name);

  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;
  ~Config();

  const std::string& domain() const { return domain_; }

  // Dotted keys ("supervisor.stop_timeout"); the default when the key is absent,
  // coop::Error when present with the wrong type.
  std::string get_string(std::string_view key, const std::string& fallback) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;
  // A count or a size: an integer from min to max, so that a negative or absurd limit fails
  // `coop up` with the key's place in the file instead of becoming a huge unsigned one.
  std::size_t get_count(std::string_view key, std::size_t fallback, std::size_t min = 0,
                        std::size_t max = std::size_t{1} << 40) const;
  // A number, integer or not (a score), from min to max.
  double get_number(std::string_view key, double fallback, double min, double max) const;
  // A duration in milliseconds (keys ending in _ms), from min to max.
  std::chrono::milliseconds get_millis(std::string_view key, std::chrono::milliseconds fallback,
                                       std::chrono::milliseconds min = std::chrono::milliseconds{0},
                                       std::chrono::milliseconds max = std::chrono::hours{24 * 7}) const;
  // An array of strings.
  std::vector<std::string> get_strings(std::string_view key, const std::vector<std::string>& fallback) const;
  // A table of strings ([workers.mail.routes] "example.org" = "host:port"); empty when absent.
  std::map<std::string, std::string> get_string_table(std::string_view key) const;

  bool worker_enabled(std::string_view worker) const;
  std::vector<ListenerConfig> listeners(std::string_view worker) const;

 private:
  struct Tables;
  explicit Config(std::unique_ptr<Tables> tables);
  void validate(const std::string& source_name);

  std::unique_ptr<Tables> tables_;
  std::string domain_;
};

// The coop.toml `coop init` writes: every listener on 127.0.0.1 from base_port upwards. With
// a public host name (`coop init --public HOST`), the production profile instead: mail and
// federation on every address at their standard ports, the HTTP workers on loopback behind
// a reverse proxy that is trusted, and the public_url of each at its name under the domain.
std::string render_initial_config(const std::string& domain, uint16_t base_port, const std::string& public_host = {});

// Domain names as coop accepts them for a shard (RFC 1123 host names, lowercase).
bool is_valid_domain(std::string_view domain);

}  // namespace coop
