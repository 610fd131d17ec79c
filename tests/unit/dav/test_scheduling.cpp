// iTIP messages and the copies they change (RFC 5546, RFC 6638), and the iMIP mail (RFC 6047).
#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>

#include "common/error.h"
#include "workers/dav/scheduling.h"

namespace dav = coop::dav;

namespace {

std::string event(std::initializer_list<const char*> body, const char* method = nullptr) {
  std::string out = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coop//test//EN\r\n";
  if (method) out += std::string("METHOD:") + method + "\r\n";
  out += "BEGIN:VEVENT\r\n";
  for (const char* line : body) out += std::string(line) + "\r\n";
  return out + "END:VEVENT\r\nEND:VCALENDAR\r\n";
}

const std::string kInvite = event({"UID:plan@x", "DTSTAMP:20260101T000000Z", "DTSTART:20270105T100000Z",
                                   "DTEND:20270105T110000Z", "SUMMARY:Planning", "ORGANIZER;CN=Alice:mailto:Alice@X.test",
                                   "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@x.test",
                                   "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@x.test",
                                   "ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:carol@y.test"});

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Content lines unfolded (RFC 5545 3.1), so a test can look for a parameter.
std::string unfolded(std::string text) {
  for (std::size_t at; (at = text.find("\r\n ")) != std::string::npos || (at = text.find("\n ")) != std::string::npos;)
    text.erase(at, text[at] == '\r' ? 3 : 2);
  return text;
}

}  // namespace

TEST_CASE("a scheduling object names its organizer and attendees once each", "[scheduling]") {
  const auto object = dav::scheduling_object(kInvite);
  REQUIRE(object);
  CHECK(object->uid == "plan@x");
  CHECK(object->organizer == "alice@x.test");
  REQUIRE(object->attendees.size() == 3);
  CHECK(object->attendees[1].address == "bob@x.test");
  CHECK(object->attendees[1].partstat == "NEEDS-ACTION");
  CHECK_FALSE(object->attendees[2].server_schedules);
  CHECK(object->summary == "Planning");
  CHECK(object->start == 1799143200);
  CHECK_FALSE(dav::scheduling_object(event({"UID:a", "DTSTART:20270105T100000Z", "ORGANIZER:mailto:a@x"})));
  CHECK_FALSE(dav::scheduling_object("not iCalendar"));
  CHECK(dav::calendar_address(" MAILTO:Bob@Example.ORG ") == "bob@example.org");
}

TEST_CASE("a reply carries one attendee and updates the organizer's copy", "[scheduling]") {
  const auto copy = event({"UID:plan@x", "DTSTAMP:20260101T000000Z", "DTSTART:20270105T100000Z", "SUMMARY:Planning",
                           "ORGANIZER:mailto:alice@x.test", "ATTENDEE;PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:bob@x.test",
                           "ATTENDEE:mailto:dave@x.test"});
  const auto reply = unfolded(dav::itip_reply(copy, "bob@x.test"));
  CHECK(has(reply, "METHOD:REPLY"));
  CHECK(has(reply, "PARTSTAT=ACCEPTED"));
  CHECK_FALSE(has(reply, "dave@x.test"));
  CHECK_FALSE(has(reply, "RSVP"));
  CHECK(has(unfolded(dav::itip_reply(copy, "bob@x.test", "DECLINED")), "PARTSTAT=DECLINED"));

  const auto updated = dav::apply_reply(kInvite, reply, "bob@x.test");
  REQUIRE(updated);
  const auto text = unfolded(*updated);
  CHECK(dav::participation_of(text, "bob@x.test") == "ACCEPTED");
  CHECK(has(text, "SCHEDULE-STATUS=2.0"));
  // The same answer again changes nothing; an answer from someone not invited neither.
  CHECK_FALSE(dav::apply_reply(*updated, reply, "bob@x.test"));
  CHECK_FALSE(dav::apply_reply(kInvite, reply, "mallory@x.test"));
  // RFC 5546 2.1.5: an answer to an older SEQUENCE is out of date.
  const auto newer = event({"UID:plan@x", "SEQUENCE:2", "DTSTART:20270105T100000Z", "ORGANIZER:mailto:alice@x.test",
                            "ATTENDEE:mailto:bob@x.test"});
  CHECK_FALSE(dav::apply_reply(newer, reply, "bob@x.test"));
}

