// iCalendar validation, recurrence expansion and free-busy for CalDAV, on top of libical.
#include "workers/dav/calendar_data.h"

#include <libical/ical.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <set>
#include <utility>

#include "common/error.h"
#include "common/text.h"
#include "workers/dav/ical_component.h"

namespace coop::dav {
namespace {

// Bounds the expansion of one RRULE (and the RDATEs of one component), so a FREQ=SECONDLY rule
// without an end cannot keep a request busy.
constexpr int kMaxOccurrences = 10000;
constexpr int64_t kSecondsPerDay = 86400;
constexpr std::string_view kProductId = "-//coop//coop-dav//EN";

using ical::ComponentPtr;
ComponentPtr parse_ics(std::string_view ics) { return ical::parse(ics); }
using ical::serialize;

[[noreturn]] void invalid(const std::string& why) { throw Error("valid-calendar-data", why, 403); }

bool is_instance_kind(icalcomponent_kind kind) {
  return kind == ICAL_VEVENT_COMPONENT || kind == ICAL_VTODO_COMPONENT || kind == ICAL_VJOURNAL_COMPONENT ||
         kind == ICAL_VFREEBUSY_COMPONENT;
}

// The first X-LIC-ERROR libical attached while parsing, anywhere in the tree.
std::optional<std::string> first_parse_error(icalcomponent* component) {
  if (icalproperty* error = icalcomponent_get_first_property(component, ICAL_XLICERROR_PROPERTY)) {
    const char* text = icalproperty_get_xlicerror(error);
    return std::string(text ? text : "unparsable content");
  }
  for (icalcomponent* child = icalcomponent_get_first_component(component, ICAL_ANY_COMPONENT); child;
       child = icalcomponent_get_next_component(component, ICAL_ANY_COMPONENT)) {
    if (auto error = first_parse_error(child)) return error;
  }
  return std::nullopt;
}

std::vector<icalcomponent*> instance_components(icalcomponent* root) {
  std::vector<icalcomponent*> out;
  for (icalcomponent* child = icalcomponent_get_first_component(root, ICAL_ANY_COMPONENT); child;
       child = icalcomponent_get_next_component(root, ICAL_ANY_COMPONENT)) {
    if (is_instance_kind(icalcomponent_isa(child))) out.push_back(child);
  }
  return out;
}

// Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian, no time_t limits.
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t& y, int64_t& m, int64_t& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp + (mp < 10 ? 3 : -9);
  y = yoe + era * 400 + (m <= 2);
}

int64_t civil_to_unix(const icaltimetype& t) {
  const int64_t day = days_from_civil(t.year, t.month, t.day) * kSecondsPerDay;
  if (t.is_date) return day;
  return day + int64_t{t.hour} * 3600 + int64_t{t.minute} * 60 + t.second;
}

// The zone a property's TZID names (RFC 5545 3.2.19): the object's own VTIMEZONE first, then
// libical's builtin Olson zones, also behind vendor prefixes like "/mozilla.org/20050126_1/".
icaltimezone* zone_of(icalcomponent* root, icalproperty* property) {
  icalparameter* parameter = icalproperty_get_first_parameter(property, ICAL_TZID_PARAMETER);
  const char* tzid = parameter ? icalparameter_get_tzid(parameter) : nullptr;
  if (!tzid || !*tzid) return nullptr;
  if (icaltimezone* zone = icalcomponent_get_timezone(root, tzid)) return zone;
  if (icaltimezone* zone = icaltimezone_get_builtin_timezone_from_tzid(tzid)) return zone;
  std::string location(tzid);
  for (int strip = 0; strip < 4 && !location.empty(); ++strip) {
    if (icaltimezone* zone = icaltimezone_get_builtin_timezone(location.c_str())) return zone;
    const auto slash = location.find('/', 1);
    if (slash == std::string::npos) break;
    location.erase(0, slash + 1);
  }
  return nullptr;
}

// A wall-clock time in zone as unix seconds. Floating times and DATE values have no zone here:
// RFC 4791 9.9 would use the calendar's CALDAV:calendar-timezone, coop takes UTC.
int64_t to_unix(icaltimetype t, icaltimezone* zone) {
  if (!t.is_date && zone && !icaltime_is_utc(t)) icaltimezone_convert_time(&t, zone, icaltimezone_get_utc_timezone());
  return civil_to_unix(t);
}

int64_t to_unix(icalcomponent* root, icalproperty* property, icaltimetype t) {
  return to_unix(t, icaltime_is_utc(t) ? nullptr : zone_of(root, property));
}

// Which row of the RFC 4791 9.9 tables decides whether an instance overlaps a range.
enum class TimeRule {
  span,       // [start, start + duration); a zero duration is the "start <= DTSTART" instant
  due_point,  // VTODO with only DUE: start < DUE AND end >= DUE
  always,     // VTODO without DTSTART and DUE
  never,      // no DTSTART where one is needed
};

struct Timing {
  TimeRule rule = TimeRule::never;
  icaltimetype dtstart = icaltime_null_time();  // what RRULE expands from, zone attached
  icaltimezone* zone = nullptr;
  int64_t start = 0;
  int64_t duration = 0;
};

icaltimetype dtstart_value(icalproperty* property) { return icalproperty_get_dtstart(property); }

Timing timing_of(icalcomponent* root, icalcomponent* component) {
  Timing timing;
  const auto kind = icalcomponent_isa(component);
  icalproperty* dtstart = icalcomponent_get_first_property(component, ICAL_DTSTART_PROPERTY);
  if (dtstart && icaltime_is_null_time(dtstart_value(dtstart))) dtstart = nullptr;
  icalproperty* dtend = icalcomponent_get_first_property(component, ICAL_DTEND_PROPERTY);
  icalproperty* due = icalcomponent_get_first_property(component, ICAL_DUE_PROPERTY);
  icalproperty* duration = icalcomponent_get_first_property(component, ICAL_DURATION_PROPERTY);

  if (dtstart) {
    timing.dtstart = dtstart_value(dtstart);
    if (!icaltime_is_utc(timing.dtstart)) timing.zone = zone_of(root, dtstart);
    if (timing.zone) icaltime_set_timezone(&timing.dtstart, timing.zone);
    timing.start = to_unix(timing.dtstart, timing.zone);
    timing.rule = TimeRule::span;
  }
  const auto seconds_of = [](icalproperty* property) {
    return int64_t{icaldurationtype_as_int(icalproperty_get_duration(property))};
  };

  switch (kind) {
    case ICAL_VEVENT_COMPONENT:
      if (!dtstart) return timing;
      if (dtend) {
        timing.duration = to_unix(root, dtend, icalproperty_get_dtend(dtend)) - timing.start;
      } else if (duration) {
        timing.duration = seconds_of(duration);
      } else if (timing.dtstart.is_date) {
        timing.duration = kSecondsPerDay;  // RFC 5545 3.6.1: an all-day event lasts the day
      }
      break;
    case ICAL_VTODO_COMPONENT:
      // RFC 4791 9.9, simplified: COMPLETED and CREATED are not consulted.
      if (dtstart && due) {
        timing.duration = to_unix(root, due, icalproperty_get_due(due)) - timing.start;
      } else if (dtstart && duration) {
        timing.duration = seconds_of(duration);
      } else if (due) {
        timing.rule = TimeRule::due_point;
        timing.start = to_unix(root, due, icalproperty_get_due(due));
      } else if (!dtstart) {
        timing.rule = TimeRule::always;
      }
      break;
    case ICAL_VJOURNAL_COMPONENT:
      if (dtstart && timing.dtstart.is_date) timing.duration = kSecondsPerDay;
      break;
    case ICAL_VFREEBUSY_COMPONENT:
      if (!dtstart || !dtend) timing.rule = TimeRule::never;
      else timing.duration = to_unix(root, dtend, icalproperty_get_dtend(dtend)) - timing.start;
      break;
    default: timing.rule = TimeRule::never; break;
  }
  timing.duration = std::max<int64_t>(timing.duration, 0);
  return timing;
}

bool instance_overlaps(TimeRule rule, int64_t instance_start, int64_t duration, std::optional<int64_t> start,
                       std::optional<int64_t> end) {
  switch (rule) {
    case TimeRule::span: {
      const bool ends_after_start =
          !start || (duration > 0 ? *start < instance_start + duration : *start <= instance_start);
      return ends_after_start && (!end || *end > instance_start);
    }
    case TimeRule::due_point: return (!start || *start < instance_start) && (!end || *end >= instance_start);
    case TimeRule::always: return true;
    case TimeRule::never: return false;
  }
  return false;
}

// Called for each instance with its component, timing, start and duration; returns true to stop.
using InstanceVisitor = std::function<bool(icalcomponent*, const Timing&, int64_t, int64_t)>;

bool has_recurrence(icalcomponent* component) {
  return icalcomponent_get_first_property(component, ICAL_RRULE_PROPERTY) ||
         icalcomponent_get_first_property(component, ICAL_RDATE_PROPERTY);
}

int64_t date_key(const icaltimetype& t) { return int64_t{t.year} * 10000 + t.month * 100 + t.day; }

// RFC 5545 3.8.5: the recurrence set is DTSTART, the RRULE and RDATE instances, minus EXDATE,
// with RECURRENCE-ID components replacing the instances they name (RFC 5545 3.8.4.4).
bool expand_master(icalcomponent* root, icalcomponent* master, const Timing& timing,
                   const std::set<int64_t>& overridden, std::optional<int64_t> range_start,
                   std::optional<int64_t> range_end, const InstanceVisitor& visit) {
  std::set<int64_t> excluded;
  std::set<int64_t> excluded_dates;
  for (icalproperty* exdate = icalcomponent_get_first_property(master, ICAL_EXDATE_PROPERTY); exdate;
       exdate = icalcomponent_get_next_property(master, ICAL_EXDATE_PROPERTY)) {
    const icaltimetype t = icalproperty_get_exdate(exdate);
    if (icaltime_is_null_time(t)) continue;
    if (t.is_date) excluded_dates.insert(date_key(t));
    excluded.insert(to_unix(root, exdate, t));
  }

  std::set<int64_t> seen;
  int emitted = 0;
  const auto emit = [&](const icaltimetype& local, int64_t start, int64_t duration) {
    if (range_end && start >= *range_end) return false;
    if (!seen.insert(start).second || excluded.count(start) || overridden.count(start)) return false;
    if (excluded_dates.count(date_key(local))) return false;  // a DATE EXDATE removes that whole day
    ++emitted;
    return visit(master, timing, start, duration);
  };

  // RFC 5545 3.8.5.3: DTSTART is always the first instance, whether the rule matches it or not.
  if (emit(timing.dtstart, timing.start, timing.duration)) return true;

  for (icalproperty* rrule = icalcomponent_get_first_property(master, ICAL_RRULE_PROPERTY); rrule;
       rrule = icalcomponent_get_next_property(master, ICAL_RRULE_PROPERTY)) {
    const auto rule = icalproperty_get_rrule(rrule);
    icalrecur_iterator* iterator = icalrecur_iterator_new(rule, timing.dtstart);
    if (!iterator) continue;
    // A series that began long before the range (a daily one from 1990) starts where the range
    // does, less an instance's length and a day, instead of spending the occurrence limit on
    // the past. libical cannot do so for a rule with COUNT, which is bounded anyway.
    if (range_start && rule.count == 0) {
      const int64_t from = *range_start - timing.duration - kSecondsPerDay;
      if (from > timing.start) {
        icaltimetype at = icaltime_from_timet_with_zone(static_cast<time_t>(from), timing.dtstart.is_date,
                                                        timing.zone ? timing.zone : icaltimezone_get_utc_timezone());
        if (!timing.dtstart.is_date) {  // the series' own time of day, so the rule lines up
          at.hour = timing.dtstart.hour;
          at.minute = timing.dtstart.minute;
          at.second = timing.dtstart.second;
        }
        icalrecur_iterator_set_start(iterator, at);
      }
    }
    bool stop = false;
    for (int n = 0; n < kMaxOccurrences && !stop; ++n) {
      const icaltimetype next = icalrecur_iterator_next(iterator);
      if (icaltime_is_null_time(next)) break;
      const int64_t start = to_unix(next, timing.zone);
      if (range_end && start >= *range_end) break;
      stop = emit(next, start, timing.duration);
    }
    icalrecur_iterator_free(iterator);
    if (stop) return true;
  }

  for (icalproperty* rdate = icalcomponent_get_first_property(master, ICAL_RDATE_PROPERTY);
       rdate && emitted < kMaxOccurrences; rdate = icalcomponent_get_next_property(master, ICAL_RDATE_PROPERTY)) {
    const icaldatetimeperiodtype value = icalproperty_get_rdate(rdate);
    if (!icalperiodtype_is_null_period(value.period)) {
      // RFC 5545 3.8.5.2: an RDATE period carries its own duration.
      const int64_t start = to_unix(root, rdate, value.period.start);
      const int64_t duration =
          icaltime_is_null_time(value.period.end)
              ? int64_t{icaldurationtype_as_int(value.period.duration)}
              : to_unix(root, rdate, value.period.end) - start;
      if (emit(value.period.start, start, std::max<int64_t>(duration, 0))) return true;
    } else if (!icaltime_is_null_time(value.time)) {
      if (emit(value.time, to_unix(root, rdate, value.time), timing.duration)) return true;
    }
  }
  return false;
}

// Visits every instance of every component in the VCALENDAR; instances starting at or after
// range_end are not generated, and a rule's instances well before range_start are skipped
// (not every one: the visitor still tests overlap). Returns true when the visitor stopped.
bool for_each_instance(icalcomponent* root, std::optional<int64_t> range_start, std::optional<int64_t> range_end,
                       const InstanceVisitor& visit) {
  const auto components = instance_components(root);
  std::set<int64_t> overridden;
  for (icalcomponent* component : components) {
    if (icalproperty* rid = icalcomponent_get_first_property(component, ICAL_RECURRENCEID_PROPERTY)) {
      overridden.insert(to_unix(root, rid, icalproperty_get_recurrenceid(rid)));
      const Timing timing = timing_of(root, component);
      if (visit(component, timing, timing.start, timing.duration)) return true;
    }
  }
  for (icalcomponent* component : components) {
    if (icalcomponent_get_first_property(component, ICAL_RECURRENCEID_PROPERTY)) continue;
    const Timing timing = timing_of(root, component);
    if (timing.rule == TimeRule::span && has_recurrence(component)) {
      if (expand_master(root, component, timing, overridden, range_start, range_end, visit)) return true;
    } else if (!(timing.rule == TimeRule::span && overridden.count(timing.start))) {
      if (visit(component, timing, timing.start, timing.duration)) return true;
    }
  }
  return false;
}

// RFC 4791 7.10: which busy type an instance contributes, if any.
std::optional<icalparameter_fbtype> busy_type(icalcomponent* event) {
  if (icalproperty* transp = icalcomponent_get_first_property(event, ICAL_TRANSP_PROPERTY)) {
    const auto value = icalproperty_get_transp(transp);
    if (value == ICAL_TRANSP_TRANSPARENT || value == ICAL_TRANSP_TRANSPARENTNOCONFLICT) return std::nullopt;
  }
  if (icalproperty* status = icalcomponent_get_first_property(event, ICAL_STATUS_PROPERTY)) {
    const auto value = icalproperty_get_status(status);
    if (value == ICAL_STATUS_CANCELLED) return std::nullopt;
    if (value == ICAL_STATUS_TENTATIVE) return ICAL_FBTYPE_BUSYTENTATIVE;
  }
  return ICAL_FBTYPE_BUSY;
}

using Periods = std::vector<std::pair<int64_t, int64_t>>;

Periods merged(Periods periods) {
  std::sort(periods.begin(), periods.end());
  Periods out;
  for (const auto& period : periods) {
    if (!out.empty() && period.first <= out.back().second) out.back().second = std::max(out.back().second, period.second);
    else out.push_back(period);
  }
  return out;
}

}  // namespace

