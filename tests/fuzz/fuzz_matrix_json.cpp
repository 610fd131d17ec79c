// libFuzzer target: JSON bodies a Matrix peer or client sends, through parsing, canonical JSON, redaction and hashing.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/matrix/canonical_json.h"
#include "workers/matrix/event_hash.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json event = coop::matrix::parse_json_object(input);
    coop::matrix::canonical_json(event);
    coop::matrix::canonical_json(coop::matrix::redact(event, "11"));
    coop::matrix::content_hash(event);
    coop::matrix::reference_hash(event, "11");
    coop::matrix::reference_hash(event, "10");
  } catch (const coop::Error&) {
    // Rejected input is the expected outcome for most of the space; anything else escapes.
  }
  return 0;
}
