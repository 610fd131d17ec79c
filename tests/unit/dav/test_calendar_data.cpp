// Calendar object validation (RFC 4791 4.1), time-range matching (9.9) and free-busy (7.10).
#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>

#include "common/error.h"
#include "workers/dav/calendar_data.h"

namespace dav = coop::dav;

namespace {

// An iCalendar stream from content lines, CRLF-terminated as RFC 5545 3.1 wants.
std::string ics(std::initializer_list<const char*> lines) {
  std::string out;
  for (const char* line : lines) out += std::string(line) + "\r\n";
  return out;
}

// A VCALENDAR around the given VEVENT body lines.
std::string event(std::initializer_list<const char*> body) {
  std::string out = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coop//test//EN\r\nBEGIN:VEVENT\r\n";
  for (const char* line : body) out += std::string(line) + "\r\n";
  return out + "END:VEVENT\r\nEND:VCALENDAR\r\n";
}

std::string invalid_code(const std::string& text) {
  try {
    dav::parse_calendar_object(text);
  } catch (const coop::Error& error) {
    CHECK(error.status() == 403);
    return error.code();
  }
  return "accepted";
}

bool overlaps(const std::string& object, const char* start, const char* end) {
  return dav::overlaps_time_range(object, dav::parse_ical_utc(start), dav::parse_ical_utc(end));
}

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

const std::string kWeekly = event({"UID:weekly@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z",
                                   "DTEND:20260105T110000Z", "SUMMARY:Standup",
                                   "RRULE:FREQ=WEEKLY;UNTIL=20260302T235959Z"});

}  // namespace

TEST_CASE("a valid event yields its UID, component and summary") {
  const auto object = dav::parse_calendar_object(event({"UID:event-1@example.com", "DTSTAMP:20260101T000000Z",
                                                        "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z",
                                                        "SUMMARY:Planning"}));
  CHECK(object.uid == "event-1@example.com");
  CHECK(object.component == "VEVENT");
  CHECK(object.summary == "Planning");
  CHECK_FALSE(object.recurring);
  CHECK(dav::parse_calendar_object(kWeekly).recurring);
}

TEST_CASE("a todo and a journal are calendar object resources too") {
  const auto todo = dav::parse_calendar_object(
      ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VTODO", "UID:todo-1", "DTSTAMP:20260101T000000Z",
           "DUE:20260110T120000Z", "SUMMARY:Taxes", "END:VTODO", "END:VCALENDAR"}));
  CHECK(todo.component == "VTODO");
  CHECK(todo.summary == "Taxes");
  const auto journal = dav::parse_calendar_object(
      ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VJOURNAL", "UID:j-1", "DTSTAMP:20260101T000000Z",
           "DTSTART;VALUE=DATE:20260110", "END:VJOURNAL", "END:VCALENDAR"}));
  CHECK(journal.component == "VJOURNAL");
}

TEST_CASE("an event without UID is not valid calendar data") {
  CHECK(invalid_code(event({"DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z"})) == "valid-calendar-data");
}

TEST_CASE("components with two different UIDs are rejected, overrides of one UID are not") {
  const std::string two_uids =
      ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VEVENT", "UID:a", "DTSTAMP:20260101T000000Z",
           "DTSTART:20260105T100000Z", "END:VEVENT", "BEGIN:VEVENT", "UID:b", "DTSTAMP:20260101T000000Z",
           "DTSTART:20260106T100000Z", "END:VEVENT", "END:VCALENDAR"});
  CHECK(invalid_code(two_uids) == "valid-calendar-data");

  const std::string two_masters =
      ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VEVENT", "UID:a", "DTSTAMP:20260101T000000Z",
           "DTSTART:20260105T100000Z", "END:VEVENT", "BEGIN:VEVENT", "UID:a", "DTSTAMP:20260101T000000Z",
           "DTSTART:20260106T100000Z", "END:VEVENT", "END:VCALENDAR"});
  CHECK(invalid_code(two_masters) == "valid-calendar-data");

  const std::string with_override =
      ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VEVENT", "UID:a", "DTSTAMP:20260101T000000Z",
           "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z", "RRULE:FREQ=WEEKLY;COUNT=4", "END:VEVENT",
           "BEGIN:VEVENT", "UID:a", "DTSTAMP:20260101T000000Z", "RECURRENCE-ID:20260112T100000Z",
           "DTSTART:20260113T150000Z", "DTEND:20260113T160000Z", "END:VEVENT", "END:VCALENDAR"});
  const auto object = dav::parse_calendar_object(with_override);
  CHECK(object.uid == "a");
  CHECK(object.recurring);
  // The override moves the second instance from Monday to Tuesday afternoon.
  CHECK_FALSE(overlaps(with_override, "20260112T000000Z", "20260113T000000Z"));
  CHECK(overlaps(with_override, "20260113T150000Z", "20260113T153000Z"));
  CHECK(overlaps(with_override, "20260119T100000Z", "20260119T103000Z"));
}