TEST_CASE("requests, cancellations and the attendee's own copy", "[scheduling]") {
  const auto request = dav::itip_request(dav::with_schedule_status(kInvite, {{"bob@x.test", "1.2"}}));
  CHECK(has(request, "METHOD:REQUEST"));
  CHECK_FALSE(has(request, "SCHEDULE-STATUS"));
  CHECK(has(unfolded(dav::with_schedule_status(kInvite, {{"bob@x.test", "1.2"}})), "SCHEDULE-STATUS=1.2:mailto:bob@x.test"));

  // Bob's copy: no METHOD; his answer stays when nothing significant changes, and goes when
  // the time does.
  auto mine = dav::attendee_copy(request, std::nullopt, "bob@x.test");
  CHECK_FALSE(has(mine, "METHOD"));
  const auto answered = dav::apply_reply(kInvite, dav::itip_reply(kInvite, "bob@x.test", "TENTATIVE"), "bob@x.test");
  REQUIRE(answered);
  const auto summary_only = dav::itip_request(std::string(kInvite).replace(kInvite.find("Planning"), 8, "Plans"));
  CHECK(dav::participation_of(dav::attendee_copy(summary_only, *answered, "bob@x.test"), "bob@x.test") == "TENTATIVE");
  CHECK_FALSE(dav::significant_change(kInvite, summary_only));
  auto moved_text = std::string(kInvite);
  moved_text.replace(moved_text.find("20270105T100000Z"), 16, "20270106T100000Z");
  CHECK(dav::significant_change(kInvite, moved_text));
  CHECK(dav::participation_of(dav::attendee_copy(dav::itip_request(moved_text), *answered, "bob@x.test"), "bob@x.test") ==
        "NEEDS-ACTION");
  const auto reset = dav::reset_participation(*answered);
  CHECK(dav::participation_of(reset, "bob@x.test") == "NEEDS-ACTION");
  CHECK(dav::participation_of(reset, "alice@x.test") == "ACCEPTED");  // the organizer's own stays

  const auto cancel = dav::itip_cancel(kInvite, {"bob@x.test"});
  CHECK(has(cancel, "METHOD:CANCEL"));
  CHECK(has(cancel, "STATUS:CANCELLED"));
  CHECK_FALSE(has(cancel, "carol@y.test"));
  CHECK(has(dav::cancelled_copy(mine, cancel), "STATUS:CANCELLED"));
}

TEST_CASE("free-busy requests are checked and answered", "[scheduling]") {
  const std::string ask =
      "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb\r\n"
      "DTSTART:20270105T000000Z\r\nDTEND:20270106T000000Z\r\nORGANIZER:mailto:alice@x.test\r\n"
      "ATTENDEE:mailto:bob@x.test\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";
  const auto request = dav::parse_free_busy_request(ask);
  CHECK(request.organizer == "alice@x.test");
  CHECK(request.attendees == std::vector<std::string>{"bob@x.test"});
  CHECK(request.end - request.start == 86400);
  const auto code = [](const std::string& text) {
    try {
      dav::parse_free_busy_request(text);
    } catch (const coop::Error& e) {
      return e.code();
    }
    return std::string("accepted");
  };
  CHECK(code(kInvite) == "valid-scheduling-message");
  CHECK(code(std::string(ask).replace(ask.find("ORGANIZER"), 9, "X-ORG")) == "valid-scheduling-message");
  CHECK(code("garbage") == "valid-scheduling-message");
  const auto reply = dav::free_busy_reply(
      "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VFREEBUSY\r\nDTSTART:20270105T000000Z\r\n"
      "DTEND:20270106T000000Z\r\nFREEBUSY:20270105T090000Z/20270105T100000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n",
      request, "bob@x.test");
  CHECK(has(reply, "METHOD:REPLY"));
  CHECK(has(reply, "ATTENDEE:mailto:bob@x.test"));
  CHECK(has(reply, "UID:fb"));
}

TEST_CASE("the iMIP mail has a text part and the calendar with its method", "[scheduling]") {
  const auto mail = dav::imip_message({"alice@x.test", "Alice Liddell", "dave@y.test", "REQUEST", "Visite de la coopérative",
                                       1799143200, dav::itip_request(kInvite)},
                                      1799000000);
  CHECK(has(mail, "From: Alice Liddell <alice@x.test>\r\n"));
  CHECK(has(mail, "To: <dave@y.test>\r\n"));
  CHECK(has(mail, "Subject: =?UTF-8?B?"));
  CHECK(has(mail, "Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n"));
  CHECK(has(mail, "Message-ID: <"));
  CHECK(has(mail, "multipart/alternative"));
}