CalendarObject parse_calendar_object(std::string_view ics) {
  if (ics.find('\0') != std::string_view::npos) invalid("calendar data contains a NUL byte");
  const auto root = parse_ics(ics);
  if (!root) invalid("not iCalendar data");
  if (icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) invalid("expected exactly one VCALENDAR");
  if (const auto error = first_parse_error(root.get())) invalid("unparsable iCalendar: " + *error);

  icalproperty* version = icalcomponent_get_first_property(root.get(), ICAL_VERSION_PROPERTY);
  const char* version_text = version ? icalproperty_get_version(version) : nullptr;
  if (!version_text) invalid("VCALENDAR has no VERSION");
  if (std::string_view(version_text) != "2.0") invalid("VERSION must be 2.0");
  // RFC 4791 4.1: calendar object resources MUST NOT specify the iCalendar METHOD property.
  if (icalcomponent_get_first_property(root.get(), ICAL_METHOD_PROPERTY)) invalid("METHOD is not allowed");

  CalendarObject object;
  icalcomponent_kind kind = ICAL_NO_COMPONENT;
  icalcomponent* master = nullptr;
  icalcomponent* first = nullptr;
  bool has_overrides = false;
  std::set<int64_t> recurrence_ids;
  for (icalcomponent* child = icalcomponent_get_first_component(root.get(), ICAL_ANY_COMPONENT); child;
       child = icalcomponent_get_next_component(root.get(), ICAL_ANY_COMPONENT)) {
    const auto child_kind = icalcomponent_isa(child);
    if (child_kind == ICAL_VTIMEZONE_COMPONENT) continue;
    const char* kind_name = icalcomponent_kind_to_string(child_kind);
    if (!is_instance_kind(child_kind)) invalid(std::string("unexpected component ") + (kind_name ? kind_name : "?"));
    // RFC 4791 4.1: one type of calendar component per resource, VTIMEZONE aside.
    if (kind != ICAL_NO_COMPONENT && child_kind != kind) invalid("more than one type of calendar component");
    kind = child_kind;

    icalproperty* uid = icalcomponent_get_first_property(child, ICAL_UID_PROPERTY);
    const char* uid_text = uid ? icalproperty_get_uid(uid) : nullptr;
    if (!uid_text || !*uid_text) invalid(std::string(kind_name) + " has no UID");
    // RFC 4791 4.1: all components of one resource share one UID.
    if (!first) object.uid = uid_text;
    else if (object.uid != uid_text) invalid("components with different UIDs");
    if (!first) first = child;

    // RFC 5545 3.6.1 and 3.6.2: DTEND/DUE and DURATION are alternatives; without METHOD a
    // VEVENT needs DTSTART.
    if (child_kind == ICAL_VEVENT_COMPONENT && !icalcomponent_get_first_property(child, ICAL_DTSTART_PROPERTY))
      invalid("VEVENT has no DTSTART");
    if (icalcomponent_get_first_property(child, ICAL_DURATION_PROPERTY) &&
        (icalcomponent_get_first_property(child, ICAL_DTEND_PROPERTY) ||
         icalcomponent_get_first_property(child, ICAL_DUE_PROPERTY)))
      invalid("DURATION together with DTEND or DUE");

    if (icalproperty* rid = icalcomponent_get_first_property(child, ICAL_RECURRENCEID_PROPERTY)) {
      has_overrides = true;
      if (!recurrence_ids.insert(to_unix(root.get(), rid, icalproperty_get_recurrenceid(rid))).second)
        invalid("two components with the same RECURRENCE-ID");
    } else {
      if (master) invalid("more than one component without RECURRENCE-ID");
      master = child;
    }
  }
  if (!first) invalid("no VEVENT, VTODO, VJOURNAL or VFREEBUSY");

  object.component = icalcomponent_kind_to_string(kind);
  icalcomponent* described = master ? master : first;
  if (icalproperty* summary = icalcomponent_get_first_property(described, ICAL_SUMMARY_PROPERTY)) {
    const char* text = icalproperty_get_summary(summary);
    if (text) object.summary = text;
  }
  object.recurring = has_overrides || (master && has_recurrence(master));
  return object;
}

