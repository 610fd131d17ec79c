// JMAP Mail (RFC 8621) sending and away: Identity (6), EmailSubmission (7) through coop's
// outbound queue, and VacationResponse (8), whose replies the vacation responder sends.
#include <algorithm>
#include <ctime>
#include <set>

#include "common/digest.h"
#include "common/error.h"
#include "common/http/date.h"
#include "common/json.h"
#include "common/mail/message.h"
#include "common/text.h"
#include "workers/mail/jmap/jmap_internal.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/outbound/outbound.h"
#include "workers/mail/outbound/queue_store.h"
#include "workers/mail/store/mail_directory.h"
#include "workers/mail/submission.h"

namespace coop::mail::jmap {

namespace {

// ---- Identity (RFC 8621 6): one for each address the member may send from --------------

struct Identity {
  std::string id, email;
};

std::vector<Identity> identities(JmapContext& c, const Call& call) {
  std::vector<Identity> out;
  for (const auto& address : sendable_addresses(c.service->directory(), call.handle, call.emails))
    out.push_back({"i" + sha256_hex("coop-identity:" + address).substr(0, 16), address});
  return out;
}

std::string identity_state(const std::vector<Identity>& list, const std::string& name) {
  std::string all = name;
  for (const auto& i : list) all += "\n" + i.email;
  return sha256_hex(all).substr(0, 16);
}

// RFC 8620 5.1 /get over already built objects.
json get_from(const Call& call, const std::string& state, const std::vector<json>& objects, int max_objects) {
  json list = json::array(), not_found = json::array();
  if (!call.args.contains("ids") || call.args["ids"].is_null()) {
    if (objects.size() > static_cast<std::size_t>(max_objects)) throw MethodError("requestTooLarge", "ask for ids");
    for (const auto& o : objects) list.push_back(o);
  } else {
    if (!call.args["ids"].is_array()) throw MethodError("invalidArguments", "ids is an array or null");
    if (call.args["ids"].size() > static_cast<std::size_t>(max_objects)) throw MethodError("requestTooLarge", "at most maxObjectsInGet ids");
    std::set<std::string> seen;
    for (const auto& given : call.args["ids"]) {
      if (!given.is_string()) throw MethodError("invalidArguments", "ids holds strings");
      const auto id = resolve_id(call, given.get<std::string>());
      if (!seen.insert(id).second) continue;
      const auto it = std::find_if(objects.begin(), objects.end(), [&](const json& o) { return o["id"] == id; });
      if (it == objects.end()) not_found.push_back(id);
      else list.push_back(*it);
    }
  }
  // Only the properties asked for (and id).
  if (call.args.contains("properties") && call.args["properties"].is_array()) {
    for (auto& o : list) {
      json picked = {{"id", o["id"]}};
      for (const auto& p : call.args["properties"])
        if (p.is_string() && o.contains(p.get<std::string>())) picked[p.get<std::string>()] = o[p.get<std::string>()];
      o = std::move(picked);
    }
  }
  return get_response(call.account_id, state, std::move(list), std::move(not_found));
}

json identity_get(JmapContext& c, const Call& call) {
  const auto list = identities(c, call);
  std::vector<json> objects;
  for (const auto& i : list)
    objects.push_back({{"id", i.id}, {"name", call.name.empty() ? call.handle : call.name}, {"email", i.email},
                       {"replyTo", nullptr}, {"bcc", nullptr}, {"textSignature", ""}, {"htmlSignature", ""}, {"mayDelete", false}});
  return get_from(call, identity_state(list, call.name), objects, c.limits.max_objects_in_get);
}

// The identities follow the registry and the aliases; no log of them is kept, so a state
// other than the current one cannot be followed (RFC 8620 5.2 allows that answer).
json identity_changes(JmapContext& c, const Call& call) {
  const auto state = identity_state(identities(c, call), call.name);
  if (call.args.value("sinceState", json(nullptr)) != state)
    throw MethodError("cannotCalculateChanges", "the identities changed: fetch them afresh");
  return {{"accountId", call.account_id}, {"oldState", state}, {"newState", state}, {"hasMoreChanges", false},
          {"created", json::array()}, {"updated", json::array()}, {"destroyed", json::array()}};
}

// Identities are the member's addresses, which the registry and `coop mail alias` manage.
json identity_set(JmapContext& c, const Call& call) {
  const auto state = identity_state(identities(c, call), call.name);
  check_if_in_state(call, state);
  json not_created = json::object(), not_updated = json::object(), not_destroyed = json::object();
  const json forbidden = {{"type", "forbidden"}, {"description", "identities are the member's addresses: ask an admin for another"}};
  const auto [create, update, destroy] = set_parts(call);
  const auto allowed = sendable_addresses(c.service->directory(), call.handle, call.emails);
  for (const auto& [id, object] : create.items()) {
    // RFC 8621 6.3: an address the member may not send from is forbiddenFrom.
    const auto email = object.is_object() ? object.value("email", json(nullptr)) : json(nullptr);
    const bool theirs = email.is_string() && std::find(allowed.begin(), allowed.end(), ascii_lower(email.get<std::string>())) != allowed.end();
    not_created[id] = theirs ? forbidden : json{{"type", "forbiddenFrom"}, {"description", call.handle + " may not send from that address"}};
  }
  for (const auto& [id, _] : update.items()) not_updated[id] = forbidden;
  for (const auto& id : destroy)
    if (id.is_string()) not_destroyed[id.get<std::string>()] = forbidden;
  json out = {{"accountId", call.account_id}, {"oldState", state}, {"newState", state}, {"created", json::object()},
              {"updated", json::object()}, {"destroyed", json::array()}};
  if (!not_created.empty()) out["notCreated"] = not_created;
  if (!not_updated.empty()) out["notUpdated"] = not_updated;
  if (!not_destroyed.empty()) out["notDestroyed"] = not_destroyed;
  null_when_empty(out);
  return out;
}

// ---- EmailSubmission (RFC 8621 7) -------------------------------------------------------

// RFC 8621 7: a recipient's deliveryStatus from what the queue knows of it.
json delivery_status(const std::vector<OutboundRecipient>& recipients, const json& last) {
  json out = json::object();
  for (const auto& r : recipients) {
    const char* delivered = r.state == "delivered" ? "yes" : r.state == "failed" ? "no" : "queued";
    // A remote server's reply may be in any charset: what is not UTF-8 is replaced.
    std::string reply = r.last_error.empty() ? std::string("250 2.0.0 queued") : r.last_error;
    if (!is_valid_utf8(reply))
      for (char& ch : reply)
        if (static_cast<unsigned char>(ch) >= 0x80) ch = '?';
    out[r.address] = {{"smtpReply", reply},
                      {"delivered", delivered}, {"displayed", "unknown"}};
  }
  // Gone from the queue and its history: what was seen last, no longer sure.
  if (recipients.empty() && last.is_object())
    for (const auto& [address, status] : last.items()) {
      out[address] = status;
      if (status.value("delivered", "") == "queued") out[address]["delivered"] = "unknown";
    }
  return out;
}

json submission_object(JmapContext& c, const EmailSubmissionRecord& r) {
  const json last = parse_json(r.status.empty() ? "{}" : r.status);
  json status = delivery_status(c.outbound->queue().outcome(r.queue_id), last);
  if (status != last) c.service->directory().set_submission_status(r.id, status.dump());
  return {{"id", "s" + std::to_string(r.id)}, {"identityId", r.identity_id}, {"emailId", r.email_id}, {"threadId", r.thread_id},
          {"envelope", parse_json(r.envelope)}, {"sendAt", http::iso8601(r.send_at)},
          {"undoStatus", "final"},  // queued at once: there is no delay in which to cancel
          {"deliveryStatus", status}, {"dsnBlobIds", json::array()}, {"mdnBlobIds", json::array()}};
}

std::string submission_state(const std::vector<EmailSubmissionRecord>& records) {
  std::string all;
  for (const auto& r : records) all += std::to_string(r.id) + ":" + r.status + "\n";
  return sha256_hex(all).substr(0, 16);
}

json submission_get(JmapContext& c, const Call& call) {
  std::vector<json> objects;
  for (const auto& r : c.service->directory().submissions(call.handle)) objects.push_back(submission_object(c, r));
  return get_from(call, submission_state(c.service->directory().submissions(call.handle)), objects, c.limits.max_objects_in_get);
}

json submission_changes(JmapContext& c, const Call& call) {
  const auto state = submission_state(c.service->directory().submissions(call.handle));
  if (call.args.value("sinceState", json(nullptr)) != state)
    throw MethodError("cannotCalculateChanges", "fetch the submissions afresh");
  return {{"accountId", call.account_id}, {"oldState", state}, {"newState", state}, {"hasMoreChanges", false},
          {"created", json::array()}, {"updated", json::array()}, {"destroyed", json::array()}};
}

// RFC 8621 7.3: filter by identityIds, emailIds, threadIds, undoStatus, before, after; sort
// by emailId, threadId or sentAt.
json submission_query(JmapContext& c, const Call& call) {
  const json filter = call.args.value("filter", json(nullptr));
  if (!filter.is_null() && !filter.is_object()) throw MethodError("invalidArguments", "filter is an object");
  std::vector<json> kept;
  for (const auto& r : c.service->directory().submissions(call.handle)) {
    auto o = submission_object(c, r);
    bool ok = true;
    if (filter.is_object())
      for (const auto& [key, value] : filter.items()) {
        if (key == "identityIds" || key == "emailIds" || key == "threadIds") {
          const auto field = key == "identityIds" ? "identityId" : key == "emailIds" ? "emailId" : "threadId";
          ok = ok && value.is_array() && std::find(value.begin(), value.end(), o[field]) != value.end();
        } else if (key == "undoStatus") {
          ok = ok && value == o["undoStatus"];
        } else if (key == "before" || key == "after") {
          const auto when = parse_date(value, true);
          if (!when) throw MethodError("invalidArguments", key + " is a UTCDate");
          ok = ok && (key == "before" ? r.send_at < *when : r.send_at >= *when);
        } else {
          throw MethodError("unsupportedFilter", "EmailSubmission/query cannot filter by " + key);
        }
      }
    if (ok) kept.push_back(std::move(o));
  }
  const json sort = call.args.contains("sort") && !call.args["sort"].is_null() ? call.args["sort"] : json::array();
  if (!sort.is_array()) throw MethodError("invalidArguments", "sort is an array");
  for (const auto& s : sort)
    if (!s.is_object() || (s.value("property", "") != "emailId" && s.value("property", "") != "threadId" && s.value("property", "") != "sentAt"))
      throw MethodError("unsupportedSort", "EmailSubmission/query sorts by emailId, threadId or sentAt");
  std::stable_sort(kept.begin(), kept.end(), [&](const json& a, const json& b) {
    for (const auto& s : sort) {
      const auto p = s["property"] == "sentAt" ? std::string("sendAt") : s["property"].get<std::string>();
      if (a[p] != b[p]) return s.value("isAscending", true) ? a[p] < b[p] : b[p] < a[p];
    }
    return false;
  });
  json ids = json::array();
  const json given_position = call.args.value("position", json(0));  // RFC 8620 5.5: 0 when absent
  const auto position = std::max<int64_t>(0, given_position.is_number_integer() ? given_position.get<int64_t>() : 0);
  const auto limit = call.args.contains("limit") && call.args["limit"].is_number_unsigned() ? call.args["limit"].get<int64_t>()
                                                                                            : static_cast<int64_t>(kept.size());
  for (auto i = position; i < static_cast<int64_t>(kept.size()) && static_cast<int64_t>(ids.size()) < limit; ++i)
    ids.push_back(kept[static_cast<std::size_t>(i)]["id"]);
  json out = {{"accountId", call.account_id}, {"queryState", submission_state(c.service->directory().submissions(call.handle))},
              {"canCalculateChanges", false}, {"position", position}, {"ids", ids}};
  if (call.args.value("calculateTotal", false)) out["total"] = kept.size();
  return out;
}

json submission_query_changes(JmapContext&, const Call&) {
  throw MethodError("cannotCalculateChanges", "query the submissions afresh");
}

// An Email of the member by id: its blob and thread, through Email/get.
std::optional<std::pair<std::string, std::string>> find_email(JmapContext& c, const Call& call, const std::string& id) {
  json args = {{"accountId", call.account_id}, {"ids", {id}}, {"properties", {"blobId", "threadId"}}};
  std::vector<json> none;
  const Call get{call.handle, call.account_id, args, call.name, call.emails, call.created_ids, none};
  const auto found = mail_methods().at("Email/get").run(c, get);
  if (found["list"].empty()) return std::nullopt;
  return std::pair{found["list"][0]["blobId"].get<std::string>().substr(1), found["list"][0]["threadId"].get<std::string>()};
}

// RFC 8621 7.5 EmailSubmission/set: create sends the Email through the outbound queue
// (checked and completed as submission on port 587 is: RFC 6409), then the implicit
// Email/set of onSuccessUpdateEmail and onSuccessDestroyEmail. Update can only try to
// cancel (cannotUnsend: the message is queued at once); destroy forgets the record.
json submission_set(JmapContext& c, const Call& call) {
  if (!c.outbound) throw MethodError("forbidden", "this shard sends no mail");
  auto& directory = c.service->directory();
  const auto old_state = submission_state(directory.submissions(call.handle));
  check_if_in_state(call, old_state);
  const auto [create, update, destroy] = set_parts(call);
  if (create.size() + update.size() + destroy.size() > static_cast<std::size_t>(c.limits.max_objects_in_set))
    throw MethodError("requestTooLarge", "at most maxObjectsInSet a call");
  const auto on_update = call.args.value("onSuccessUpdateEmail", json(nullptr));
  const auto on_destroy = call.args.value("onSuccessDestroyEmail", json(nullptr));
  if ((!on_update.is_null() && !on_update.is_object()) || (!on_destroy.is_null() && !on_destroy.is_array()))
    throw MethodError("invalidArguments", "onSuccessUpdateEmail is an object, onSuccessDestroyEmail an array");
  const auto ids = identities(c, call);
  const auto allowed = sendable_addresses(directory, call.handle, call.emails);
  json created = json::object(), not_created = json::object(), updated = json::object(), not_updated = json::object(),
       destroyed = json::array(), not_destroyed = json::object();
  std::map<std::string, std::string> email_of;  // submission id and "#creation" -> emailId
  for (const auto& [creation, object] : create.items()) {
    auto refuse = [&](const std::string& type, const std::string& why, json extra = json::object()) {
      json error = {{"type", type}, {"description", why}};
      error.update(extra);
      not_created[creation] = error;
    };
    if (!object.is_object()) {
      refuse("invalidProperties", "an EmailSubmission is an object");
      continue;
    }
    const auto identity_id = object.value("identityId", json(nullptr));
    const auto identity = std::find_if(ids.begin(), ids.end(), [&](const Identity& i) { return identity_id == i.id; });
    if (identity == ids.end()) {
      refuse("invalidProperties", "no such identityId", {{"properties", {"identityId"}}});
      continue;
    }
    const auto email_ref = object.value("emailId", json(nullptr));
    const auto email_id = email_ref.is_string() ? resolve_id(call, email_ref.get<std::string>()) : std::string();
    const auto email = email_id.empty() ? std::nullopt : find_email(c, call, email_id);
    if (!email) {
      refuse("invalidProperties", "no such emailId", {{"properties", {"emailId"}}});
      continue;
    }
    const auto bytes = c.service->blobs().read(email->first);
    if (bytes.size() > c.limits.max_message_bytes) {
      refuse("tooLarge", "the message is over the shard's size limit", {{"maxSize", c.limits.max_message_bytes}});
      continue;
    }
    // The envelope: as given, or the identity's address and every To, Cc and Bcc address.
    json envelope = object.value("envelope", json(nullptr));
    std::string mail_from;
    std::vector<std::string> rcpt_to;
    if (envelope.is_null()) {
      mail_from = identity->email;
      const auto env = summarize_message(std::string_view(bytes).substr(0, header_end(bytes))).envelope;
      for (const char* field : {"to", "cc", "bcc"})
        for (const auto& a : env.value(field, json::array()))
          if (a["mailbox"].is_string() && a["host"].is_string()) {
            const auto address = a["mailbox"].get<std::string>() + "@" + a["host"].get<std::string>();
            if (std::find(rcpt_to.begin(), rcpt_to.end(), address) == rcpt_to.end()) rcpt_to.push_back(address);
          }
      json list = json::array();
      for (const auto& r : rcpt_to) list.push_back({{"email", r}, {"parameters", nullptr}});
      envelope = {{"mailFrom", {{"email", mail_from}, {"parameters", nullptr}}}, {"rcptTo", list}};
    } else {
      const auto from = envelope.is_object() ? envelope.value("mailFrom", json(nullptr)) : json(nullptr);
      const auto to = envelope.is_object() ? envelope.value("rcptTo", json(nullptr)) : json(nullptr);
      bool ok = from.is_object() && from.contains("email") && from["email"].is_string() && to.is_array();
      // No SMTP extension parameters are offered (submissionExtensions is empty).
      ok = ok && from.value("parameters", json(nullptr)).is_null();
      if (ok)
        for (const auto& r : to) {
          ok = ok && r.is_object() && r.contains("email") && r["email"].is_string() && r.value("parameters", json(nullptr)).is_null();
          if (ok) rcpt_to.push_back(r["email"].get<std::string>());
        }
      if (!ok) {
        refuse("invalidProperties", "envelope is {mailFrom, rcptTo} of {email, parameters: null}", {{"properties", {"envelope"}}});
        continue;
      }
      mail_from = from["email"].get<std::string>();
    }
    auto bad_address = [](const std::string& a) {
      return a.size() > 254 || a.find('@') == std::string::npos || a.find_first_of(" <>,;\"\r\n\t") != std::string::npos;
    };
    if (rcpt_to.empty()) {
      refuse("noRecipients", "the envelope has no recipients");
      continue;
    }
    if (rcpt_to.size() > c.limits.max_recipients) {
      refuse("tooManyRecipients", "at most " + std::to_string(c.limits.max_recipients) + " recipients",
             {{"maxRecipients", c.limits.max_recipients}});
      continue;
    }
    json invalid = json::array();
    for (const auto& r : rcpt_to)
      if (bad_address(r)) invalid.push_back(r);
    if (!invalid.empty()) {
      refuse("invalidRecipients", "not addresses", {{"invalidRecipients", invalid}});
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), ascii_lower(mail_from)) == allowed.end()) {
      refuse("forbiddenMailFrom", call.handle + " may not send as " + mail_from);
      continue;
    }
    const auto now = static_cast<int64_t>(::time(nullptr));
    const auto prepared = prepare_submission(bytes, allowed, now);
    if (prepared.code != 250) {
      refuse(prepared.code == 553 ? "forbiddenFrom" : "invalidEmail", prepared.reply);
      continue;
    }
    try {
      const bool utf8 = std::any_of(bytes.begin(), bytes.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; });
      // The member's Email is their copy: no second one is filed in Sent (onSuccessUpdateEmail moves it).
      const auto queued = c.outbound->submit(call.handle, mail_from, rcpt_to, prepared.from_domain, prepared.message, "", utf8);
      EmailSubmissionRecord record;
      record.handle = call.handle;
      record.identity_id = identity->id;
      record.email_id = email_id;
      record.thread_id = email->second;
      record.envelope = envelope.dump();
      json status = json::object();
      for (const auto& r : rcpt_to) status[r] = {{"smtpReply", "250 2.0.0 queued"}, {"delivered", "queued"}, {"displayed", "unknown"}};
      record.status = status.dump();
      record.queue_id = queued;
      record.send_at = now;
      record.id = directory.add_submission(record);
      const auto id = "s" + std::to_string(record.id);
      created[creation] = {{"id", id}, {"undoStatus", "final"}, {"sendAt", http::iso8601(now)}, {"threadId", email->second},
                           {"deliveryStatus", status}, {"dsnBlobIds", json::array()}, {"mdnBlobIds", json::array()}};
      call.created_ids[creation] = id;
      email_of["#" + creation] = email_id;
      email_of[id] = email_id;
    } catch (const std::exception&) {
      refuse("serverFail", "the message could not be queued");
    }
  }
  const auto records = directory.submissions(call.handle);
  auto record_of = [&](const std::string& id) -> const EmailSubmissionRecord* {
    for (const auto& r : records)
      if ("s" + std::to_string(r.id) == id) return &r;
    return nullptr;
  };
  for (const auto& [given, patch] : update.items()) {
    const auto id = resolve_id(call, given);
    if (!record_of(id)) not_updated[given] = {{"type", "notFound"}};
    else if (patch.is_object() && patch.value("undoStatus", "") == "canceled")
      not_updated[given] = {{"type", "cannotUnsend"}, {"description", "the message was queued at once"}};
    else not_updated[given] = {{"type", "invalidProperties"}, {"description", "only undoStatus can change"}};
  }
  for (const auto& d : destroy) {
    const auto id = d.is_string() ? resolve_id(call, d.get<std::string>()) : std::string();
    const auto* r = record_of(id);
    if (r && directory.remove_submission(call.handle, r->id)) {
      destroyed.push_back(id);
      email_of.emplace(id, r->email_id);
    } else {
      not_destroyed[d.is_string() ? d.get<std::string>() : std::string()] = {{"type", "notFound"}};
    }
  }
  json out = {{"accountId", call.account_id}, {"oldState", old_state}, {"newState", submission_state(directory.submissions(call.handle))},
              {"created", created}, {"updated", updated}, {"destroyed", destroyed}};
  if (!not_created.empty()) out["notCreated"] = not_created;
  if (!not_updated.empty()) out["notUpdated"] = not_updated;
  if (!not_destroyed.empty()) out["notDestroyed"] = not_destroyed;
  null_when_empty(out);
  // RFC 8621 7.5: the Emails of the submissions that succeeded, changed as asked, by an
  // implicit Email/set whose response follows this one.
  json email_update = json::object(), email_destroy = json::array();
  if (on_update.is_object())
    for (const auto& [ref, patch] : on_update.items())
      if (const auto it = email_of.find(ref); it != email_of.end()) email_update[it->second] = patch;
  if (on_destroy.is_array())
    for (const auto& ref : on_destroy)
      if (const auto it = ref.is_string() ? email_of.find(ref.get<std::string>()) : email_of.end(); it != email_of.end())
        email_destroy.push_back(it->second);
  if (c.changed && (!created.empty() || !destroyed.empty())) c.changed(call.handle);
  if (!email_update.empty() || !email_destroy.empty()) {
    json args = {{"accountId", call.account_id}, {"update", email_update}, {"destroy", email_destroy}};
    const Call set{call.handle, call.account_id, args, call.name, call.emails, call.created_ids, call.implicit};
    try {
      call.implicit.push_back(json::array({"Email/set", mail_methods().at("Email/set").run(c, set)}));
    } catch (const MethodError& e) {
      call.implicit.push_back(json::array({"error", {{"type", e.type}, {"description", e.what()}}}));
    } catch (const std::exception&) {
      // The submissions stand (they are queued); only the changes to their Emails failed.
      call.implicit.push_back(json::array({"error", {{"type", "serverFail"}}}));
    }
  }
  return out;
}

