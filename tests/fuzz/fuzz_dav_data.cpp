// libFuzzer target: calendar and address object bodies as a CalDAV/CardDAV client PUTs them.
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "workers/dav/calendar_data.h"
#include "workers/dav/vcard_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // 2026-01-05T00:00:00Z .. 2026-02-05T00:00:00Z, a month after the seeds' DTSTARTs.
  constexpr int64_t kRangeStart = 1767571200;
  constexpr int64_t kRangeEnd = 1770249600;
  try {
    coop::dav::parse_calendar_object(input);
    coop::dav::overlaps_time_range(input, kRangeStart, kRangeEnd);
    coop::dav::overlaps_time_range(input, std::nullopt, kRangeEnd);
  } catch (const coop::Error&) {
  }
  try {
    const auto card = coop::dav::parse_vcard(input);
    coop::dav::text_match(card, "FN", "a", "contains", false);
  } catch (const coop::Error&) {
  }
  try {
    coop::dav::split_vcards(input);
  } catch (const coop::Error&) {
  }
  return 0;
}
