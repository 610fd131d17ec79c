#include "workers/federate/http_fetch.h"

#include <curl/curl.h>

namespace coop::federate {

namespace {

struct Sink {
  std::string* body;
  std::size_t max;
  bool overflowed = false;
};

size_t collect(char* data, size_t size, size_t count, void* out) {
  auto* sink = static_cast<Sink*>(out);
  if (sink->body->size() + size * count > sink->max) {
    sink->overflowed = true;
    return 0;  // curl stops with an error
  }
  sink->body->append(data, size * count);
  return size * count;
}

}  // namespace

Fetched http_fetch(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                   const std::string& body, std::size_t max_answer_bytes, long timeout_ms, const std::string& connect_to) {
  Fetched out;
  CURL* curl = curl_easy_init();
  if (!curl) {
    out.error = "cannot start an HTTP request";
    return out;
  }
  curl_slist* list = nullptr;
  for (const auto& header : headers) list = curl_slist_append(list, header.c_str());
  char message[CURL_ERROR_SIZE] = "";
  Sink sink{&out.body, max_answer_bytes};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (list) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_slist* connect = connect_to.empty() ? nullptr : curl_slist_append(nullptr, connect_to.c_str());
  if (connect) curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect);
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  if (curl_easy_perform(curl) == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  else
    out.error = sink.overflowed ? "the answer is larger than " + std::to_string(max_answer_bytes) + " bytes"
                                : (message[0] ? message : "the request failed");
  curl_slist_free_all(list);
  curl_slist_free_all(connect);
  curl_easy_cleanup(curl);
  return out;
}

}  // namespace coop::federate
