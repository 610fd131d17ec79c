// coop::Error: the one error type that crosses module boundaries.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "common/error_codes.h"

namespace coop {

// A failure with a stable machine code ("member_exists"), a message for people and an
// HTTP-ish status. The control API turns it into {"error":{"code","message"}}.
class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message, int status = 400)
      : std::runtime_error(message), code_(std::move(code)), status_(status) {}

  const std::string& code() const { return code_; }
  int status() const { return status_; }

 private:
  std::string code_;
  int status_;
};

// The control API's error body: {"error":{"code":...,"message":...}}.
std::string error_body(std::string_view code, std::string_view message);

}  // namespace coop
