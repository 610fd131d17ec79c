// iTIP messages and stored copies for CalDAV scheduling, on libical.
#include "workers/dav/scheduling.h"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <set>

#include "common/base64.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/text.h"
#include "workers/dav/ical_component.h"

namespace coop::dav {

namespace {

using ical::ComponentPtr;

constexpr const char* kProductId = "-//coop//coop-dav//EN";

std::string param(icalproperty* p, const char* name) {
  char* value = icalproperty_get_parameter_as_string_r(p, name);
  std::string out = value ? value : "";
  std::free(value);
  return out;
}

std::string value_of(icalproperty* p) {
  char* value = icalproperty_get_value_as_string_r(p);
  std::string out = value ? value : "";
  std::free(value);
  return out;
}

std::string upper(std::string text) {
  for (auto& ch : text)
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  return text;
}

std::string trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

// A DATE-TIME property in unix seconds: UTC as it is, a TZID from libical's zones, floating as UTC.
int64_t unix_of(icalproperty* p, icaltimetype t) {
  if (!icaltime_is_utc(t) && !t.is_date) {
    icalparameter* tzid = icalproperty_get_first_parameter(p, ICAL_TZID_PARAMETER);
    icaltimezone* zone = tzid ? icaltimezone_get_builtin_timezone_from_tzid(icalparameter_get_tzid(tzid)) : nullptr;
    if (zone) icaltimezone_convert_time(&t, zone, icaltimezone_get_utc_timezone());
  }
  t.zone = nullptr;
  return static_cast<int64_t>(icaltime_as_timet_with_zone(t, icaltimezone_get_utc_timezone()));
}

std::string line_of(icalproperty* p) {
  char* text = icalproperty_as_ical_string_r(p);
  std::string out = text ? text : "";
  std::free(text);
  return out;
}

bool is_scheduled_kind(icalcomponent_kind kind) {
  return kind == ICAL_VEVENT_COMPONENT || kind == ICAL_VTODO_COMPONENT || kind == ICAL_VJOURNAL_COMPONENT ||
         kind == ICAL_VFREEBUSY_COMPONENT;
}

std::vector<icalcomponent*> components_of(icalcomponent* root) {
  std::vector<icalcomponent*> out;
  for (icalcomponent* c = icalcomponent_get_first_component(root, ICAL_ANY_COMPONENT); c;
       c = icalcomponent_get_next_component(root, ICAL_ANY_COMPONENT))
    if (is_scheduled_kind(icalcomponent_isa(c))) out.push_back(c);
  return out;
}

std::vector<icalproperty*> properties_of(icalcomponent* c, icalproperty_kind kind) {
  std::vector<icalproperty*> out;
  for (icalproperty* p = icalcomponent_get_first_property(c, kind); p; p = icalcomponent_get_next_property(c, kind))
    out.push_back(p);
  return out;
}

void remove_properties(icalcomponent* c, icalproperty_kind kind) {
  for (icalproperty* p : properties_of(c, kind)) {
    icalcomponent_remove_property(c, p);
    icalproperty_free(p);
  }
}

// The key a component of a recurring set is known by: its RECURRENCE-ID, empty for the master.
std::string instance_key(icalcomponent* c) {
  icalproperty* rid = icalcomponent_get_first_property(c, ICAL_RECURRENCEID_PROPERTY);
  return rid ? value_of(rid) : std::string();
}

std::map<std::string, icalcomponent*> by_instance(icalcomponent* root) {
  std::map<std::string, icalcomponent*> out;
  for (icalcomponent* c : components_of(root)) out.emplace(instance_key(c), c);
  return out;
}

icalproperty* attendee_in(icalcomponent* c, const std::string& address) {
  for (icalproperty* p : properties_of(c, ICAL_ATTENDEE_PROPERTY)) {
    const char* value = icalproperty_get_attendee(p);
    if (value && calendar_address(value) == address) return p;
  }
  return nullptr;
}

std::string organizer_of(icalcomponent* c) {
  icalproperty* p = icalcomponent_get_first_property(c, ICAL_ORGANIZER_PROPERTY);
  const char* value = p ? icalproperty_get_organizer(p) : nullptr;
  return value ? calendar_address(value) : std::string();
}

void strip_server_parameters(icalcomponent* root) {
  for (icalcomponent* c : components_of(root))
    for (auto kind : {ICAL_ATTENDEE_PROPERTY, ICAL_ORGANIZER_PROPERTY})
      for (icalproperty* p : properties_of(c, kind)) {
        icalproperty_remove_parameter_by_name(p, "SCHEDULE-STATUS");
        icalproperty_remove_parameter_by_name(p, "SCHEDULE-FORCE-SEND");
      }
}

void set_method(icalcomponent* root, icalproperty_method method) {
  remove_properties(root, ICAL_METHOD_PROPERTY);
  icalcomponent_add_property(root, icalproperty_new_method(method));
}

void set_status_cancelled(icalcomponent* c) {
  remove_properties(c, ICAL_STATUS_PROPERTY);
  icalcomponent_add_property(c, icalproperty_new_status(ICAL_STATUS_CANCELLED));
}

void set_dtstamp_now(icalcomponent* c) {
  remove_properties(c, ICAL_DTSTAMP_PROPERTY);
  icalcomponent_add_property(
      c, icalproperty_new_dtstamp(icaltime_current_time_with_zone(icaltimezone_get_utc_timezone())));
}

ComponentPtr parse_or_throw(std::string_view ics) {
  auto root = ical::parse_calendar(ics);
  if (!root) throw Error("valid-calendar-data", "not iCalendar data", 403);
  return root;
}

// The properties that make an instance happen when and where it does.
std::string timing_signature(icalcomponent* c) {
  std::string out;
  for (auto kind : {ICAL_DTSTART_PROPERTY, ICAL_DTEND_PROPERTY, ICAL_DURATION_PROPERTY, ICAL_DUE_PROPERTY, ICAL_RRULE_PROPERTY,
                    ICAL_RDATE_PROPERTY, ICAL_EXDATE_PROPERTY, ICAL_LOCATION_PROPERTY})
    for (icalproperty* p : properties_of(c, kind)) out += line_of(p);
  return out;
}

std::string base64_lines(std::string_view bytes) {
  const auto encoded = base64_encode(bytes);
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); i += 76) out += encoded.substr(i, 76) + "\r\n";
  return out;
}

