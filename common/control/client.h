// The control API client: libcurl over a worker's Unix socket (CURLOPT_UNIX_SOCKET_PATH).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

namespace coop::control {

struct ClientResponse {
  long status = 0;
  std::string body;

  bool ok() const { return status >= 200 && status < 300; }
  nlohmann::json json() const;
  // Throws the body's {"error":{code,message}} as coop::Error when the status is not 2xx.
  void throw_if_error() const;
};

class Client {
 public:
  explicit Client(std::filesystem::path socket_path);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request; the connection is kept for the next. Throws
  // coop::Error(errc::kNotRunning, 503) when nothing listens on the socket, and
  // coop::Error(errc::kControlFailed, 502) when the connection breaks.
  ClientResponse request(std::string_view method, std::string_view path, std::string_view body = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ClientResponse get(std::string_view path) { return request("GET", path); }
  ClientResponse post(std::string_view path, std::string_view body = {}) { return request("POST", path, body); }

  const std::filesystem::path& socket_path() const { return socket_path_; }

 private:
  std::filesystem::path socket_path_;
  void* curl_;  // CURL*, kept out of this header
};

}  // namespace coop::control
