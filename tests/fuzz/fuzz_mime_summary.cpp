// libFuzzer target: summarize_message on arbitrary bytes must not crash and must serialise;
// calendar_parts (iMIP) must not crash either.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "workers/mail/mime_summary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto summary = coop::mail::summarize_message(std::string_view(reinterpret_cast<const char*>(data), size));
  // dump() throws on invalid UTF-8; summarize_message promises that it cannot happen.
  (void)summary.envelope.dump();
  (void)summary.body_structure.dump();
  (void)nlohmann::json(summary.subject).dump();
  (void)nlohmann::json(summary.message_id).dump();
  (void)coop::mail::calendar_parts(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