// RFC 2047 encoded-word for a header, when the text is not plain ASCII.
std::string header_text(const std::string& text) {
  const bool ascii = std::all_of(text.begin(), text.end(), [](unsigned char ch) { return ch >= 0x20 && ch < 0x7f; });
  if (ascii) return text;
  std::string clean;
  for (char ch : text) clean += (ch == '\r' || ch == '\n') ? ' ' : ch;
  return "=?UTF-8?B?" + base64_encode(clean) + "?=";
}

std::string when_text(int64_t start) {
  if (start <= 0) return "";
  const std::time_t t = static_cast<std::time_t>(start);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%a %d %b %Y %H:%M UTC", &tm);
  return buffer;
}

}  // namespace

std::string calendar_address(std::string_view uri) {
  std::string out = ascii_lower(trimmed(uri));
  if (out.rfind("mailto:", 0) == 0) out.erase(0, 7);
  return out;
}

std::optional<SchedulingObject> scheduling_object(std::string_view ics) {
  const auto root = ical::parse_calendar(ics);
  if (!root) return std::nullopt;
  SchedulingObject out;
  if (icalproperty* m = icalcomponent_get_first_property(root.get(), ICAL_METHOD_PROPERTY))
    if (const char* text = icalproperty_method_to_string(icalproperty_get_method(m))) out.method = text;
  std::set<std::string> seen;
  icalcomponent* master = nullptr;
  for (icalcomponent* c : components_of(root.get())) {
    if (out.uid.empty())
      if (const char* uid = icalcomponent_get_uid(c)) out.uid = uid;
    if (out.component.empty()) out.component = icalcomponent_kind_to_string(icalcomponent_isa(c));
    if (!master || instance_key(c).empty()) master = c;  // the master wins over overrides
    if (out.organizer.empty()) {
      out.organizer = organizer_of(c);
      if (icalproperty* o = icalcomponent_get_first_property(c, ICAL_ORGANIZER_PROPERTY)) {
        const auto agent = upper(param(o, "SCHEDULE-AGENT"));
        out.organizer_server_schedules = agent.empty() || agent == "SERVER";
      }
    }
    out.sequence = std::max<int64_t>(out.sequence, icalcomponent_get_sequence(c));
    for (icalproperty* p : properties_of(c, ICAL_ATTENDEE_PROPERTY)) {
      const char* value = icalproperty_get_attendee(p);
      if (!value) continue;
      Attendee a;
      a.address = calendar_address(value);
      if (a.address.empty() || !seen.insert(a.address).second) continue;
      a.partstat = upper(param(p, "PARTSTAT"));
      if (a.partstat.empty()) a.partstat = "NEEDS-ACTION";
      const auto agent = upper(param(p, "SCHEDULE-AGENT"));
      a.server_schedules = agent.empty() || agent == "SERVER";
      out.attendees.push_back(std::move(a));
    }
  }
  if (master) {
    if (const char* summary = icalcomponent_get_summary(master)) out.summary = summary;
    if (icalproperty* dtstart = icalcomponent_get_first_property(master, ICAL_DTSTART_PROPERTY)) {
      const auto t = icalproperty_get_dtstart(dtstart);
      if (!icaltime_is_null_time(t)) out.start = unix_of(dtstart, t);
    }
  }
  if (out.organizer.empty() || out.attendees.empty()) return std::nullopt;
  return out;
}

