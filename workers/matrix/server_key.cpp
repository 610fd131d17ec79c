#include "workers/matrix/server_key.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/paths.h"

namespace coop::matrix {

namespace {

std::optional<SigningKey> read_key(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string algorithm, key_id, seed;
  if (in >> algorithm >> key_id >> seed) return SigningKey::from_seed("ed25519:" + key_id, seed);
  return std::nullopt;
}

}  // namespace

SigningKey load_or_make_server_key(const Home& home) {
  const auto path = home.keys_dir() / "matrix_signing.key";
  if (auto key = read_key(path)) return std::move(*key);
  auto key = SigningKey::generate("ed25519:a_coop");
  // Written whole beside it, then linked into place: link() fails when the name exists, so a
  // worker that loses the race reads the winner's complete file, never a half-written one.
  const auto temp = path.string() + ".new." + random_hex(8);
  write_file_durably(temp, "ed25519 a_coop " + key.seed_base64() + "\n", 0600);
  const int linked = ::link(temp.c_str(), path.c_str());
  const int link_error = errno;
  std::error_code ignored;
  std::filesystem::remove(temp, ignored);
  if (linked == 0) {
    fsync_directory(path.parent_path());
    spdlog::info("made a new Matrix signing key {}", key.key_id());
    return key;
  }
  if (link_error == EEXIST)
    if (auto theirs = read_key(path)) return std::move(*theirs);
  throw Error(errc::kIoError, "cannot create " + path.string() + ": " + std::strerror(link_error), 500);
}

}  // namespace coop::matrix
