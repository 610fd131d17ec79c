// libFuzzer target: Netflux frames as a WebSocket client sends them. Each input is split into
// frames at newlines and fed, in order, to a relay with two connected users in one channel
// (so joins, messages, history commands and leaves all meet real state; the history keeper's
// id is written as sixteen zeros). Whatever arrives,
// every frame the server sends back is a JSON array.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "workers/docs/channel_store.h"
#include "workers/docs/netflux.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const struct Dir {
    fs::path path = fs::temp_directory_path() / ("coop-fuzz-netflux-" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } scratch;
  coop::docs::ChannelStore store(scratch.path);
  coop::docs::Netflux netflux(store);
  auto check = [](std::shared_ptr<const std::string> frame) {
    const auto parsed = nlohmann::json::parse(*frame);  // throws (and the fuzzer reports) if not JSON
    if (!parsed.is_array() || parsed.empty()) __builtin_trap();
    return true;
  };
  const std::string a = netflux.connect(check);
  const std::string b = netflux.connect(check);
  const std::string channel(32, 'f');
  netflux.frame(b, "[1,\"JOIN\",\"" + channel + "\"]");
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  bool connected = true;
  // "0000000000000000" in the input stands for the history keeper's (random) id.
  const std::string placeholder(16, '0');
  while (std::getline(in, line) && connected) {
    for (auto at = line.find(placeholder); at != std::string::npos; at = line.find(placeholder, at + 16))
      line.replace(at, 16, netflux.history_keeper());
    connected = netflux.frame(a, line);
  }
  netflux.disconnect(a);
  netflux.disconnect(b);
  return 0;
}