bool significant_change(std::string_view before, std::string_view after) {
  const auto a = ical::parse_calendar(before), b = ical::parse_calendar(after);
  if (!a || !b) return true;
  const auto old_set = by_instance(a.get()), new_set = by_instance(b.get());
  if (old_set.size() != new_set.size()) return true;
  for (const auto& [key, c] : old_set) {
    const auto other = new_set.find(key);
    if (other == new_set.end() || timing_signature(c) != timing_signature(other->second)) return true;
  }
  return false;
}

std::string reset_participation(std::string_view ics) {
  auto root = parse_or_throw(ics);
  for (icalcomponent* c : components_of(root.get())) {
    const auto organizer = organizer_of(c);
    for (icalproperty* p : properties_of(c, ICAL_ATTENDEE_PROPERTY)) {
      const char* value = icalproperty_get_attendee(p);
      if (!value || calendar_address(value) == organizer) continue;
      icalproperty_set_parameter_from_string(p, "PARTSTAT", "NEEDS-ACTION");
      icalproperty_set_parameter_from_string(p, "RSVP", "TRUE");
    }
  }
  return ical::serialize(root.get());
}

std::string with_schedule_status(std::string_view ics, const std::map<std::string, std::string>& status) {
  auto root = parse_or_throw(ics);
  for (icalcomponent* c : components_of(root.get()))
    for (icalproperty* p : properties_of(c, ICAL_ATTENDEE_PROPERTY)) {
      const char* value = icalproperty_get_attendee(p);
      if (!value) continue;
      const auto it = status.find(calendar_address(value));
      if (it == status.end()) continue;
      icalproperty_remove_parameter_by_name(p, "SCHEDULE-FORCE-SEND");
      icalproperty_set_parameter_from_string(p, "SCHEDULE-STATUS", it->second.c_str());
    }
  return ical::serialize(root.get());
}

std::string itip_request(std::string_view ics) {
  auto root = parse_or_throw(ics);
  strip_server_parameters(root.get());
  set_method(root.get(), ICAL_METHOD_REQUEST);
  return ical::serialize(root.get());
}