TEST_CASE("METHOD is not allowed in a calendar object resource") {
  const std::string with_method =
      ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "METHOD:REQUEST", "BEGIN:VEVENT", "UID:a",
           "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "END:VEVENT", "END:VCALENDAR"});
  CHECK(invalid_code(with_method) == "valid-calendar-data");
}

TEST_CASE("garbage, truncated and mixed calendar data is rejected") {
  CHECK(invalid_code("") == "valid-calendar-data");
  CHECK(invalid_code("hello world") == "valid-calendar-data");
  std::string with_nul = kWeekly;
  with_nul.insert(with_nul.find("SUMMARY"), 1, '\0');
  CHECK(invalid_code(with_nul) == "valid-calendar-data");
  CHECK(invalid_code("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\n") == "valid-calendar-data");
  CHECK(invalid_code(ics({"BEGIN:VCALENDAR", "PRODID:-//t//EN", "BEGIN:VEVENT", "UID:a", "DTSTAMP:20260101T000000Z",
                          "DTSTART:20260105T100000Z", "END:VEVENT", "END:VCALENDAR"})) == "valid-calendar-data");
  CHECK(invalid_code(event({"UID:a", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z",
                            "RRULE:FREQ=FORTNIGHTLY"})) == "valid-calendar-data");
  CHECK(invalid_code(event({"UID:a", "DTSTAMP:20260101T000000Z", "DTSTART:garbage"})) == "valid-calendar-data");
  CHECK(invalid_code(ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VEVENT", "UID:a",
                          "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "END:VEVENT", "BEGIN:VTODO", "UID:a",
                          "DTSTAMP:20260101T000000Z", "END:VTODO", "END:VCALENDAR"})) == "valid-calendar-data");
  CHECK(invalid_code(ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "END:VCALENDAR"})) ==
        "valid-calendar-data");
  CHECK(invalid_code(event({"UID:a", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z",
                            "DURATION:PT1H"})) == "valid-calendar-data");
  CHECK_FALSE(dav::overlaps_time_range("hello world", std::nullopt, std::nullopt));
}

TEST_CASE("a weekly event is found five weeks later but not before DTSTART nor after UNTIL") {
  CHECK(overlaps(kWeekly, "20260105T100000Z", "20260105T103000Z"));
  CHECK(overlaps(kWeekly, "20260209T000000Z", "20260210T000000Z"));  // five weeks on
  CHECK(overlaps(kWeekly, "20260302T103000Z", "20260302T120000Z"));  // the last one, in progress
  CHECK_FALSE(overlaps(kWeekly, "20260210T000000Z", "20260216T000000Z"));  // between instances
  CHECK_FALSE(overlaps(kWeekly, "20251229T000000Z", "20260105T100000Z"));  // the range ends as it starts
  CHECK_FALSE(overlaps(kWeekly, "20260309T000000Z", "20260310T000000Z"));  // after UNTIL
  CHECK(dav::overlaps_time_range(kWeekly, dav::parse_ical_utc("20260223T000000Z"), std::nullopt));
  CHECK_FALSE(dav::overlaps_time_range(kWeekly, dav::parse_ical_utc("20260303T000000Z"), std::nullopt));
  CHECK(dav::overlaps_time_range(kWeekly, std::nullopt, dav::parse_ical_utc("20260105T100001Z")));
}

TEST_CASE("a weekly event with COUNT ends after COUNT instances") {
  const auto three = event({"UID:count@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z",
                            "DURATION:PT1H", "RRULE:FREQ=WEEKLY;COUNT=3"});
  CHECK(overlaps(three, "20260119T100000Z", "20260119T103000Z"));
  CHECK_FALSE(overlaps(three, "20260126T000000Z", "20260127T000000Z"));
  CHECK_FALSE(overlaps(three, "20260209T000000Z", "20260210T000000Z"));
}

