// libical components owned by unique_ptr, parsed and written back, for the DAV sources that edit
// iCalendar (calendar_data, scheduling).
#pragma once

#include <libical/ical.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace coop::dav::ical {

struct ComponentFree {
  void operator()(icalcomponent* component) const { icalcomponent_free(component); }
};
using ComponentPtr = std::unique_ptr<icalcomponent, ComponentFree>;

// Once per process: libical must report errors instead of aborting, and the builtin timezone
// list is loaded before concurrent requests look zones up.
inline void set_up_libical() {
  static const bool ready = [] {
    icalerror_set_errors_are_fatal(0);
    icaltimezone_get_utc_timezone();
    icaltimezone_get_builtin_timezones();
    return true;
  }();
  (void)ready;
}

inline ComponentPtr parse(std::string_view ics) {
  set_up_libical();
  const std::string text(ics);  // libical wants a NUL-terminated string
  return ComponentPtr(icalparser_parse_string(text.c_str()));
}

// A VCALENDAR or nothing.
inline ComponentPtr parse_calendar(std::string_view ics) {
  auto root = parse(ics);
  if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) return nullptr;
  return root;
}

inline std::string serialize(icalcomponent* calendar) {
  char* text = icalcomponent_as_ical_string_r(calendar);
  std::string out(text ? text : "");
  std::free(text);
  return out;
}

}  // namespace coop::dav::ical