std::string itip_cancel(std::string_view ics, const std::vector<std::string>& attendees) {
  auto root = parse_or_throw(ics);
  strip_server_parameters(root.get());
  set_method(root.get(), ICAL_METHOD_CANCEL);
  for (icalcomponent* c : components_of(root.get())) {
    set_status_cancelled(c);
    set_dtstamp_now(c);
    if (attendees.empty()) continue;
    for (icalproperty* p : properties_of(c, ICAL_ATTENDEE_PROPERTY)) {
      const char* value = icalproperty_get_attendee(p);
      if (value && std::find(attendees.begin(), attendees.end(), calendar_address(value)) != attendees.end()) continue;
      icalcomponent_remove_property(c, p);
      icalproperty_free(p);
    }
  }
  return ical::serialize(root.get());
}

std::string itip_reply(std::string_view ics, const std::string& attendee, std::string_view partstat) {
  auto root = parse_or_throw(ics);
  ComponentPtr out(icalcomponent_new(ICAL_VCALENDAR_COMPONENT));
  icalcomponent_add_property(out.get(), icalproperty_new_prodid(kProductId));
  icalcomponent_add_property(out.get(), icalproperty_new_version("2.0"));
  icalcomponent_add_property(out.get(), icalproperty_new_method(ICAL_METHOD_REPLY));
  for (icalcomponent* tz = icalcomponent_get_first_component(root.get(), ICAL_VTIMEZONE_COMPONENT); tz;
       tz = icalcomponent_get_next_component(root.get(), ICAL_VTIMEZONE_COMPONENT))
    icalcomponent_add_component(out.get(), icalcomponent_new_clone(tz));
  for (icalcomponent* c : components_of(root.get())) {
    icalproperty* me = attendee_in(c, attendee);
    if (!me) continue;
    icalcomponent* reply = icalcomponent_new(icalcomponent_isa(c));
    for (auto kind : {ICAL_UID_PROPERTY, ICAL_RECURRENCEID_PROPERTY, ICAL_DTSTART_PROPERTY, ICAL_SEQUENCE_PROPERTY,
                      ICAL_ORGANIZER_PROPERTY, ICAL_SUMMARY_PROPERTY})
      if (icalproperty* p = icalcomponent_get_first_property(c, kind)) icalcomponent_add_property(reply, icalproperty_new_clone(p));
    icalproperty* line = icalproperty_new_clone(me);
    icalproperty_remove_parameter_by_name(line, "SCHEDULE-STATUS");
    icalproperty_remove_parameter_by_name(line, "SCHEDULE-FORCE-SEND");
    icalproperty_remove_parameter_by_name(line, "RSVP");
    if (!partstat.empty()) icalproperty_set_parameter_from_string(line, "PARTSTAT", std::string(partstat).c_str());
    icalcomponent_add_property(reply, line);
    set_dtstamp_now(reply);
    icalcomponent_add_component(out.get(), reply);
  }
  return ical::serialize(out.get());
}

std::string attendee_copy(std::string_view request, std::optional<std::string_view> previous, const std::string& attendee) {
  auto root = parse_or_throw(request);
  remove_properties(root.get(), ICAL_METHOD_PROPERTY);
  strip_server_parameters(root.get());
  if (!previous || significant_change(*previous, request)) return ical::serialize(root.get());
  const auto before = ical::parse_calendar(*previous);
  if (!before) return ical::serialize(root.get());
  const auto old_set = by_instance(before.get());
  for (icalcomponent* c : components_of(root.get())) {
    const auto it = old_set.find(instance_key(c));
    if (it == old_set.end()) continue;
    // The attendee's own answer stays, and so do the alarms they set.
    if (icalproperty* mine = attendee_in(it->second, attendee))
      if (icalproperty* theirs = attendee_in(c, attendee)) {
        const auto partstat = param(mine, "PARTSTAT");
        if (!partstat.empty()) icalproperty_set_parameter_from_string(theirs, "PARTSTAT", partstat.c_str());
      }
    while (icalcomponent* alarm = icalcomponent_get_first_component(c, ICAL_VALARM_COMPONENT)) {
      icalcomponent_remove_component(c, alarm);
      icalcomponent_free(alarm);
    }
    for (icalcomponent* alarm = icalcomponent_get_first_component(it->second, ICAL_VALARM_COMPONENT); alarm;
         alarm = icalcomponent_get_next_component(it->second, ICAL_VALARM_COMPONENT))
      icalcomponent_add_component(c, icalcomponent_new_clone(alarm));
  }
  return ical::serialize(root.get());
}

