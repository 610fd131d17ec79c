// libcurl client for the control API.
#include "common/control/client.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include <mutex>

#include "common/error.h"

namespace coop::control {

namespace {

std::once_flag g_curl_init;

std::size_t collect(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

}  // namespace

nlohmann::json ClientResponse::json() const {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error&) {
    throw Error(errc::kControlFailed, "worker answered with something that is not JSON", 502);
  }
}

void ClientResponse::throw_if_error() const {
  if (ok()) return;
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const auto& e = parsed["error"];
    throw Error(e.value("code", "error"), e.value("message", "request failed"), static_cast<int>(status));
  }
  throw Error(errc::kControlFailed, "worker answered HTTP " + std::to_string(status), static_cast<int>(status));
}

Client::Client(std::filesystem::path socket_path) : socket_path_(std::move(socket_path)) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
  if (!curl_) throw Error(errc::kControlFailed, "cannot initialise libcurl", 500);
}

Client::~Client() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

ClientResponse Client::request(std::string_view method, std::string_view path, std::string_view body,
                               std::chrono::milliseconds timeout) {
  auto* curl = static_cast<CURL*>(curl_);
  ClientResponse response;
  const std::string url = "http://coop" + std::string(path);
  const std::string verb(method);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip on a local socket

  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, verb.c_str());
  curl_easy_setopt(curl, CURLOPT_NOBODY, verb == "HEAD" ? 1L : 0L);
  if (verb == "GET" || verb == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, verb == "HEAD" ? "HEAD" : nullptr);
  } else {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);

  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
    throw Error(errc::kNotRunning, "nothing is listening on " + socket_path_.string(), 503);
  }
  if (rc != CURLE_OK)
    throw Error(errc::kControlFailed, socket_path_.string() + ": " + curl_easy_strerror(rc), 502);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace coop::control
