// Times control API round trips with coop's own libcurl client: `N` sequential GETs on one
// kept-alive connection to a Unix socket, printing JSON with requests/s and p50/p99 latency.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/control/client.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: control_client_bench SOCKET PATH COUNT\n";
    return 2;
  }
  const int count = std::stoi(argv[3]);
  coop::control::Client client(argv[1]);
  for (int i = 0; i < 20; ++i) client.get(argv[2]);  // warm up: connect, caches
  std::vector<double> micros;
  micros.reserve(static_cast<std::size_t>(count));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto response = client.get(argv[2]);
    const auto t1 = std::chrono::steady_clock::now();
    if (!response.ok()) {
      std::cerr << "request failed: HTTP " << response.status << "\n";
      return 1;
    }
    micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::sort(micros.begin(), micros.end());
  auto pct = [&](double p) { return micros[static_cast<std::size_t>(p * (micros.size() - 1))]; };
  std::cout << nlohmann::json{{"requests", count}, {"rps", count / seconds}, {"p50_us", pct(0.50)},
                              {"p99_us", pct(0.99)}}
                   .dump()
            << "\n";
  return 0;
}
