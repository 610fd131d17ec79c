// COOP_HOME layout (ARCHITECTURE.md "COOP_HOME").
#include "common/paths.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include "common/error.h"

namespace coop {

namespace fs = std::filesystem;

bool is_worker_name(std::string_view name) {
  return std::find(kWorkerNames.begin(), kWorkerNames.end(), name) != kWorkerNames.end();
}

Home::Home(fs::path root) : root_(fs::absolute(root).lexically_normal()) {
  // lexically_normal keeps a trailing separator as an empty last element; drop it.
  if (!root_.has_filename() && root_.has_parent_path() && root_ != root_.root_path())
    root_ = root_.parent_path();
}

Home Home::resolve(const std::string& home_flag) {
  if (!home_flag.empty()) return Home(home_flag);
  if (const char* env = std::getenv("COOP_HOME"); env && *env) return Home(env);
  return Home("coop-data");
}

fs::path Home::socket(std::string_view process) const {
  return run_dir() / (std::string(process) + ".sock");
}
fs::path Home::pid_file(std::string_view process) const {
  return run_dir() / (std::string(process) + ".pid");
}
fs::path Home::lock_file(std::string_view process) const {
  return run_dir() / (std::string(process) + ".lock");
}
fs::path Home::log_file(std::string_view process) const {
  return log_dir() / (std::string(process) + ".log");
}
fs::path Home::database(std::string_view area) const {
  return root_ / (std::string(area) + ".db");
}

static void make_dir(const fs::path& dir, mode_t mode) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(errc::kIoError, "cannot create " + dir.string() + ": " + ec.message(), 500);
  if (::chmod(dir.c_str(), mode) != 0)
    throw Error(errc::kIoError, "cannot set permissions on " + dir.string(), 500);
}

void Home::ensure_dirs() const {
  // Every process that writes the shard (the CLI, the supervisor, each worker) comes through
  // here first: databases, blobs and logs it creates from now on are 0640 and its
  // directories 0750, readable by the shard's group and nobody else.
  ::umask(027);
  make_dir(root_, 0750);
  make_dir(run_dir(), 0750);
  make_dir(log_dir(), 0750);
  make_dir(keys_dir(), 0700);
}

}  // namespace coop
