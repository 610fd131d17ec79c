// Serialises coop::Error into the control API's error shape.
#include "common/error.h"

#include <nlohmann/json.hpp>

#include "common/json.h"

namespace coop {

std::string error_body(std::string_view code, std::string_view message) {
  nlohmann::json body;
  body["error"] = {{"code", code}, {"message", message}};
  return dump_json(body);
}

}  // namespace coop