bool overlaps_time_range(std::string_view ics, std::optional<int64_t> start, std::optional<int64_t> end) {
  const auto root = parse_ics(ics);
  if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) return false;
  return for_each_instance(root.get(), start, end, [&](icalcomponent*, const Timing& timing, int64_t s, int64_t duration) {
    return instance_overlaps(timing.rule, s, duration, start, end);
  });
}

std::optional<TimeBounds> instance_bounds(std::string_view ics) {
  const auto root = parse_ics(ics);
  if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) return std::nullopt;
  // A rule with neither COUNT nor UNTIL never ends: no bounds worth indexing.
  for (icalcomponent* component : instance_components(root.get()))
    for (icalproperty* p = icalcomponent_get_first_property(component, ICAL_RRULE_PROPERTY); p;
         p = icalcomponent_get_next_property(component, ICAL_RRULE_PROPERTY)) {
      const auto rule = icalproperty_get_rrule(p);
      if (rule.count == 0 && icaltime_is_null_time(rule.until)) return std::nullopt;
    }
  TimeBounds bounds{INT64_MAX, INT64_MIN};
  bool any = false;
  for_each_instance(root.get(), std::nullopt, std::nullopt, [&](icalcomponent*, const Timing& timing, int64_t start, int64_t duration) {
    if (timing.rule != TimeRule::span) {
      any = false;  // to-dos without dates and the like: leave them to the full test
      return true;
    }
    bounds.first_start = std::min(bounds.first_start, start);
    bounds.last_end = std::max(bounds.last_end, start + std::max<int64_t>(duration, 0));
    any = true;
    return false;
  });
  if (!any) return std::nullopt;
  // A day's slack either side: floating times and DATE values are read as UTC, and the bounds
  // only pre-select what the exact test then decides.
  bounds.first_start -= 86400;
  bounds.last_end += 86400;
  return bounds;
}

