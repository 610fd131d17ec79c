// Implicit scheduling (RFC 6638 3.2) and iMIP for coop-dav.
#include "workers/dav/scheduler.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <mutex>
#include <set>

#include "common/control/client.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/paths.h"
#include "common/text.h"
#include "workers/dav/calendar_data.h"
#include "workers/dav/dav_xml.h"
#include "workers/dav/scheduling.h"

namespace coop::dav {

namespace {

using nlohmann::json;

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// A new Schedule-Tag (RFC 6638 3.2.10), quoted like an entity tag.
std::string new_schedule_tag() { return "\"" + random_hex(10) + "\""; }

std::optional<std::pair<int64_t, int64_t>> bounds_of(std::string_view ics) {
  if (const auto b = instance_bounds(ics)) return std::make_pair(b->first_start, b->last_end);
  return std::nullopt;
}

bool is_safe_name(const std::string& text) {
  if (text.empty() || text.size() > 200 || text[0] == '.') return false;
  return std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '@';
  });
}

}  // namespace

struct Scheduler::Impl {
  const Home& home;
  DavStore& store;
  std::string domain;
  std::mutex making;  // inboxes and default calendars are made once

  Impl(const Home& home, DavStore& store, std::string domain) : home(home), store(store), domain(std::move(domain)) {}

  // Which member each address reaches: coop-mail knows aliases and every hosted domain; the
  // registry alone knows addresses and handle@domain.
  std::map<std::string, std::optional<std::string>> members_of(const std::vector<std::string>& addresses) {
    std::map<std::string, std::optional<std::string>> out;
    if (addresses.empty()) return out;
    try {
      control::Client mail(home.socket("mail"));
      const auto response = mail.post("/v1/resolve", json({{"addresses", addresses}}).dump());
      response.throw_if_error();
      const auto answer = response.json();  // kept: items() below refers into it
      for (const auto& [address, handle] : answer.at("handles").items())
        out[address] = handle.is_string() ? std::optional<std::string>(handle.get<std::string>()) : std::nullopt;
      return out;
    } catch (const Error& e) {
      if (e.code() != errc::kNotRunning) throw;
    }
    control::Client member(home.socket("member"));
    for (const auto& address : addresses) {
      const auto at = address.rfind('@');
      std::string query = "/v1/resolve?address=" + percent_encode(address);
      if (at != std::string::npos && address.substr(at + 1) == domain) query += "&local=" + percent_encode(address.substr(0, at));
      const auto response = member.get(query);
      response.throw_if_error();
      const auto j = response.json();
      const auto members = j.value("members", json::array());
      out[address] = std::nullopt;
      if (j.value("kind", "") != "group" && members.size() == 1 && members[0].value("status", "") == "active")
        out[address] = members[0].value("handle", "");
    }
    return out;
  }

  Collection inbox(const std::string& handle) {
    std::lock_guard lock(making);
    if (auto c = store.collection(handle, "calendar", kInboxName)) return *c;
    return store.create_collection(handle, "calendar", kInboxName, "Inbox", "");
  }

  Collection default_calendar(const std::string& handle) {
    std::lock_guard lock(making);
    std::optional<Collection> best;
    for (const auto& c : store.collections(handle, "calendar")) {
      if (c.name == kInboxName || c.name == kOutboxName) continue;
      if (!c.components.empty() && ("," + c.components + ",").find(",VEVENT,") == std::string::npos) continue;
      if (!best || c.id < best->id) best = c;
    }
    if (best) return *best;
    return store.create_collection(handle, "calendar", "calendar", "Calendar", "VEVENT,VTODO");
  }

  // The name a new copy takes: the UID itself when it is a plain name (as clients name
  // resources, so a client saving its answer finds the same resource), else a digest.
  std::string name_for(int64_t collection, const std::string& uid) {
    std::string name = is_safe_name(uid) ? uid + ".ics" : sha256_hex(uid).substr(0, 32) + ".ics";
    if (const auto there = store.resource(collection, name); there && there->uid != uid) name = random_hex(12) + ".ics";
    return name;
  }

  void to_inbox(const std::string& handle, const std::string& itip) {
    const auto box = inbox(handle);
    const auto object = scheduling_object(itip);
    // Inbox items are messages, several per UID: each is its own "UID" in the store.
    const std::string name = random_hex(12) + ".ics";
    store.put_resource(box.id, name, name, object ? object->component : "VEVENT", itip, std::nullopt, std::string());
  }

