// Credential verifications per second: libsodium's argon2id verify alone ("raw"), and
// POST /v1/auth/verify on coop-member's socket ("api"), both with the production parameters.
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/auth/password.h"
#include "common/control/client.h"

namespace {

double run_threads(int threads, int per_thread, const std::function<void()>& job) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) job();
    });
  for (auto& t : pool) t.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "raw" && argc == 4) {
    const int threads = std::stoi(argv[2]), count = std::stoi(argv[3]);
    const auto params = coop::auth::production_params();
    const auto hash = coop::auth::hash_password("correct horse battery staple", params);
    std::atomic<int> ok{0};
    const double seconds = run_threads(threads, count / threads, [&] {
      if (coop::auth::verify_password(hash, "correct horse battery staple")) ++ok;
    });
    std::cout << nlohmann::json{{"verifications", ok.load()}, {"per_second", ok / seconds}}.dump() << "\n";
    return ok == count / threads * threads ? 0 : 1;
  }
  if (mode == "api" && argc == 7) {
    const std::string socket = argv[2], user = argv[3], password = argv[4];
    const int threads = std::stoi(argv[5]), count = std::stoi(argv[6]);
    const std::string body =
        nlohmann::json{{"user", user}, {"password", password}, {"protocol", "mail"}, {"source", "127.0.0.1"}}.dump();
    std::atomic<int> ok{0};
    const double seconds = run_threads(threads, count / threads, [&] {
      thread_local coop::control::Client client(socket);
      if (client.request("POST", "/v1/auth/verify", body).ok()) ++ok;
    });
    std::cout << nlohmann::json{{"verifications", ok.load()}, {"per_second", ok / seconds}}.dump() << "\n";
    return ok == count / threads * threads ? 0 : 1;
  }
  std::cerr << "usage: auth_bench raw THREADS COUNT | api SOCKET USER PASSWORD THREADS COUNT\n";
  return 2;
}
