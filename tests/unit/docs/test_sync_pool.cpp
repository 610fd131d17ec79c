// The sync pool: every descriptor synced, each result in its own place, calls one after another.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "tests/unit/common/temp_dir.h"
#include "workers/docs/sync_pool.h"

TEST_CASE("the sync pool syncs every file and reports each failure in its place", "[docs]") {
  coop::test::TempDir dir;
  std::vector<int> fds;
  for (int i = 0; i < 12; ++i) {
    const auto path = dir.path() / ("log-" + std::to_string(i));
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "line\n", 5) == 5);
    fds.push_back(fd);
  }
  coop::docs::SyncPool pool(3);
  for (int round = 0; round < 20; ++round) {
    const auto results = pool.sync_all(fds);
    REQUIRE(results == std::vector<int>(fds.size(), 0));
  }
  auto with_bad = fds;
  with_bad[5] = -1;
  const auto results = pool.sync_all(with_bad);
  for (std::size_t i = 0; i < results.size(); ++i) CHECK(results[i] == (i == 5 ? EBADF : 0));
  CHECK(pool.sync_all({}).empty());
  CHECK(pool.sync_all({fds[0]}) == std::vector<int>{0});
  for (int fd : fds) ::close(fd);
}