  // Stores a copy made by the server; an object that is not a valid calendar object (from
  // someone else's iMIP) is not stored.
  bool store_copy(int64_t collection, const std::string& name, const std::string& data, const std::optional<std::string>& tag) {
    try {
      const auto object = parse_calendar_object(data);
      store.put_resource(collection, name, object.uid, object.component, data, bounds_of(data), tag);
      return true;
    } catch (const Error& e) {
      spdlog::info("scheduling: copy {} not stored: {}", name, e.what());
      return false;
    }
  }

  // RFC 6638 3.2.3 and 4.1: a REQUEST or CANCEL into a member's inbox and calendars, a REPLY
  // into the organizer's copy. address: the member's address in the object (the attendee
  // invited, or the attendee who answers).
  void deliver_local(const std::string& handle, const std::string& address, const std::string& method,
                     const std::string& itip, const std::string& uid) {
    to_inbox(handle, itip);
    const auto copies = store.calendar_objects_with_uid(handle, uid);
    if (method == "REQUEST") {
      const auto tag = new_schedule_tag();
      if (copies.empty()) {
        const auto calendar = default_calendar(handle);
        store_copy(calendar.id, name_for(calendar.id, uid), attendee_copy(itip, std::nullopt, address), tag);
      }
      for (const auto& [c, r] : copies) store_copy(c.id, r.name, attendee_copy(itip, r.data, address), tag);
    } else if (method == "CANCEL") {
      const auto tag = new_schedule_tag();
      for (const auto& [c, r] : copies) store_copy(c.id, r.name, cancelled_copy(r.data, itip), tag);
    } else if (method == "REPLY") {
      for (const auto& [c, r] : copies)
        if (const auto updated = apply_reply(r.data, itip, address)) store_copy(c.id, r.name, *updated, std::nullopt);
    }
  }

  // iMIP through coop-mail's queue, DKIM-signed as the member's own mail.
  bool send_mail(const std::string& handle, const std::string& from, const std::string& to, const std::string& method,
                 const std::string& itip, const SchedulingObject& object) {
    ImipMail mail{from, "", to, method, object.summary, object.start, itip};
    const auto now = static_cast<int64_t>(::time(nullptr));
    try {
      control::Client client(home.socket("mail"));
      const json body = {{"handle", handle}, {"from", from}, {"to", {to}}, {"message", imip_message(mail, now)}};
      const auto response = client.post("/v1/imip", body.dump());
      if (response.ok()) return true;
      spdlog::warn("scheduling: iMIP {} from {} to {} refused: {}", method, from, to, response.body);
    } catch (const Error& e) {
      spdlog::warn("scheduling: iMIP {} to {} not sent: {}", method, to, e.what());
    }
    return false;
  }

  // One iTIP message to each address: members of the shard directly, others by mail.
  // Returns the addresses that could not be reached.
  std::vector<std::string> dispatch(const std::string& owner, const std::string& from, const std::string& method,
                                    const std::string& itip, const SchedulingObject& object,
                                    const std::vector<std::string>& to,
                                    const std::map<std::string, std::optional<std::string>>& recipients) {
    std::vector<std::string> failed;
    for (const auto& address : to) {
      const auto it = recipients.find(address);
      const auto handle = it == recipients.end() ? std::nullopt : it->second;
      if (handle && *handle == owner) continue;
      try {
        // A REPLY changes the organizer's copy for the attendee who answers (from).
        if (handle) deliver_local(*handle, method == "REPLY" ? from : address, method, itip, object.uid);
        else if (!send_mail(owner, from, address, method, itip, object)) failed.push_back(address);
      } catch (const std::exception& e) {
        spdlog::warn("scheduling: {} to {} failed: {}", method, address, e.what());
        failed.push_back(address);
      }
    }
    return failed;
  }

  std::vector<std::string> scheduled_attendees(const SchedulingObject& object, const std::vector<std::string>& owner_addresses) {
    std::vector<std::string> out;
    for (const auto& a : object.attendees)
      if (a.server_schedules && !contains(owner_addresses, a.address) && a.address != object.organizer) out.push_back(a.address);
    return out;
  }
};

Scheduler::Scheduler(const Home& home, DavStore& store, std::string domain)
    : impl_(std::make_unique<Impl>(home, store, std::move(domain))) {}

Scheduler::~Scheduler() = default;

std::vector<std::string> Scheduler::addresses_of(const std::string& handle, const std::vector<std::string>& registered) {
  std::vector<std::string> out;
  for (const auto& e : registered)
    if (!contains(out, ascii_lower(e))) out.push_back(ascii_lower(e));
  try {
    control::Client mail(impl_->home.socket("mail"));
    const auto response = mail.get("/v1/addresses/" + percent_encode(handle));
    response.throw_if_error();
    for (const auto& a : response.json().value("addresses", std::vector<std::string>{}))
      if (!contains(out, a)) out.push_back(a);
  } catch (const Error& e) {
    if (e.code() != errc::kNotRunning) spdlog::warn("scheduling: addresses of {}: {}", handle, e.what());
    const auto own = ascii_lower(handle) + "@" + impl_->domain;
    if (!contains(out, own)) out.push_back(own);
  }
  return out;
}