int64_t parse_ical_utc(std::string_view text) {
  const auto bad = [&]() -> Error {
    return Error(errc::kBadTimeRange, "expected a UTC time like 20260105T000000Z, got '" + std::string(text.substr(0, 40)) + "'",
                 400);
  };
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') throw bad();
  const auto number = [&](std::size_t at, std::size_t width) {
    int64_t value = 0;
    for (std::size_t i = at; i < at + width; ++i) {
      if (text[i] < '0' || text[i] > '9') throw bad();
      value = value * 10 + (text[i] - '0');
    }
    return value;
  };
  const int64_t year = number(0, 4), month = number(4, 2), day = number(6, 2);
  const int64_t hour = number(9, 2), minute = number(11, 2), second = number(13, 2);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) throw bad();
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (day > kDaysInMonth[month - 1] + (month == 2 && leap)) throw bad();
  return days_from_civil(year, month, day) * kSecondsPerDay + hour * 3600 + minute * 60 + second;
}

std::string format_ical_utc(int64_t unix_seconds) {
  int64_t days = unix_seconds / kSecondsPerDay;
  int64_t rest = unix_seconds % kSecondsPerDay;
  if (rest < 0) {
    rest += kSecondsPerDay;
    --days;
  }
  int64_t year = 0, month = 0, day = 0;
  civil_from_days(days, year, month, day);
  char out[64];
  std::snprintf(out, sizeof out, "%04lld%02lld%02lldT%02lld%02lld%02lldZ", static_cast<long long>(year),
                static_cast<long long>(month), static_cast<long long>(day), static_cast<long long>(rest / 3600),
                static_cast<long long>(rest / 60 % 60), static_cast<long long>(rest % 60));
  return out;
}

