// CalDAV scheduling (RFC 6638) for coop-dav: who an address is, the schedule inbox and
// outbox of every member, and the iTIP messages (RFC 5546) that an organizer's or an
// attendee's change sends: into members' inboxes and calendars on this shard, by mail
// (iMIP, RFC 6047, through coop-mail's queue) to everyone else.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "workers/dav/store/dav_store.h"

namespace coop {
class Home;
}

namespace coop::dav {

// The schedule inbox's name in every calendar home; the outbox has no storage.
inline constexpr const char* kInboxName = "inbox";
inline constexpr const char* kOutboxName = "outbox";

class Scheduler {
 public:
  Scheduler(const Home& home, DavStore& store, std::string domain);
  ~Scheduler();

  // RFC 6638 2.4.1 calendar-user-address-set: every address the member has (coop-mail's
  // list: registered addresses, handle@ each hosted domain, aliases), the registered ones
  // first; without coop-mail, the registered ones and handle@domain.
  std::vector<std::string> addresses_of(const std::string& handle, const std::vector<std::string>& registered);

  // The member's inbox (made on first use) and the calendar invitations land in
  // (schedule-default-calendar-URL: their first calendar for events, made when they have none).
  Collection inbox(const std::string& handle);
  Collection default_calendar(const std::string& handle);

  // What a PUT or DELETE of a calendar object in a member's calendar means for scheduling.
  // owner: the calendar's owner, whose addresses decide whether they organize or attend.
  // before: the stored object, if any; after: what the client sent.
  struct Change {
    std::string owner;
    std::vector<std::string> owner_addresses;
    std::optional<std::string> before;
    std::optional<std::string> after;  // nullopt: deleted
    bool send_replies = true;          // Schedule-Reply: F (RFC 6638 8.1) turns answers off
  };
  struct Outcome {
    bool organizer = false;    // the owner organizes: a new Schedule-Tag for the stored copy
    std::string stored;        // the object to store (SCHEDULE-STATUS set, answers reset), when it differs
    std::map<std::string, std::optional<std::string>> recipients;  // attendee address -> member handle
  };
  // Before the object is stored: decides what the owner's copy becomes.
  Outcome prepare(const Change& change);
  // After it is stored: sends what the change means to everyone concerned. Failures to
  // reach an attendee are logged and, for the organizer, written into SCHEDULE-STATUS.
  void send(const Change& change, const Outcome& outcome, int64_t collection, const std::string& resource);

  // RFC 6638 5.1: a VFREEBUSY request POSTed to the owner's outbox; the schedule-response body.
  // Throws coop::Error("valid-scheduling-message" | "organizer-allowed", ..., 403).
  std::string free_busy(const std::string& owner, const std::vector<std::string>& owner_addresses, std::string_view request);

  // iMIP received by coop-mail for a member: applied when authenticated and sent by the
  // organizer (REQUEST, CANCEL) or by the attendee who answers (REPLY). What happened, as JSON.
  std::string receive_imip(const std::string& handle, const std::string& from, bool authenticated, std::string_view calendar);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::dav
