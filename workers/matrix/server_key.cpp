#include "workers/matrix/server_key.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <optional>

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
  try {
    create_file_durably(path, "ed25519 a_coop " + key.seed_base64() + "\n", 0600);
    spdlog::info("made a new Matrix signing key {}", key.key_id());
    return key;
  } catch (const Error&) {
    // Another worker made it first (or the file is unreadable: then this says so).
    if (auto theirs = read_key(path)) return std::move(*theirs);
    throw;
  }
}

}  // namespace coop::matrix
