// libFuzzer target: an iTIP message as iMIP brings it from anyone (RFC 6047), read and applied
// to an organizer's and an attendee's copy as coop-dav's scheduler does.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "workers/dav/scheduling.h"

namespace {

const std::string kCopy =
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:plan@x\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART:20270105T100000Z\r\nDTEND:20270105T110000Z\r\nORGANIZER:mailto:alice@x.test\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@x.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  namespace dav = coop::dav;
  try {
    const auto object = dav::scheduling_object(input);
    const std::string who = object && !object->attendees.empty() ? object->attendees.front().address : "bob@x.test";
    (void)dav::apply_reply(kCopy, input, who);
    (void)dav::attendee_copy(input, kCopy, who);
    (void)dav::cancelled_copy(kCopy, input);
    (void)dav::significant_change(kCopy, input);
    (void)dav::participation_of(input, who);
    (void)dav::itip_reply(input, who);
  } catch (const coop::Error&) {
  }
  try {
    (void)dav::parse_free_busy_request(input);
  } catch (const coop::Error&) {
  }
  return 0;
}