// ---- VacationResponse (RFC 8621 8): one object, "singleton" ------------------------------

json vacation_object(const VacationSettings& v) {
  auto optional = [](const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); };
  return {{"id", "singleton"}, {"isEnabled", v.enabled}, {"fromDate", v.from ? json(http::iso8601(*v.from)) : json(nullptr)},
          {"toDate", v.to ? json(http::iso8601(*v.to)) : json(nullptr)}, {"subject", optional(v.subject)},
          {"textBody", optional(v.text)}, {"htmlBody", optional(v.html)}};
}

std::string vacation_state(const VacationSettings& v) { return sha256_hex(vacation_object(v).dump()).substr(0, 16); }

json vacation_get(JmapContext& c, const Call& call) {
  const auto v = c.service->directory().vacation(call.handle);
  return get_from(call, vacation_state(v), {vacation_object(v)}, c.limits.max_objects_in_get);
}

json vacation_set(JmapContext& c, const Call& call) {
  auto& directory = c.service->directory();
  auto v = directory.vacation(call.handle);
  const auto old_state = vacation_state(v);
  check_if_in_state(call, old_state);
  json updated = json::object(), not_updated = json::object(), not_created = json::object(), not_destroyed = json::object();
  const auto [create, update, destroy] = set_parts(call);
  for (const auto& [id, _] : create.items())
    not_created[id] = {{"type", "singleton"}, {"description", "there is one VacationResponse, \"singleton\": update it"}};
  for (const auto& id : destroy)
    if (id.is_string()) not_destroyed[id.get<std::string>()] = {{"type", "singleton"}};
  for (const auto& [id, patch] : update.items()) {
    if (id != "singleton") {
      not_updated[id] = {{"type", "notFound"}};
      continue;
    }
    if (!patch.is_object()) {
      not_updated[id] = {{"type", "invalidPatch"}};
      continue;
    }
    auto next = v;
    json bad = json::array();
    for (const auto& [property, value] : patch.items()) {
      if (property == "isEnabled" && value.is_boolean()) {
        next.enabled = value.get<bool>();
      } else if ((property == "fromDate" || property == "toDate") && (value.is_null() || parse_date(value, true))) {
        (property == "fromDate" ? next.from : next.to) = value.is_null() ? std::nullopt : parse_date(value, true);
      } else if ((property == "subject" || property == "textBody" || property == "htmlBody") &&
                 (value.is_null() || (value.is_string() && value.get<std::string>().size() <= 64 * 1024 &&
                                      (property != "subject" || value.get<std::string>().find_first_of("\r\n") == std::string::npos)))) {
        auto& field = property == "subject" ? next.subject : property == "textBody" ? next.text : next.html;
        field = value.is_null() ? std::nullopt : std::optional<std::string>(value.get<std::string>());
      } else {
        bad.push_back(property);
      }
    }
    if (next.from && next.to && *next.to <= *next.from) bad.push_back("toDate");
    if (!bad.empty()) {
      not_updated[id] = {{"type", "invalidProperties"}, {"properties", bad}};
      continue;
    }
    directory.set_vacation(call.handle, next);
    v = next;
    updated[id] = nullptr;
    if (c.changed) c.changed(call.handle);
  }
  json out = {{"accountId", call.account_id}, {"oldState", old_state}, {"newState", vacation_state(v)},
              {"created", json::object()}, {"updated", updated}, {"destroyed", json::array()}};
  if (!not_created.empty()) out["notCreated"] = not_created;
  if (!not_updated.empty()) out["notUpdated"] = not_updated;
  if (!not_destroyed.empty()) out["notDestroyed"] = not_destroyed;
  null_when_empty(out);
  return out;
}

}  // namespace

