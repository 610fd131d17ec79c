// iCalendar object resources for CalDAV (RFC 4791): validation, time-range tests and free-busy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "workers/dav/dav_xml.h"

namespace coop::dav {

// What a stored calendar object resource is, as the store indexes it.
struct CalendarObject {
  std::string uid;
  std::string component;  // VEVENT, VTODO, VJOURNAL (or VFREEBUSY)
  std::string summary;
  bool recurring = false;  // RRULE/RDATE on the master or RECURRENCE-ID overrides present
};

// RFC 4791 4.1: one VCALENDAR with VERSION:2.0, no METHOD, one kind of component besides
// VTIMEZONE, all instances sharing one UID and at most one without RECURRENCE-ID. Throws
// coop::Error("valid-calendar-data", message, 403); the code is the RFC 4791 precondition.
CalendarObject parse_calendar_object(std::string_view ics);

// RFC 4791 9.9: whether any instance of the object overlaps [start, end) in unix seconds; an
// absent bound is open. Recurrences (RRULE/RDATE/EXDATE, RECURRENCE-ID overrides) are expanded,
// at most 10000 per rule (counted from the range's start) and never past end. Floating times and DATE values are taken as UTC.
// Input that does not parse overlaps nothing.
bool overlaps_time_range(std::string_view ics, std::optional<int64_t> start, std::optional<int64_t> end);

// The earliest instance start and latest instance end of an object, with a day's slack, so a
// store can pre-select the candidates of a time-range query; nullopt when the object has an
// unending recurrence or instances the span rules do not describe (test those every time).
struct TimeBounds {
  int64_t first_start, last_end;
};
std::optional<TimeBounds> instance_bounds(std::string_view ics);

// A time-range attribute value (RFC 4791 9.9: UTC date with time, "20260105T000000Z") in unix
// seconds. Throws coop::Error(errc::kBadTimeRange, message, 400).
int64_t parse_ical_utc(std::string_view text);

// The reverse of parse_ical_utc: "20260105T000000Z".
std::string format_ical_utc(int64_t unix_seconds);

// RFC 4791 9.7: whether an object meets a calendar-query filter, the VCALENDAR comp-filter and
// everything below it: nested comp-filters (VALARM time-ranges by their triggers on each
// instance), prop-filters (time-range, text-match, param-filters) and is-not-defined. Objects
// that do not parse match nothing. Throws Error(errc::kBadTimeRange) for a bad time-range.
bool matches_filter(std::string_view ics, const CompFilter& filter);

// RFC 4791 9.6.5 <C:expand>: the instances overlapping [start, end) as components of their own,
// in UTC, each with a RECURRENCE-ID, without recurrence rules or VTIMEZONEs.
std::string expand_instances(std::string_view ics, int64_t start, int64_t end);

// RFC 4791 9.6.6 <C:limit-recurrence-set>: the master and the overrides that touch the range.
std::string limit_recurrence_set(std::string_view ics, int64_t start, int64_t end);

// RFC 4791 7.10: a VCALENDAR with one VFREEBUSY whose FREEBUSY periods are the busy time of
// the VEVENTs in objects within [start, end), recurrences expanded, merged and clipped.
// TRANSP:TRANSPARENT and STATUS:CANCELLED are free; STATUS:TENTATIVE is BUSY-TENTATIVE.
// Objects that do not parse are skipped.
std::string free_busy(const std::vector<std::string>& objects, int64_t start, int64_t end);

}  // namespace coop::dav