std::string cancelled_copy(std::string_view stored, std::string_view cancel) {
  auto root = parse_or_throw(stored);
  const auto message = ical::parse_calendar(cancel);
  int sequence = 0;
  std::set<std::string> instances;
  if (message)
    for (icalcomponent* c : components_of(message.get())) {
      sequence = std::max(sequence, icalcomponent_get_sequence(c));
      instances.insert(instance_key(c));
    }
  // RFC 5546 3.2.5: a CANCEL of the master (or of everything) cancels the whole object;
  // one naming instances cancels those.
  const bool whole = instances.empty() || instances.count("");
  for (icalcomponent* c : components_of(root.get())) {
    if (!whole && !instances.count(instance_key(c))) continue;
    set_status_cancelled(c);
    if (sequence > icalcomponent_get_sequence(c)) icalcomponent_set_sequence(c, sequence);
  }
  return ical::serialize(root.get());
}

std::string participation_of(std::string_view ics, const std::string& attendee) {
  const auto root = ical::parse_calendar(ics);
  if (!root) return {};
  const auto set = by_instance(root.get());
  if (set.empty()) return {};
  icalcomponent* c = set.count("") ? set.at("") : set.begin()->second;
  icalproperty* me = attendee_in(c, attendee);
  if (!me) return {};
  const auto partstat = upper(param(me, "PARTSTAT"));
  return partstat.empty() ? "NEEDS-ACTION" : partstat;
}

std::optional<std::string> apply_reply(std::string_view organizer_copy, std::string_view reply, const std::string& attendee) {
  auto root = ical::parse_calendar(organizer_copy);
  const auto message = ical::parse_calendar(reply);
  if (!root || !message) return std::nullopt;
  const auto stored = by_instance(root.get());
  bool changed = false;
  for (icalcomponent* answer : components_of(message.get())) {
    icalproperty* said = attendee_in(answer, attendee);
    if (!said) continue;
    const auto it = stored.find(instance_key(answer));
    // An answer for an instance the organizer never overrode applies to the series.
    icalcomponent* target = it != stored.end() ? it->second : (stored.count("") ? stored.at("") : nullptr);
    if (!target) continue;
    if (icalcomponent_get_sequence(answer) < icalcomponent_get_sequence(target)) continue;  // RFC 5546 2.1.5: out of date
    icalproperty* line = attendee_in(target, attendee);
    if (!line) continue;
    auto partstat = upper(param(said, "PARTSTAT"));
    if (partstat.empty()) partstat = "NEEDS-ACTION";
    if (upper(param(line, "PARTSTAT")) == partstat && param(line, "SCHEDULE-STATUS") == "2.0") continue;
    icalproperty_set_parameter_from_string(line, "PARTSTAT", partstat.c_str());
    icalproperty_remove_parameter_by_name(line, "RSVP");
    icalproperty_set_parameter_from_string(line, "SCHEDULE-STATUS", "2.0");
    changed = true;
  }
  if (!changed) return std::nullopt;
  return ical::serialize(root.get());
}

