// libFuzzer target: a whole .ics file imported as `coop dav import` does it (split_calendar,
// then parse_calendar_object and instance_bounds for each object). Checked: every object is
// one valid resource under its own distinct UID, no instance lies past the bounds the store
// pre-selects by, and an export (join_calendar) imports again into the same UIDs.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "workers/dav/calendar_data.h"
#include "workers/dav/ical_bundle.h"

namespace {

std::vector<std::string> uids_of(const std::vector<std::pair<std::string, std::string>>& objects) {
  std::vector<std::string> uids;
  for (const auto& [uid, ics] : objects) uids.push_back(uid);
  return uids;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<std::string, std::string>> objects;
  try {
    objects = coop::dav::split_calendar(input);
  } catch (const coop::Error&) {
    return 0;  // refused as a whole, as the import is
  }
  try {
    std::set<std::string> seen;
    std::vector<std::string> texts;
    for (const auto& [uid, ics] : objects) {
      // RFC 4791 4.1: one resource per UID, and the resource says the UID it is stored under.
      if (!seen.insert(uid).second) std::abort();
      if (coop::dav::parse_calendar_object(ics).uid != uid) std::abort();
      // The store pre-selects time-range queries by these bounds: nothing may overlap past them.
      if (const auto bounds = coop::dav::instance_bounds(ics))
        if (coop::dav::overlaps_time_range(ics, bounds->last_end, std::nullopt)) std::abort();
      texts.push_back(ics);
    }
    // An export of what was imported imports again, into the same objects in the same order.
    if (uids_of(coop::dav::split_calendar(coop::dav::join_calendar(texts))) != uids_of(objects)) std::abort();
  } catch (const coop::Error&) {
    std::abort();
  }
  return 0;
}
