// Catch2's main, compiled once for every unit test binary (STYLE.md "Compile time").
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