FreeBusyRequest parse_free_busy_request(std::string_view ics) {
  const auto root = ical::parse_calendar(ics);
  const auto refuse = [](const std::string& why) -> FreeBusyRequest { throw Error("valid-scheduling-message", why, 403); };
  if (!root) return refuse("not iCalendar data");
  icalproperty* method = icalcomponent_get_first_property(root.get(), ICAL_METHOD_PROPERTY);
  if (!method || icalproperty_get_method(method) != ICAL_METHOD_REQUEST) return refuse("an outbox takes METHOD:REQUEST");
  icalcomponent* fb = icalcomponent_get_first_component(root.get(), ICAL_VFREEBUSY_COMPONENT);
  if (!fb) return refuse("an outbox takes VFREEBUSY requests only (RFC 6638 5.1)");
  FreeBusyRequest out;
  if (const char* uid = icalcomponent_get_uid(fb)) out.uid = uid;
  out.organizer = organizer_of(fb);
  if (out.organizer.empty()) return refuse("VFREEBUSY without ORGANIZER");
  for (icalproperty* p : properties_of(fb, ICAL_ATTENDEE_PROPERTY))
    if (const char* value = icalproperty_get_attendee(p)) out.attendees.push_back(calendar_address(value));
  if (out.attendees.empty()) return refuse("VFREEBUSY without ATTENDEE");
  icalproperty* dtstart = icalcomponent_get_first_property(fb, ICAL_DTSTART_PROPERTY);
  icalproperty* dtend = icalcomponent_get_first_property(fb, ICAL_DTEND_PROPERTY);
  if (!dtstart || !dtend) return refuse("VFREEBUSY needs DTSTART and DTEND");
  out.start = unix_of(dtstart, icalproperty_get_dtstart(dtstart));
  out.end = unix_of(dtend, icalproperty_get_dtend(dtend));
  if (out.end <= out.start) return refuse("DTEND is not after DTSTART");
  return out;
}

std::string free_busy_reply(std::string_view free_busy_calendar, const FreeBusyRequest& request, const std::string& attendee) {
  auto root = parse_or_throw(free_busy_calendar);
  set_method(root.get(), ICAL_METHOD_REPLY);
  if (icalcomponent* fb = icalcomponent_get_first_component(root.get(), ICAL_VFREEBUSY_COMPONENT)) {
    if (!request.uid.empty()) icalcomponent_add_property(fb, icalproperty_new_uid(request.uid.c_str()));
    icalcomponent_add_property(fb, icalproperty_new_organizer(("mailto:" + request.organizer).c_str()));
    icalcomponent_add_property(fb, icalproperty_new_attendee(("mailto:" + attendee).c_str()));
  }
  return ical::serialize(root.get());
}

std::string imip_message(const ImipMail& mail, int64_t now) {
  const std::string boundary = "coop-imip-" + random_hex(12);
  std::string subject, text;
  const auto when = when_text(mail.start);
  const auto title = mail.summary.empty() ? std::string("(no title)") : mail.summary;
  if (mail.method == "REPLY") {
    subject = "Reply: " + title;
    text = (mail.from_name.empty() ? mail.from : mail.from_name) + " answered your invitation to \"" + title + "\".\r\n";
  } else if (mail.method == "CANCEL") {
    subject = "Cancelled: " + title + (when.empty() ? "" : " (" + when + ")");
    text = "\"" + title + "\"" + (when.empty() ? "" : " on " + when) + " has been cancelled.\r\n";
  } else {
    subject = "Invitation: " + title + (when.empty() ? "" : " (" + when + ")");
    text = (mail.from_name.empty() ? mail.from : mail.from_name) + " invites you to \"" + title + "\"" +
           (when.empty() ? "" : " on " + when) + ".\r\nYour calendar program can accept or decline it from the attached invitation.\r\n";
  }
  const std::time_t t = static_cast<std::time_t>(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  const auto at = mail.from.find('@');
  const std::string domain = at == std::string::npos ? "coop.invalid" : mail.from.substr(at + 1);
  std::string from = mail.from_name.empty() ? "<" + mail.from + ">" : header_text(mail.from_name) + " <" + mail.from + ">";
  std::string out;
  out += "From: " + from + "\r\n";
  out += "To: <" + mail.to + ">\r\n";
  out += "Subject: " + header_text(subject) + "\r\n";
  out += "Date: " + std::string(date) + "\r\n";
  out += "Message-ID: <" + random_hex(16) + "@" + domain + ">\r\n";
  out += "MIME-Version: 1.0\r\n";
  // RFC 6047 2.4: the iTIP method is also in the Content-Type of the calendar part.
  out += "Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n";
  out += "--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n";
  out += base64_lines(text);
  out += "--" + boundary + "\r\nContent-Type: text/calendar; charset=utf-8; method=" + mail.method +
         "\r\nContent-Transfer-Encoding: base64\r\n\r\n";
  out += base64_lines(mail.itip);
  out += "--" + boundary + "--\r\n";
  return out;
}

}  // namespace coop::dav