std::string free_busy(const std::vector<std::string>& objects, int64_t start, int64_t end) {
  Periods busy;
  Periods tentative;
  for (const auto& ics : objects) {
    const auto root = parse_ics(ics);
    if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) continue;
    for_each_instance(root.get(), start, end, [&](icalcomponent* component, const Timing& timing, int64_t s, int64_t duration) {
      if (icalcomponent_isa(component) != ICAL_VEVENT_COMPONENT || timing.rule != TimeRule::span) return false;
      if (duration <= 0 || !instance_overlaps(timing.rule, s, duration, start, end)) return false;
      const auto type = busy_type(component);
      if (!type) return false;
      const std::pair<int64_t, int64_t> period{std::max(s, start), std::min(s + duration, end)};
      if (period.first < period.second) (*type == ICAL_FBTYPE_BUSYTENTATIVE ? tentative : busy).push_back(period);
      return false;
    });
  }

  // RFC 5545 3.6.4 and 3.8.2.6: FREEBUSY periods in UTC, DTSTART/DTEND the queried range.
  std::string out = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:" + std::string(kProductId) + "\r\nBEGIN:VFREEBUSY\r\n";
  out += "DTSTAMP:" + format_ical_utc(static_cast<int64_t>(std::time(nullptr))) + "\r\n";
  out += "DTSTART:" + format_ical_utc(start) + "\r\nDTEND:" + format_ical_utc(end) + "\r\n";
  for (const auto& [from, to] : merged(std::move(busy)))
    out += "FREEBUSY:" + format_ical_utc(from) + "/" + format_ical_utc(to) + "\r\n";
  for (const auto& [from, to] : merged(std::move(tentative)))
    out += "FREEBUSY;FBTYPE=BUSY-TENTATIVE:" + format_ical_utc(from) + "/" + format_ical_utc(to) + "\r\n";
  out += "END:VFREEBUSY\r\nEND:VCALENDAR\r\n";
  return out;
}

