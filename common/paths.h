// The layout of one shard's COOP_HOME: where sockets, logs, keys and databases live.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <string_view>

namespace coop {

// Every worker coop knows, in start order. The supervisor runs those whose binary exists.
inline constexpr std::array<std::string_view, 8> kWorkerNames = {
    "member", "room", "federate", "mail", "dav", "tiles", "docs", "site"};

bool is_worker_name(std::string_view name);

class Home {
 public:
  explicit Home(std::filesystem::path root);

  // --home, else $COOP_HOME, else ./coop-data.
  static Home resolve(const std::string& home_flag);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path config_file() const { return root_ / "coop.toml"; }
  std::filesystem::path run_dir() const { return root_ / "run"; }
  std::filesystem::path log_dir() const { return root_ / "log"; }
  std::filesystem::path keys_dir() const { return root_ / "keys"; }
  std::filesystem::path socket(std::string_view process) const;
  std::filesystem::path pid_file(std::string_view process) const;
  std::filesystem::path lock_file(std::string_view process) const;
  std::filesystem::path log_file(std::string_view process) const;
  // Why the process last failed to start, written by it as it exits (read by the supervisor).
  std::filesystem::path start_error_file(std::string_view process) const {
    return run_dir() / (std::string(process) + ".failed");
  }
  std::filesystem::path database(std::string_view area) const;
  std::filesystem::path tls_cert() const { return keys_dir() / "tls.crt"; }
  std::filesystem::path tls_key() const { return keys_dir() / "tls.key"; }

  // Creates the home (0750), run/ and log/ (0750) and keys/ (0700) when missing, and sets
  // the process's umask to 027 so that what it creates later is not world-readable.
  void ensure_dirs() const;

 private:
  std::filesystem::path root_;
};

}  // namespace coop
