// libFuzzer target: the import entry point. The input is written as an .osm.pbf file and
// imported (z0-14) into a scratch archive: a damaged extract must end in coop::Error
// ("bad_input") and leave no temporary file, never a crash. (That a failed import keeps the
// previous archive byte for byte is asserted by unit_tiles and integration.tiles.)
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.h"
#include "workers/tiles/importer.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Removed at exit, so a replay under ctest leaves nothing in /tmp.
  static const struct Dir {
    fs::path path = fs::temp_directory_path() / ("coop-fuzz-import-" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path / "tiles"); }
    ~Dir() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } scratch;
  const fs::path& dir = scratch.path;
  const auto input = dir / "input.osm.pbf";
  {
    std::ofstream out(input, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  coop::tiles::ImportOptions options;
  options.input = input;
  options.output = dir / "tiles" / "fuzz.mbtiles";
  options.name = "fuzz";
  options.threads = 1;
  try {
    coop::tiles::import_osm(options);
  } catch (const coop::Error& e) {
    if (e.code() != "bad_input") __builtin_trap();
  }
  for (const auto& entry : fs::directory_iterator(dir / "tiles"))
    if (entry.path().filename().string().find(".tmp-") != std::string::npos) __builtin_trap();
  return 0;
}