Collection Scheduler::inbox(const std::string& handle) { return impl_->inbox(handle); }

Collection Scheduler::default_calendar(const std::string& handle) { return impl_->default_calendar(handle); }

Scheduler::Outcome Scheduler::prepare(const Change& change) {
  Outcome out;
  if (!change.after) return out;
  const auto object = scheduling_object(*change.after);
  if (!object || !object->organizer_server_schedules || !contains(change.owner_addresses, object->organizer)) return out;
  out.organizer = true;
  std::string data = *change.after;
  // After a change of time or place every attendee is asked again (RFC 5546 2.1.4: a new
  // SEQUENCE; as CalendarServer and Cyrus do).
  if (change.before && scheduling_object(*change.before) && significant_change(*change.before, data))
    data = reset_participation(data);
  const auto attendees = impl_->scheduled_attendees(*object, change.owner_addresses);
  std::vector<std::string> everyone = attendees;
  if (change.before)
    if (const auto old = scheduling_object(*change.before))
      for (const auto& a : impl_->scheduled_attendees(*old, change.owner_addresses))
        if (!contains(everyone, a)) everyone.push_back(a);
  out.recipients = impl_->members_of(everyone);
  // RFC 6638 7.3: 1.2 delivered to a member's inbox, 1.1 sent by mail.
  std::map<std::string, std::string> status;
  for (const auto& a : attendees) status[a] = out.recipients[a] ? "1.2" : "1.1";
  out.stored = with_schedule_status(data, status);
  return out;
}

void Scheduler::send(const Change& change, const Outcome& outcome, int64_t collection, const std::string& resource) {
  if (outcome.organizer) {
    const auto object = scheduling_object(outcome.stored);
    if (!object) return;
    const auto attendees = impl_->scheduled_attendees(*object, change.owner_addresses);
    auto failed = impl_->dispatch(change.owner, object->organizer, "REQUEST", itip_request(outcome.stored), *object, attendees,
                                  outcome.recipients);
    // RFC 6638 3.2.1.2: attendees taken off the list get a CANCEL (RFC 5546 3.2.5).
    if (change.before)
      if (const auto old = scheduling_object(*change.before)) {
        std::vector<std::string> removed;
        for (const auto& a : impl_->scheduled_attendees(*old, change.owner_addresses))
          if (!contains(attendees, a)) removed.push_back(a);
        if (!removed.empty())
          impl_->dispatch(change.owner, object->organizer, "CANCEL", itip_cancel(*change.before, removed), *old, removed,
                          outcome.recipients);
      }
    if (!failed.empty()) {
      // RFC 6638 7.3: 5.1 could not deliver; the organizer's client shows it.
      std::map<std::string, std::string> status;
      for (const auto& a : failed) status[a] = "5.1";
      impl_->store_copy(collection, resource, with_schedule_status(outcome.stored, status), std::nullopt);
    }
    return;
  }
  if (!change.after && change.before) {
    const auto object = scheduling_object(*change.before);
    if (!object) return;
    if (contains(change.owner_addresses, object->organizer)) {
      if (!object->organizer_server_schedules) return;
      // RFC 6638 3.2.1.3: the organizer deleting the event cancels it for everyone.
      const auto attendees = impl_->scheduled_attendees(*object, change.owner_addresses);
      impl_->dispatch(change.owner, object->organizer, "CANCEL", itip_cancel(*change.before), *object, attendees,
                      impl_->members_of(attendees));
      return;
    }
    for (const auto& a : object->attendees) {
      if (!contains(change.owner_addresses, a.address)) continue;
      // RFC 6638 3.2.2.4: an attendee who deletes the event declines it (unless they had).
      if (!change.send_replies || !a.server_schedules || participation_of(*change.before, a.address) == "DECLINED") return;
      impl_->dispatch(change.owner, a.address, "REPLY", itip_reply(*change.before, a.address, "DECLINED"), *object,
                      {object->organizer}, impl_->members_of({object->organizer}));
      return;
    }
    return;
  }
  if (!change.after) return;
  const auto object = scheduling_object(*change.after);
  if (!object && change.before) {
    // The organizer took every attendee off (no longer a scheduling object): each of them
    // hears that it is cancelled for them, as one taken off alone would (RFC 6638 3.2.1.2).
    const auto old = scheduling_object(*change.before);
    if (old && old->organizer_server_schedules && contains(change.owner_addresses, old->organizer)) {
      const auto removed = impl_->scheduled_attendees(*old, change.owner_addresses);
      if (!removed.empty())
        impl_->dispatch(change.owner, old->organizer, "CANCEL", itip_cancel(*change.before, removed), *old, removed,
                        impl_->members_of(removed));
    }
    return;
  }
  if (!object || contains(change.owner_addresses, object->organizer)) return;
  for (const auto& a : object->attendees) {
    if (!contains(change.owner_addresses, a.address)) continue;
    // RFC 6638 3.2.2.3: an attendee's changed answer goes to the organizer as a REPLY.
    std::string before = change.before ? participation_of(*change.before, a.address) : "";
    if (before.empty()) before = "NEEDS-ACTION";
    if (!change.send_replies || !a.server_schedules || participation_of(*change.after, a.address) == before) return;
    impl_->dispatch(change.owner, a.address, "REPLY", itip_reply(*change.after, a.address), *object, {object->organizer},
                    impl_->members_of({object->organizer}));
    return;
  }
}