json push_states(JmapContext& c, const std::string& handle) {
  // Deliveries are counted from the worker's start: a nonce keeps a restart's states new.
  static const std::string nonce = random_hex(4);
  const auto mail = mail_state(c, handle);
  return {{"Mailbox", mail}, {"Email", mail}, {"Thread", mail},
          {"EmailSubmission", submission_state(c.service->directory().submissions(handle))},
          {"VacationResponse", vacation_state(c.service->directory().vacation(handle))},
          {"EmailDelivery", nonce + "-" + std::to_string(c.service->deliveries(handle))}};
}

json submission_account_capabilities() { return {{"maxDelayedSend", 0}, {"submissionExtensions", json::object()}}; }

const std::map<std::string, Method>& submission_methods() {
  static const std::map<std::string, Method> methods = {
      {"Identity/get", {kSubmission, identity_get}},
      {"Identity/changes", {kSubmission, identity_changes}},
      {"Identity/set", {kSubmission, identity_set}},
      {"EmailSubmission/get", {kSubmission, submission_get}},
      {"EmailSubmission/changes", {kSubmission, submission_changes}},
      {"EmailSubmission/query", {kSubmission, submission_query}},
      {"EmailSubmission/queryChanges", {kSubmission, submission_query_changes}},
      {"EmailSubmission/set", {kSubmission, submission_set}},
      {"VacationResponse/get", {kVacation, vacation_get}},
      {"VacationResponse/set", {kVacation, vacation_set}},
  };
  return methods;
}

}  // namespace coop::mail::jmap