// ---- calendar-query filters (RFC 4791 9.7) -------------------------------------------------

namespace {

bool text_matches(std::string_view value, const CalendarTextMatch& match) {
  bool found;
  if (match.octet) {
    found = value.find(match.text) != std::string_view::npos;
  } else {  // i;ascii-casemap (RFC 4790 9.2): a-z as A-Z
    auto fold = [](unsigned char c) { return static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c); };
    std::string haystack(value), needle(match.text);
    for (auto& c : haystack) c = fold(static_cast<unsigned char>(c));
    for (auto& c : needle) c = fold(static_cast<unsigned char>(c));
    found = haystack.find(needle) != std::string::npos;
  }
  return found != match.negate;
}

std::optional<int64_t> range_bound(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  return parse_ical_utc(*text);
}

bool same_name(const char* actual, const std::string& wanted) { return actual && ascii_iequals(actual, wanted); }

std::vector<icalproperty*> properties_named(icalcomponent* component, const std::string& name) {
  std::vector<icalproperty*> out;
  for (icalproperty* p = icalcomponent_get_first_property(component, ICAL_ANY_PROPERTY); p;
       p = icalcomponent_get_next_property(component, ICAL_ANY_PROPERTY))
    if (same_name(icalproperty_get_property_name(p), name)) out.push_back(p);
  return out;
}

