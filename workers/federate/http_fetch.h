// One outbound HTTP request of coop-federate (libcurl, blocking: callers run on the blocking
// pool), with the answer's size and the time it may take bounded.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace coop::federate {

struct Fetched {
  long status = 0;    // 0 when no answer came
  std::string body;
  std::string error;  // why no answer came, or why it was cut off
};

// connect_to: "" or curl's CONNECT_TO entry (an SRV target, discovery.h).
Fetched http_fetch(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                   const std::string& body, std::size_t max_answer_bytes, long timeout_ms = 10000,
                   const std::string& connect_to = "");

}  // namespace coop::federate