TEST_CASE("an EXDATE removes that instance only") {
  const auto object = event({"UID:ex@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z",
                             "DTEND:20260105T110000Z", "RRULE:FREQ=WEEKLY;COUNT=5", "EXDATE:20260119T100000Z"});
  CHECK(overlaps(object, "20260112T000000Z", "20260113T000000Z"));
  CHECK_FALSE(overlaps(object, "20260119T000000Z", "20260120T000000Z"));
  CHECK(overlaps(object, "20260126T000000Z", "20260127T000000Z"));
}

TEST_CASE("RDATE adds instances, with their own period when given") {
  const auto object = event({"UID:rd@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z",
                             "DTEND:20260105T110000Z", "RDATE:20260301T100000Z",
                             "RDATE;VALUE=PERIOD:20260401T100000Z/20260401T180000Z"});
  CHECK(overlaps(object, "20260301T103000Z", "20260301T104000Z"));
  CHECK_FALSE(overlaps(object, "20260301T110000Z", "20260301T120000Z"));
  CHECK(overlaps(object, "20260401T170000Z", "20260401T173000Z"));
  CHECK_FALSE(overlaps(object, "20260201T000000Z", "20260202T000000Z"));
}

TEST_CASE("an all-day event covers its date and nothing more") {
  const auto with_end = event({"UID:day@example.com", "DTSTAMP:20260101T000000Z", "DTSTART;VALUE=DATE:20260110",
                               "DTEND;VALUE=DATE:20260111"});
  CHECK(overlaps(with_end, "20260110T120000Z", "20260110T130000Z"));
  CHECK_FALSE(overlaps(with_end, "20260111T000000Z", "20260112T000000Z"));
  CHECK_FALSE(overlaps(with_end, "20260109T000000Z", "20260110T000000Z"));
  const auto without_end = event({"UID:day2@example.com", "DTSTAMP:20260101T000000Z", "DTSTART;VALUE=DATE:20260110"});
  CHECK(overlaps(without_end, "20260110T235900Z", "20260111T010000Z"));
  CHECK_FALSE(overlaps(without_end, "20260111T000000Z", "20260111T010000Z"));
  const auto yearly = event({"UID:birthday@example.com", "DTSTAMP:20260101T000000Z", "DTSTART;VALUE=DATE:19900315",
                             "RRULE:FREQ=YEARLY"});
  CHECK(overlaps(yearly, "20260315T120000Z", "20260315T130000Z"));
  CHECK_FALSE(overlaps(yearly, "20260316T000000Z", "20260317T000000Z"));
}

TEST_CASE("TZID Europe/Berlin times are converted with daylight saving time") {
  // 10:00 in Berlin is 09:00Z in January (CET) and 08:00Z in July (CEST).
  const auto winter = event({"UID:berlin@example.com", "DTSTAMP:20260101T000000Z",
                             "DTSTART;TZID=Europe/Berlin:20260105T100000", "DTEND;TZID=Europe/Berlin:20260105T110000"});
  CHECK(overlaps(winter, "20260105T083000Z", "20260105T091500Z"));
  CHECK_FALSE(overlaps(winter, "20260105T080000Z", "20260105T090000Z"));
  CHECK_FALSE(overlaps(winter, "20260105T100000Z", "20260105T103000Z"));

  const auto weekly = event({"UID:berlin-weekly@example.com", "DTSTAMP:20260101T000000Z",
                             "DTSTART;TZID=Europe/Berlin:20260302T100000", "DURATION:PT30M",
                             "RRULE:FREQ=WEEKLY;UNTIL=20260430T000000Z"});
  CHECK(overlaps(weekly, "20260302T090000Z", "20260302T091000Z"));
  CHECK(overlaps(weekly, "20260406T080000Z", "20260406T081000Z"));  // after the switch on 29 March
  CHECK_FALSE(overlaps(weekly, "20260406T090000Z", "20260406T091000Z"));

  const auto prefixed = event({"UID:moz@example.com", "DTSTAMP:20260101T000000Z",
                               "DTSTART;TZID=/mozilla.org/20050126_1/Europe/Berlin:20260705T100000",
                               "DTEND;TZID=/mozilla.org/20050126_1/Europe/Berlin:20260705T110000"});
  CHECK(overlaps(prefixed, "20260705T080000Z", "20260705T081000Z"));
  CHECK_FALSE(overlaps(prefixed, "20260705T090000Z", "20260705T091000Z"));
}