// A parameter's value as written (TZID, PARTSTAT...).
std::vector<std::string> parameter_values(icalproperty* property, const std::string& name) {
  std::vector<std::string> out;
  for (icalparameter* p = icalproperty_get_first_parameter(property, ICAL_ANY_PARAMETER); p;
       p = icalproperty_get_next_parameter(property, ICAL_ANY_PARAMETER)) {
    const char* text = icalparameter_as_ical_string(p);  // NAME=value
    if (!text) continue;
    const std::string whole(text);
    const auto equals = whole.find('=');
    if (equals == std::string::npos || !same_name(whole.substr(0, equals).c_str(), name)) continue;
    std::string value = whole.substr(equals + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    out.push_back(value);
  }
  return out;
}

bool property_matches(icalcomponent* root, icalproperty* property, const PropFilter& filter) {
  if (filter.time_range) {
    // RFC 4791 9.9: a DATE or DATE-TIME property (COMPLETED, CREATED, DTSTAMP...) overlaps
    // when start <= value < end.
    const icalvalue* value = icalproperty_get_value(property);
    const auto kind = value ? icalvalue_isa(value) : ICAL_NO_VALUE;
    if (kind != ICAL_DATETIME_VALUE && kind != ICAL_DATE_VALUE) return false;
    const int64_t t = to_unix(root, property, icalvalue_get_datetime(value));
    const auto start = range_bound(filter.time_range->start), end = range_bound(filter.time_range->end);
    if ((start && t < *start) || (end && t >= *end)) return false;
  }
  if (filter.text_match) {
    const char* text = icalproperty_get_value_as_string(property);
    if (!text_matches(text ? text : "", *filter.text_match)) return false;
  }
  for (const auto& param : filter.params) {
    const auto values = parameter_values(property, param.name);
    if (param.is_not_defined) {
      if (!values.empty()) return false;
      continue;
    }
    if (values.empty()) return false;
    if (param.text_match &&
        std::none_of(values.begin(), values.end(), [&](const std::string& v) { return text_matches(v, *param.text_match); }))
      return false;
  }
  return true;
}

bool props_match(icalcomponent* root, icalcomponent* component, const std::vector<PropFilter>& filters) {
  for (const auto& filter : filters) {
    const auto properties = properties_named(component, filter.name);
    if (filter.is_not_defined) {
      if (!properties.empty()) return false;
      continue;
    }
    if (std::none_of(properties.begin(), properties.end(), [&](icalproperty* p) { return property_matches(root, p, filter); }))
      return false;
  }
  return true;
}

// RFC 4791 9.9 VALARM: a trigger (relative to its component's start or end, or absolute),
// repeated REPEAT times DURATION apart, for each instance of the component it belongs to.
bool alarm_overlaps(icalcomponent* root, icalcomponent* owner, icalcomponent* alarm, std::optional<int64_t> start,
                    std::optional<int64_t> end) {
  icalproperty* trigger = icalcomponent_get_first_property(alarm, ICAL_TRIGGER_PROPERTY);
  if (!trigger) return false;
  const icaltriggertype value = icalproperty_get_trigger(trigger);
  const bool absolute = !icaltime_is_null_time(value.time);
  const int64_t offset = absolute ? 0 : icaldurationtype_as_int(value.duration);
  icalparameter* related = icalproperty_get_first_parameter(trigger, ICAL_RELATED_PARAMETER);
  const bool from_end = related && icalparameter_get_related(related) == ICAL_RELATED_END;
  int64_t repeat = 0, every = 0;
  if (icalproperty* r = icalcomponent_get_first_property(alarm, ICAL_REPEAT_PROPERTY)) repeat = std::clamp(icalproperty_get_repeat(r), 0, 1000);
  if (icalproperty* d = icalcomponent_get_first_property(alarm, ICAL_DURATION_PROPERTY)) every = icaldurationtype_as_int(icalproperty_get_duration(d));
  auto fires_in_range = [&](int64_t first) {
    for (int64_t n = 0; n <= repeat; ++n) {
      const int64_t t = first + n * every;
      if ((!start || t >= *start) && (!end || t < *end)) return true;
    }
    return false;
  };
  if (absolute) return fires_in_range(to_unix(root, trigger, value.time));
  // Instances whose alarms can fall in the range: widened by the offset and the repeats.
  const int64_t reach = std::abs(offset) + repeat * std::abs(every) + kSecondsPerDay;
  std::optional<int64_t> from, to;
  if (start) from = *start - reach;
  if (end) to = *end + reach;
  return for_each_instance(root, from, to, [&](icalcomponent* component, const Timing&, int64_t s, int64_t duration) {
    if (component != owner) return false;
    return fires_in_range((from_end ? s + duration : s) + offset);
  });
}

bool component_overlaps(icalcomponent* root, icalcomponent* component, const CalendarTimeRange& range) {
  const auto start = range_bound(range.start), end = range_bound(range.end);
  return for_each_instance(root, start, end, [&](icalcomponent* c, const Timing& timing, int64_t s, int64_t duration) {
    return c == component && instance_overlaps(timing.rule, s, duration, start, end);
  });
}

// RFC 4791 9.7.1: a comp-filter matches a component that has (or, is-not-defined, lacks) a
// child of that name meeting the time-range, the prop-filters and the nested comp-filters.
bool children_match(icalcomponent* root, icalcomponent* parent, const CompFilter& filter) {
  std::vector<icalcomponent*> named;
  for (icalcomponent* child = icalcomponent_get_first_component(parent, ICAL_ANY_COMPONENT); child;
       child = icalcomponent_get_next_component(parent, ICAL_ANY_COMPONENT))
    if (same_name(icalcomponent_kind_to_string(icalcomponent_isa(child)), filter.name)) named.push_back(child);
  if (filter.is_not_defined) return named.empty();
  return std::any_of(named.begin(), named.end(), [&](icalcomponent* child) {
    if (filter.time_range) {
      const bool alarm = icalcomponent_isa(child) == ICAL_VALARM_COMPONENT;
      if (alarm ? !alarm_overlaps(root, parent, child, range_bound(filter.time_range->start), range_bound(filter.time_range->end))
                : !component_overlaps(root, child, *filter.time_range))
        return false;
    }
    if (!props_match(root, child, filter.props)) return false;
    return std::all_of(filter.comps.begin(), filter.comps.end(), [&](const CompFilter& nested) { return children_match(root, child, nested); });
  });
}

ComponentPtr new_calendar(icalcomponent* like) {
  ComponentPtr out(icalcomponent_new(ICAL_VCALENDAR_COMPONENT));
  for (icalproperty* p = icalcomponent_get_first_property(like, ICAL_ANY_PROPERTY); p;
       p = icalcomponent_get_next_property(like, ICAL_ANY_PROPERTY))
    icalcomponent_add_property(out.get(), icalproperty_new_clone(p));
  return out;
}


}  // namespace

