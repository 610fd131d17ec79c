// Catch2's main, compiled once for every unit test binary (STYLE.md "Compile time").
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

// Info lines (migrations applied...) would bury test failures; warnings and errors stay.
static const bool kQuietLogs = [] {
  spdlog::set_level(spdlog::level::warn);
  return true;
}();