TEST_CASE("an embedded VTIMEZONE defines a TZID that is no Olson name") {
  const auto object = ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VTIMEZONE",
                           "TZID:Office Time", "BEGIN:STANDARD", "DTSTART:19700101T000000", "TZOFFSETFROM:+0300",
                           "TZOFFSETTO:+0300", "TZNAME:OT", "END:STANDARD", "END:VTIMEZONE", "BEGIN:VEVENT",
                           "UID:office", "DTSTAMP:20260101T000000Z", "DTSTART;TZID=Office Time:20260105T100000",
                           "DURATION:PT1H", "END:VEVENT", "END:VCALENDAR"});
  CHECK(dav::parse_calendar_object(object).uid == "office");
  CHECK(overlaps(object, "20260105T070000Z", "20260105T071000Z"));
  CHECK_FALSE(overlaps(object, "20260105T100000Z", "20260105T110000Z"));
}

TEST_CASE("an event without duration is an instant that a range must contain") {
  const auto instant = event({"UID:i@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z"});
  CHECK(overlaps(instant, "20260105T100000Z", "20260105T100001Z"));
  CHECK_FALSE(overlaps(instant, "20260105T090000Z", "20260105T100000Z"));
  CHECK_FALSE(overlaps(instant, "20260105T100001Z", "20260105T110000Z"));
}

TEST_CASE("a todo with only DUE matches ranges that reach the due time") {
  const auto todo = ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VTODO", "UID:todo-1",
                         "DTSTAMP:20260101T000000Z", "DUE:20260110T120000Z", "END:VTODO", "END:VCALENDAR"});
  CHECK(overlaps(todo, "20260110T000000Z", "20260110T120000Z"));
  CHECK_FALSE(overlaps(todo, "20260110T120000Z", "20260111T000000Z"));
  const auto undated = ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VTODO", "UID:todo-2",
                            "DTSTAMP:20260101T000000Z", "END:VTODO", "END:VCALENDAR"});
  CHECK(overlaps(undated, "20300101T000000Z", "20300102T000000Z"));
}

TEST_CASE("an unbounded secondly rule stops after the range end") {
  const auto object = event({"UID:s@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z",
                             "RRULE:FREQ=SECONDLY"});
  CHECK(overlaps(object, "20260105T100500Z", "20260105T100501Z"));
  CHECK_FALSE(overlaps(object, "20260101T000000Z", "20260105T100000Z"));
}

TEST_CASE("time-range attributes must be UTC date-times") {
  CHECK(dav::parse_ical_utc("19700101T000000Z") == 0);
  CHECK(dav::parse_ical_utc("20260105T000000Z") == 1767571200);
  CHECK(dav::parse_ical_utc("20240229T235959Z") == 1709251199);
  CHECK(dav::format_ical_utc(1767571200) == "20260105T000000Z");
  for (const char* bad : {"20260105T000000", "20260105", "2026-01-05T00:00:00Z", "20261305T000000Z",
                          "20250229T000000Z", "20260105T240000Z", "2026010XT000000Z", ""}) {
    INFO(bad);
    try {
      dav::parse_ical_utc(bad);
      FAIL("accepted");
    } catch (const coop::Error& error) {
      CHECK(error.code() == "bad_time_range");
      CHECK(error.status() == 400);
    }
  }
}

