// The shard's signing key file: made once, read by both workers, even when they start together.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include "common/paths.h"
#include "workers/matrix/server_key.h"

using namespace coop::matrix;

TEST_CASE("two workers starting at once end up with one signing key") {
  const auto root = std::filesystem::temp_directory_path() / ("coop-key-" + std::to_string(::getpid()));
  for (int round = 0; round < 30; ++round) {
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root / "keys");
    coop::Home home(root);
    std::string first, second;
    std::thread a([&] { first = load_or_make_server_key(home).public_key_base64(); });
    std::thread b([&] { second = load_or_make_server_key(home).public_key_base64(); });
    a.join();
    b.join();
    REQUIRE(!first.empty());
    REQUIRE(first == second);
    CHECK(load_or_make_server_key(home).public_key_base64() == first);  // and it stays
    CHECK((std::filesystem::status(root / "keys" / "matrix_signing.key").permissions() &
           std::filesystem::perms::group_read) == std::filesystem::perms::none);
  }
  std::filesystem::remove_all(root);
}
