// Secrets read from files named in coop.toml.
#include "common/secret_file.h"

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/paths.h"

namespace coop {

std::string read_secret_file(const Home& home, const std::string& path, std::string_view setting) {
  std::filesystem::path file = path;
  if (file.is_relative()) file = home.root() / file;
  std::ifstream in(file);
  std::string secret;
  if (!in || !std::getline(in, secret))
    throw Error(errc::kConfigInvalid, std::string(setting) + ": cannot read " + file.string(), 400);
  return secret;
}

}  // namespace coop