bool matches_filter(std::string_view ics, const CompFilter& filter) {
  const auto root = parse_ics(ics);
  if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) return false;
  // The top comp-filter names the VCALENDAR itself (RFC 4791 9.7.1).
  if (!same_name("VCALENDAR", filter.name)) return filter.is_not_defined;
  if (filter.is_not_defined) return false;
  if (!props_match(root.get(), root.get(), filter.props)) return false;
  return std::all_of(filter.comps.begin(), filter.comps.end(),
                     [&](const CompFilter& nested) { return children_match(root.get(), root.get(), nested); });
}

std::string expand_instances(std::string_view ics, int64_t start, int64_t end) {
  const auto root = parse_ics(ics);
  if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) return std::string(ics);
  auto out = new_calendar(root.get());
  icaltimezone* utc = icaltimezone_get_utc_timezone();
  // RFC 4791 9.6.5: each instance in the range as its own component with a RECURRENCE-ID,
  // in UTC, without RRULE, RDATE, EXDATE or VTIMEZONE.
  for_each_instance(root.get(), start, end, [&](icalcomponent* component, const Timing& timing, int64_t s, int64_t duration) {
    if (!instance_overlaps(timing.rule, s, duration, start, end)) return false;
    icalcomponent* copy = icalcomponent_new_clone(component);
    for (auto kind : {ICAL_RRULE_PROPERTY, ICAL_RDATE_PROPERTY, ICAL_EXDATE_PROPERTY, ICAL_DTSTART_PROPERTY, ICAL_DTEND_PROPERTY,
                      ICAL_RECURRENCEID_PROPERTY})
      while (icalproperty* p = icalcomponent_get_first_property(copy, kind)) {
        icalcomponent_remove_property(copy, p);
        icalproperty_free(p);
      }
    const bool date = timing.dtstart.is_date;
    const auto at = [&](int64_t t) { return icaltime_from_timet_with_zone(static_cast<time_t>(t), date, utc); };
    if (timing.rule == TimeRule::span) {
      icalcomponent_add_property(copy, icalproperty_new_dtstart(at(s)));
      const bool had_end = icalcomponent_get_first_property(component, ICAL_DTEND_PROPERTY) != nullptr;
      const bool has_duration = icalcomponent_get_first_property(copy, ICAL_DURATION_PROPERTY) != nullptr;
      if (had_end && !has_duration) icalcomponent_add_property(copy, icalproperty_new_dtend(at(s + duration)));
      const bool recurring = has_recurrence(component) || icalcomponent_get_first_property(component, ICAL_RECURRENCEID_PROPERTY);
      if (recurring) icalcomponent_add_property(copy, icalproperty_new_recurrenceid(at(s)));
    }
    icalcomponent_add_component(out.get(), copy);
    return false;
  });
  return serialize(out.get());
}

std::string limit_recurrence_set(std::string_view ics, int64_t start, int64_t end) {
  const auto root = parse_ics(ics);
  if (!root || icalcomponent_isa(root.get()) != ICAL_VCALENDAR_COMPONENT) return std::string(ics);
  // RFC 4791 9.6.6: the master and the overridden instances that touch the range (those whose
  // RECURRENCE-ID or own time falls in it); every VTIMEZONE stays.
  auto out = new_calendar(root.get());
  for (icalcomponent* child = icalcomponent_get_first_component(root.get(), ICAL_ANY_COMPONENT); child;
       child = icalcomponent_get_next_component(root.get(), ICAL_ANY_COMPONENT)) {
    bool keep = true;
    if (icalproperty* rid = icalcomponent_get_first_property(child, ICAL_RECURRENCEID_PROPERTY)) {
      const int64_t was = to_unix(root.get(), rid, icalproperty_get_recurrenceid(rid));
      const Timing timing = timing_of(root.get(), child);
      keep = (was >= start && was < end) || instance_overlaps(timing.rule, timing.start, timing.duration, start, end);
    }
    if (keep) icalcomponent_add_component(out.get(), icalcomponent_new_clone(child));
  }
  return serialize(out.get());
}

}  // namespace coop::dav