TEST_CASE("free-busy lists each instance of a recurring event, clipped and merged") {
  const auto report = dav::free_busy({kWeekly}, dav::parse_ical_utc("20260112T103000Z"), dav::parse_ical_utc("20260127T000000Z"));
  CHECK(report.find("BEGIN:VCALENDAR\r\n") == 0);
  CHECK(count_of(report, "BEGIN:VFREEBUSY\r\n") == 1);
  CHECK(report.find("DTSTART:20260112T103000Z\r\nDTEND:20260127T000000Z\r\n") != std::string::npos);
  CHECK(count_of(report, "\r\nFREEBUSY") == 3);
  CHECK(report.find("FREEBUSY:20260112T103000Z/20260112T110000Z\r\n") != std::string::npos);
  CHECK(report.find("FREEBUSY:20260119T100000Z/20260119T110000Z\r\n") != std::string::npos);
  CHECK(report.find("FREEBUSY:20260126T100000Z/20260126T110000Z\r\n") != std::string::npos);
  CHECK(report.find("END:VFREEBUSY\r\nEND:VCALENDAR\r\n") != std::string::npos);
}

TEST_CASE("free-busy skips transparent and cancelled events and marks tentative ones") {
  const auto overlapping = event({"UID:o@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T103000Z",
                                  "DTEND:20260105T120000Z"});
  const auto transparent = event({"UID:t@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260106T100000Z",
                                  "DTEND:20260106T110000Z", "TRANSP:TRANSPARENT"});
  const auto cancelled = event({"UID:c@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260107T100000Z",
                                "DTEND:20260107T110000Z", "STATUS:CANCELLED"});
  const auto tentative = event({"UID:p@example.com", "DTSTAMP:20260101T000000Z", "DTSTART:20260108T100000Z",
                                "DTEND:20260108T110000Z", "STATUS:TENTATIVE"});
  const auto report = dav::free_busy({kWeekly, overlapping, transparent, cancelled, tentative, "not ics"},
                                     dav::parse_ical_utc("20260105T000000Z"), dav::parse_ical_utc("20260109T000000Z"));
  CHECK(count_of(report, "\r\nFREEBUSY") == 2);
  CHECK(report.find("FREEBUSY:20260105T100000Z/20260105T120000Z\r\n") != std::string::npos);
  CHECK(report.find("FREEBUSY;FBTYPE=BUSY-TENTATIVE:20260108T100000Z/20260108T110000Z\r\n") != std::string::npos);
}

TEST_CASE("instance bounds span every instance of a bounded recurrence, with a day's slack") {
  const std::string weekly =
      "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:w@t\r\nDTSTAMP:20260101T000000Z\r\n"
      "DTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
  const auto bounds = coop::dav::instance_bounds(weekly);
  REQUIRE(bounds);
  CHECK(bounds->first_start == coop::dav::parse_ical_utc("20260302T090000Z") - 86400);
  // The tenth Monday: 2026-05-04, 10:00 end.
  CHECK(bounds->last_end == coop::dav::parse_ical_utc("20260504T100000Z") + 86400);
  std::string forever = weekly;
  forever.replace(forever.find(";COUNT=10"), 9, "");
  CHECK_FALSE(coop::dav::instance_bounds(forever));
  CHECK_FALSE(coop::dav::instance_bounds("not a calendar"));
}

namespace {

dav::CompFilter vcalendar(std::vector<dav::CompFilter> comps, std::vector<dav::PropFilter> props = {}) {
  dav::CompFilter f;
  f.name = "VCALENDAR";
  f.comps = std::move(comps);
  f.props = std::move(props);
  return f;
}

dav::CompFilter component(const char* name, std::vector<dav::PropFilter> props = {}, std::vector<dav::CompFilter> comps = {}) {
  dav::CompFilter f;
  f.name = name;
  f.props = std::move(props);
  f.comps = std::move(comps);
  return f;
}

dav::PropFilter text(const char* name, const char* needle, bool negate = false, bool octet = false) {
  dav::PropFilter p;
  p.name = name;
  p.text_match = dav::CalendarTextMatch{needle, octet, negate};
  return p;
}

}  // namespace