std::string Scheduler::free_busy(const std::string& owner, const std::vector<std::string>& owner_addresses,
                                 std::string_view request) {
  const auto asked = parse_free_busy_request(request);
  // RFC 6638 5.1: only the outbox's owner may ask, as themselves.
  if (!contains(owner_addresses, asked.organizer))
    throw Error("organizer-allowed", "ORGANIZER " + asked.organizer + " is not an address of " + owner, 403);
  const auto recipients = impl_->members_of(asked.attendees);
  std::string xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                    "<C:schedule-response xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">";
  for (const auto& address : asked.attendees) {
    xml += "<C:response><C:recipient>" + href_xml("mailto:" + address) + "</C:recipient>";
    const auto it = recipients.find(address);
    if (it == recipients.end() || !it->second) {
      xml += "<C:request-status>3.7;Invalid calendar user</C:request-status></C:response>";
      continue;
    }
    std::vector<std::string> objects;
    for (const auto& c : impl_->store.collections(*it->second, "calendar")) {
      if (c.name == kInboxName || c.name == kOutboxName) continue;
      for (auto& r : impl_->store.time_range_candidates(c.id, asked.start, asked.end)) objects.push_back(std::move(r.data));
    }
    const auto reply = free_busy_reply(dav::free_busy(objects, asked.start, asked.end), asked, address);
    xml += "<C:request-status>2.0;Success</C:request-status><C:calendar-data>" + xml_escape(reply) +
           "</C:calendar-data></C:response>";
  }
  xml += "</C:schedule-response>";
  return xml;
}

std::string Scheduler::receive_imip(const std::string& handle, const std::string& from, bool authenticated,
                                    std::string_view calendar) {
  const auto result = [](bool applied, const std::string& why) {
    return json({{"applied", applied}, {"reason", why}}).dump();
  };
  const auto object = scheduling_object(calendar);
  if (!object || object->uid.empty()) return result(false, "not an iTIP message with an organizer and attendees");
  const auto sender = calendar_address(from);
  if (!authenticated) return result(false, "the sender's domain did not pass DMARC");
  control::Client member(impl_->home.socket("member"));
  const auto found = member.get("/v1/members/" + percent_encode(handle));
  found.throw_if_error();
  const auto mine = addresses_of(handle, found.json().value("emails", std::vector<std::string>{}));
  if (object->method == "REQUEST" || object->method == "CANCEL") {
    // RFC 6047 3 and RFC 5546 3.2: only the organizer invites, changes or cancels.
    if (object->organizer != sender) return result(false, "not sent by the organizer");
    for (const auto& a : object->attendees)
      if (contains(mine, a.address)) {
        impl_->deliver_local(handle, a.address, object->method, std::string(calendar), object->uid);
        return result(true, object->method);
      }
    return result(false, "the member is not an attendee");
  }
  if (object->method == "REPLY") {
    if (!contains(mine, object->organizer)) return result(false, "the member does not organize this event");
    // RFC 5546 3.2.3: a REPLY carries the one attendee who answers, and only they may.
    if (object->attendees.size() != 1 || object->attendees.front().address != sender)
      return result(false, "the reply does not come from the attendee it answers for");
    impl_->deliver_local(handle, sender, "REPLY", std::string(calendar), object->uid);
    return result(true, "REPLY");
  }
  return result(false, "METHOD " + object->method + " is not handled");
}

}  // namespace coop::dav
