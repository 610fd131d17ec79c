// coop.toml loading and validation.
#include <catch2/catch.hpp>

#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/paths.h"

#include <set>
#include "temp_dir.h"

using coop::Config;

namespace {
std::string error_of(const std::string& text) {
  try {
    Config::parse(text, "coop.toml");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "config_invalid");
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("the config coop init writes loads and lists every listener") {
  const auto config = Config::parse(coop::render_initial_config("coop.example", 9100), "coop.toml");
  CHECK(config.domain() == "coop.example");
  const auto mail = config.listeners("mail");
  REQUIRE(mail.size() == 6);
  CHECK(mail[0].name == "smtp");
  CHECK(mail[0].port == 9102);
  CHECK(mail[0].url() == "smtp://127.0.0.1:9102");
  CHECK(config.listeners("room").at(0).url() == "http://127.0.0.1:9100");
  CHECK(config.listeners("member").empty());
  CHECK(config.worker_enabled("member"));
  CHECK(config.get_int("supervisor.stop_timeout_ms", 0) == 10000);
  CHECK(config.get_string("log.level", "") == "info");
}

TEST_CASE("every default listener port is distinct") {
  const auto config = Config::parse(coop::render_initial_config("coop.example", 9100), "coop.toml");
  std::set<uint16_t> ports;
  std::size_t count = 0;
  for (auto worker : coop::kWorkerNames)
    for (const auto& l : config.listeners(worker)) {
      ports.insert(l.port);
      ++count;
    }
  CHECK(ports.size() == count);
  CHECK(*ports.rbegin() == 9111);
}

TEST_CASE("missing keys fall back to defaults and wrong types are errors") {
  const auto config = Config::parse("[shard]\ndomain = \"a.example\"\n[log]\nlevel = 3\n", "coop.toml");
  CHECK(config.get_int("control.max_connections", 7) == 7);
  CHECK(config.get_bool("workers.mail.enabled", true));
  CHECK_THROWS_AS(config.get_string("log.level", "info"), coop::Error);
}

TEST_CASE("config errors name the file, line and column") {
  CHECK(error_of("[shard]\ndomain = \"a.example\"\n[[[oops\n").find("coop.toml:3:") == 0);
  CHECK(error_of("[shard]\n").find("shard.domain is missing") != std::string::npos);
  CHECK(error_of("[shard]\ndomain = \"Not A Domain\"\n").find("not a valid domain") != std::string::npos);
  CHECK(error_of("[shard]\ndomain = \"a.example\"\n[workers.chat]\n").find("unknown worker 'chat'") != std::string::npos);
  CHECK(error_of("[shard]\ndomain = \"a.example\"\n[workers.room.listen]\nclient = { address = \"127.0.0.1\", "
                 "port = 70000, scheme = \"http\" }\n")
            .find("port from 1 to 65535") != std::string::npos);
  CHECK(error_of("[shard]\ndomain = \"a.example\"\n[workers.room.listen]\nclient = 5\n")
            .find("must be a table") != std::string::npos);
}

TEST_CASE("a missing coop.toml says to run coop init") {
  coop::test::TempDir dir;
  try {
    Config::load(dir.path() / "coop.toml");
    FAIL("loaded a config that does not exist");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "not_a_shard");
    CHECK(std::string(e.what()).find("coop init") != std::string::npos);
  }
}

TEST_CASE("a config file on disk loads the same as its text") {
  coop::test::TempDir dir;
  coop::create_file_durably(dir.path() / "coop.toml", coop::render_initial_config("x.example", 20000), 0640);
  CHECK(Config::load(dir.path() / "coop.toml").listeners("site").at(0).port == 20011);
  CHECK_THROWS_AS(coop::create_file_durably(dir.path() / "coop.toml", "again", 0640), coop::Error);
}

TEST_CASE("domain names follow RFC 1123") {
  CHECK(coop::is_valid_domain("coop.example"));
  CHECK(coop::is_valid_domain("localhost"));
  CHECK(coop::is_valid_domain("a-b.c0.example"));
  CHECK_FALSE(coop::is_valid_domain(""));
  CHECK_FALSE(coop::is_valid_domain("-a.example"));
  CHECK_FALSE(coop::is_valid_domain("a-.example"));
  CHECK_FALSE(coop::is_valid_domain("a..example"));
  CHECK_FALSE(coop::is_valid_domain("a.example."));
  CHECK_FALSE(coop::is_valid_domain("Upper.example"));
  CHECK_FALSE(coop::is_valid_domain("under_score.example"));
  CHECK_FALSE(coop::is_valid_domain(std::string(64, 'a') + ".example"));
}

TEST_CASE("counts and durations are bounded, so a negative limit cannot become a huge one") {
  const auto config = Config::parse(
      "[shard]\ndomain = \"a.example\"\n[workers.mail]\nmax_connections = -1\nmax_recipients = 50\n"
      "idle_timeout_ms = 2000\ntrusted_networks = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\nbad_list = [1, 2]\n",
      "coop.toml");
  CHECK(config.get_count("workers.mail.max_recipients", 100, 1) == 50);
  CHECK(config.get_count("workers.mail.absent", 7) == 7);
  CHECK_THROWS_WITH(config.get_count("workers.mail.max_connections", 1024, 1),
                    Catch::Contains("workers.mail.max_connections must be an integer from 1 to"));
  CHECK_THROWS_AS(config.get_count("workers.mail.max_recipients", 100, 1, 10), coop::Error);
  CHECK(config.get_millis("workers.mail.idle_timeout_ms", std::chrono::milliseconds(1)) == std::chrono::milliseconds(2000));
  CHECK(config.get_strings("workers.mail.trusted_networks", {}) == std::vector<std::string>{"127.0.0.0/8", "10.0.0.0/8"});
  CHECK(config.get_strings("workers.mail.absent", {"x"}) == std::vector<std::string>{"x"});
  CHECK_THROWS_AS(config.get_strings("workers.mail.bad_list", {}), coop::Error);
}