TEST_CASE("calendar-query filters: prop-filter, text-match, param-filter, is-not-defined (RFC 4791 9.7)") {
  const auto meeting = event({"UID:m@test", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z",
                              "SUMMARY:Budget Meeting", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.org",
                              "ATTENDEE;PARTSTAT=DECLINED:mailto:carol@example.org"});
  CHECK(dav::matches_filter(meeting, vcalendar({component("VEVENT", {text("SUMMARY", "budget")})})));
  CHECK_FALSE(dav::matches_filter(meeting, vcalendar({component("VEVENT", {text("SUMMARY", "budget", false, true)})})));  // i;octet
  CHECK_FALSE(dav::matches_filter(meeting, vcalendar({component("VEVENT", {text("SUMMARY", "budget", true)})})));
  CHECK_FALSE(dav::matches_filter(meeting, vcalendar({component("VTODO")})));
  dav::PropFilter missing;
  missing.name = "CATEGORIES";
  missing.is_not_defined = true;
  CHECK(dav::matches_filter(meeting, vcalendar({component("VEVENT", {missing})})));
  missing.name = "summary";  // names compare case-insensitively
  CHECK_FALSE(dav::matches_filter(meeting, vcalendar({component("VEVENT", {missing})})));
  // An ATTENDEE whose PARTSTAT is DECLINED and who is carol: one property must meet both.
  auto attendee = text("ATTENDEE", "carol");
  dav::ParamFilter declined;
  declined.name = "PARTSTAT";
  declined.text_match = dav::CalendarTextMatch{"DECLINED", false, false};
  attendee.params = {declined};
  CHECK(dav::matches_filter(meeting, vcalendar({component("VEVENT", {attendee})})));
  attendee.text_match->text = "bob";
  CHECK_FALSE(dav::matches_filter(meeting, vcalendar({component("VEVENT", {attendee})})));
  dav::CompFilter not_event = component("VEVENT");
  not_event.is_not_defined = true;
  CHECK_FALSE(dav::matches_filter(meeting, vcalendar({not_event})));
}

TEST_CASE("a VALARM time-range tests each instance's trigger (RFC 4791 9.9)") {
  const auto weekly = ics({"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//coop//test//EN", "BEGIN:VEVENT", "UID:w@test",
                           "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z", "RRULE:FREQ=WEEKLY",
                           "BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:soon", "TRIGGER:-PT15M", "END:VALARM", "END:VEVENT",
                           "END:VCALENDAR"});
  auto alarm_in = [&](const char* start, const char* end) {
    dav::CompFilter alarm = component("VALARM");
    alarm.time_range = dav::CalendarTimeRange{start, end};
    return dav::matches_filter(weekly, vcalendar({component("VEVENT", {}, {alarm})}));
  };
  CHECK(alarm_in("20260202T094000Z", "20260202T095000Z"));   // the fifth Monday's alarm at 09:45
  CHECK_FALSE(alarm_in("20260202T095000Z", "20260202T110000Z"));  // the event itself, not its alarm
  CHECK_FALSE(alarm_in("20260203T000000Z", "20260208T000000Z"));
}

TEST_CASE("expand gives each instance in the range as its own component; limit-recurrence-set keeps the master") {
  const auto weekly = event({"UID:w@test", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z",
                             "RRULE:FREQ=WEEKLY;COUNT=10", "SUMMARY:Weekly"});
  const auto expanded = dav::expand_instances(weekly, dav::parse_ical_utc("20260110T000000Z"), dav::parse_ical_utc("20260125T000000Z"));
  CHECK(expanded.find("RRULE") == std::string::npos);
  CHECK(expanded.find("RECURRENCE-ID:20260112T100000Z") != std::string::npos);
  CHECK(expanded.find("RECURRENCE-ID:20260119T100000Z") != std::string::npos);
  CHECK(expanded.find("DTSTART:20260119T100000Z") != std::string::npos);
  CHECK(expanded.find("20260105T100000Z") == std::string::npos);
  CHECK(expanded.find("20260126T100000Z") == std::string::npos);
  const auto limited = dav::limit_recurrence_set(weekly, dav::parse_ical_utc("20260110T000000Z"), dav::parse_ical_utc("20260125T000000Z"));
  CHECK(limited.find("RRULE:FREQ=WEEKLY;COUNT=10") != std::string::npos);
}

TEST_CASE("a daily series from 1990 is still found in 2026, and not between its instances") {
  const auto daily = event({"UID:d@test", "DTSTAMP:20260101T000000Z", "DTSTART:19900101T080000Z", "DTEND:19900101T083000Z",
                            "RRULE:FREQ=DAILY"});
  CHECK(overlaps(daily, "20261207T000000Z", "20261208T000000Z"));
  CHECK(overlaps(daily, "20261207T081000Z", "20261207T082000Z"));
  CHECK_FALSE(overlaps(daily, "20261207T083000Z", "20261207T090000Z"));
}

