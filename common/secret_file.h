// Secrets that coop.toml names by file (a relay password, the TURN shared secret), so that
// the configuration itself holds none.
#pragma once

#include <string>
#include <string_view>

namespace coop {

class Home;

// The first line of `path` (relative paths are taken from the shard's home). `setting` names
// the configuration key in the error: coop::Error(errc::kConfigInvalid) when it cannot be read.
std::string read_secret_file(const Home& home, const std::string& path, std::string_view setting);

}  // namespace coop
