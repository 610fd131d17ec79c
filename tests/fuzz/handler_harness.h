// What the fuzz targets that drive a worker's real HTTP handlers share: a throwaway shard
// home, the input read as "METHOD /target" and a body, and a dispatch that waits for the one
// reply (handlers answer from the blocking pool).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/fs.h"
#include "common/http/router.h"
#include "common/worker_runtime.h"

namespace coop::fuzz {

// A shard home with the coop.toml `coop init` writes, removed with the object.
class ThrowawayHome {
 public:
  explicit ThrowawayHome(const std::string& prefix)
      : dir_(std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
    write_file_durably(dir_ / "coop.toml", render_initial_config("fuzz.example", 40000), 0600);
  }
  ~ThrowawayHome() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string path() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
};

// The input as a request: its first line "METHOD /target", the rest the body; nullopt when
// the first line is not that.
inline std::optional<http::Request> request_of(std::string_view input, const std::string& first_line) {
  const auto space = first_line.find(' ');
  if (space == std::string::npos) return std::nullopt;
  http::Request request;
  request.method = first_line.substr(0, space);
  if (!http::parse_target(first_line.substr(space + 1), request)) return std::nullopt;
  const auto eol = input.find('\n');
  request.body = std::string(eol == std::string_view::npos ? std::string_view() : input.substr(eol + 1));
  return request;
}

inline std::string first_line_of(std::string_view input) { return std::string(input.substr(0, input.find('\n'))); }

// Dispatches and waits; aborts when a handler replies twice.
inline http::Response dispatch_once(const http::Router& router, const http::Request& request) {
  auto replied = std::make_shared<std::promise<http::Response>>();
  auto count = std::make_shared<std::atomic<int>>(0);
  router.dispatch(request, [replied, count](http::Response r) {
    if (count->fetch_add(1) == 0) replied->set_value(std::move(r));
    else std::abort();
  });
  return replied->get_future().get();
}

}  // namespace coop::fuzz
