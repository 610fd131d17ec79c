// libFuzzer target: event authorization against a state built from the input. The input is a
// JSON object {"state": [events...], "event": {...}}, as a remote server could send them.
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "workers/matrix/auth_rules.h"
#include "workers/matrix/canonical_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto input = coop::matrix::parse_json_object(std::string_view(reinterpret_cast<const char*>(data), size));
    coop::matrix::StateMap state;
    if (input.contains("state") && input["state"].is_array())
      for (const auto& e : input["state"])
        if (e.is_object() && e.contains("type") && e["type"].is_string() && e.contains("state_key") && e["state_key"].is_string())
          state[{e["type"].get<std::string>(), e["state_key"].get<std::string>()}] = e;
    if (input.contains("event") && input["event"].is_object())
      coop::matrix::authorize(input["event"], state, [](const std::string&, const std::string& user) { return user.size() % 2 == 0; });
  } catch (const coop::Error&) {
    // Refused (M_FORBIDDEN) or not JSON: the expected outcomes. Anything else escapes and is a bug.
  }
  return 0;
}
