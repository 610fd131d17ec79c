// Wall-clock time as the protocols write it: seconds or milliseconds since the Unix epoch
// (JWT claims, Matrix origin_server_ts and valid_until_ts, expiry columns).
#pragma once

#include <chrono>
#include <cstdint>

namespace coop {

inline int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline int64_t unix_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace coop
