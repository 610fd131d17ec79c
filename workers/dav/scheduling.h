// iTIP (RFC 5546) for CalDAV scheduling (RFC 6638) and iMIP (RFC 6047): what a scheduling
// object says about its organizer and attendees, the REQUEST, CANCEL and REPLY messages made
// from it, and how a received message changes a stored copy. Pure functions over iCalendar
// text, on libical; the handler decides who gets what.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::dav {

// "mailto:Bob@Example.org" -> "bob@example.org"; other URIs lower-cased as they are.
std::string calendar_address(std::string_view uri);

struct Attendee {
  std::string address;   // calendar_address() of the ATTENDEE value
  std::string partstat;  // as written, "NEEDS-ACTION" when absent (RFC 5545 3.2.12)
  bool server_schedules = true;  // SCHEDULE-AGENT absent or SERVER (RFC 6638 7.1)
};

// A scheduling object resource (RFC 6638 3.1): one with an ORGANIZER and at least one ATTENDEE.
struct SchedulingObject {
  std::string uid;
  std::string component;  // VEVENT or VTODO
  std::string method;     // an iTIP message's METHOD, empty for a stored object
  std::string organizer;  // calendar_address() of the ORGANIZER
  bool organizer_server_schedules = true;
  std::vector<Attendee> attendees;  // each address once, over every component
  int64_t sequence = 0;             // the highest SEQUENCE of the components
  std::string summary;
  int64_t start = 0;  // the master's DTSTART in unix seconds, 0 when unknown
};

// nullopt when the text is not iCalendar or has no ORGANIZER or no ATTENDEE.
std::optional<SchedulingObject> scheduling_object(std::string_view ics);

// Whether an update changes when, where or how often the object happens, which asks every
// attendee again: DTSTART, DTEND, DURATION, DUE, RRULE, RDATE, EXDATE, LOCATION or the set
// of overridden instances.
bool significant_change(std::string_view before, std::string_view after);

// The organizer's copy with every attendee but the organizer asked again (PARTSTAT=NEEDS-ACTION,
// RSVP=TRUE), after a significant change.
std::string reset_participation(std::string_view ics);

// The organizer's copy with SCHEDULE-STATUS (RFC 6638 7.3) set on the ATTENDEEs named in status.
std::string with_schedule_status(std::string_view ics, const std::map<std::string, std::string>& status);

// RFC 5546 3.2.2 REQUEST and 3.2.5 CANCEL from the organizer's copy: METHOD added, the
// server-only parameters (SCHEDULE-STATUS, SCHEDULE-FORCE-SEND) taken out. A CANCEL marks
// every component STATUS:CANCELLED and keeps only the attendees named (all when empty).
std::string itip_request(std::string_view ics);
std::string itip_cancel(std::string_view ics, const std::vector<std::string>& attendees = {});

// RFC 5546 3.2.3 REPLY from an attendee's copy: per component the UID, RECURRENCE-ID, DTSTART,
// SEQUENCE, ORGANIZER, SUMMARY and that one attendee's ATTENDEE line, with partstat when given.
std::string itip_reply(std::string_view ics, const std::string& attendee, std::string_view partstat = {});

// An attendee's copy of the object a REQUEST carries (METHOD taken out). When the attendee
// has a copy already and the organizer changed nothing significant, the attendee's own answer
// (their PARTSTAT) and alarms stay.
std::string attendee_copy(std::string_view request, std::optional<std::string_view> previous, const std::string& attendee);

// A stored copy after a CANCEL: every component STATUS:CANCELLED and SEQUENCE as the CANCEL's.
std::string cancelled_copy(std::string_view stored, std::string_view cancel);

// The attendee's PARTSTAT in the master (or first) component, empty when they are not invited.
std::string participation_of(std::string_view ics, const std::string& attendee);

// The organizer's copy with the PARTSTATs a REPLY from attendee carries, component by
// component (matched by RECURRENCE-ID); answers older than the component (a lower SEQUENCE)
// are ignored. nullopt when the reply changes nothing or the attendee is not invited.
std::optional<std::string> apply_reply(std::string_view organizer_copy, std::string_view reply, const std::string& attendee);

// RFC 6638 5.1: a free-busy request POSTed to an outbox: VFREEBUSY with METHOD:REQUEST,
// ORGANIZER, ATTENDEEs and the range.
struct FreeBusyRequest {
  std::string uid;
  std::string organizer;
  std::vector<std::string> attendees;
  int64_t start = 0, end = 0;
};
// Throws coop::Error("valid-scheduling-message", why, 403).
FreeBusyRequest parse_free_busy_request(std::string_view ics);

// RFC 5546 3.3.3 VFREEBUSY REPLY: free_busy_calendar (free_busy()'s output) with METHOD:REPLY,
// the request's UID and ORGANIZER and the attendee it describes.
std::string free_busy_reply(std::string_view free_busy_calendar, const FreeBusyRequest& request, const std::string& attendee);

// RFC 6047 iMIP: the mail that carries an iTIP message, multipart/alternative with a plain
// text part for people and text/calendar;method=... for their calendar, both base64.
struct ImipMail {
  std::string from, from_name, to;
  std::string method;  // REQUEST, CANCEL or REPLY
  std::string summary;
  int64_t start = 0;
  std::string itip;  // the iCalendar text
};
std::string imip_message(const ImipMail& mail, int64_t now);

}  // namespace coop::dav
