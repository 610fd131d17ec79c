// Whole calendars as one .ics file (import and export): split into CalDAV object resources,
// one per UID (RFC 4791 4.1), and joined back with each time zone once.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coop::dav {

// (uid, one VCALENDAR object resource) for every UID in the file, with the VTIMEZONEs it
// uses copied in. Throws coop::Error("valid-calendar-data", 400) naming what is wrong.
std::vector<std::pair<std::string, std::string>> split_calendar(std::string_view ics);

// One VCALENDAR holding the components of every object, each VTIMEZONE once.
std::string join_calendar(const std::vector<std::string>& objects);

}  // namespace coop::dav
