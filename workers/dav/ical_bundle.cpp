// Splitting and joining iCalendar files with libical.
#include "workers/dav/ical_bundle.h"

#include <libical/ical.h>

#include <map>
#include <memory>
#include <set>

#include "common/error.h"
#include "workers/dav/calendar_data.h"

namespace coop::dav {

namespace {

using Component = std::unique_ptr<icalcomponent, void (*)(icalcomponent*)>;

Component parse(std::string_view text) {
  const std::string copy(text);  // libical wants a NUL-terminated string
  return Component(icalparser_parse_string(copy.c_str()), icalcomponent_free);
}

std::string to_string(icalcomponent* c) {
  char* text = icalcomponent_as_ical_string_r(c);
  std::string out = text ? text : "";
  free(text);
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> split_calendar(std::string_view ics) {
  auto root = parse(ics);
  if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT)
    throw Error("valid-calendar-data", "the file is not an iCalendar VCALENDAR", 400);
  std::map<std::string, icalcomponent*> zones;
  std::map<std::string, std::vector<icalcomponent*>> by_uid;
  std::vector<std::string> order;
  for (auto* c = icalcomponent_get_first_component(root.get(), ICAL_ANY_COMPONENT); c;
       c = icalcomponent_get_next_component(root.get(), ICAL_ANY_COMPONENT)) {
    const auto kind = icalcomponent_isa(c);
    if (kind == ICAL_VTIMEZONE_COMPONENT) {
      if (auto* tzid = icalcomponent_get_first_property(c, ICAL_TZID_PROPERTY)) zones[icalproperty_get_tzid(tzid)] = c;
      continue;
    }
    const char* uid = icalcomponent_get_uid(c);
    if (!uid || !*uid) throw Error("valid-calendar-data", "a component without UID", 400);
    // RFC 5545 3.3.11: TEXT holds no control characters but HTAB. A bare CR in a UID came back
    // as another UID once the object was written and read again (found by fuzz_ical_import).
    for (const char* p = uid; *p; ++p)
      if ((static_cast<unsigned char>(*p) < 0x20 && *p != '\t') || *p == 0x7f)
        throw Error("valid-calendar-data", "a UID with control characters", 400);
    if (!by_uid.count(uid)) order.push_back(uid);
    by_uid[uid].push_back(c);
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& uid : order) {
    Component object(icalcomponent_new_vcalendar(), icalcomponent_free);
    icalcomponent_add_property(object.get(), icalproperty_new_version("2.0"));
    icalcomponent_add_property(object.get(), icalproperty_new_prodid("-//coop//dav//EN"));
    std::string text;
    for (auto* c : by_uid[uid]) text += to_string(c);
    // Copy the zones this object's text names (TZID=...).
    for (const auto& [tzid, zone] : zones)
      if (text.find("TZID=" + tzid) != std::string::npos || text.find("TZID=\"" + tzid + "\"") != std::string::npos)
        icalcomponent_add_component(object.get(), icalcomponent_new_clone(zone));
    for (auto* c : by_uid[uid]) icalcomponent_add_component(object.get(), icalcomponent_new_clone(c));
    auto ics_text = to_string(object.get());
    parse_calendar_object(ics_text);  // each object must be one valid resource on its own
    out.emplace_back(uid, std::move(ics_text));
  }
  return out;
}

std::string join_calendar(const std::vector<std::string>& objects) {
  Component all(icalcomponent_new_vcalendar(), icalcomponent_free);
  icalcomponent_add_property(all.get(), icalproperty_new_version("2.0"));
  icalcomponent_add_property(all.get(), icalproperty_new_prodid("-//coop//dav//EN"));
  std::set<std::string> zones;
  for (const auto& text : objects) {
    auto object = parse(text);
    if (!object) continue;
    for (auto* c = icalcomponent_get_first_component(object.get(), ICAL_ANY_COMPONENT); c;
         c = icalcomponent_get_next_component(object.get(), ICAL_ANY_COMPONENT)) {
      if (icalcomponent_isa(c) == ICAL_VTIMEZONE_COMPONENT) {
        auto* tzid = icalcomponent_get_first_property(c, ICAL_TZID_PROPERTY);
        if (!tzid || !zones.insert(icalproperty_get_tzid(tzid)).second) continue;
      }
      icalcomponent_add_component(all.get(), icalcomponent_new_clone(c));
    }
  }
  return to_string(all.get());
}

}  // namespace coop::dav
