// JMAP Mail (RFC 8621) over coop's mail store: Mailbox (2), Thread (3), Email (4) and
// Identity (6) reads and queries. Ids: a Mailbox is its row ("m" + row id, stable across
// renames); an Email is its bytes ("e" + the first 32 hex digits of the blob's sha256: the
// same message in two mailboxes is one Email in both); blobs are "G" + the sha256.
#include <algorithm>
#include <climits>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <set>
#include <unordered_map>

#include "common/digest.h"
#include "common/error.h"
#include "common/error_codes.h"
#include "common/http/date.h"
#include "common/json.h"
#include "common/mail/mailbox_formats.h"
#include "common/mail/mailbox_name.h"
#include "common/mail/message.h"
#include "common/text.h"
#include "workers/mail/jmap/jmap_internal.h"
#include "workers/mail/imap_parser.h"
#include "workers/mail/imap_thread.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/mime_compose.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/spam/filter.h"
#include "workers/mail/store/mailbox_store.h"

namespace coop::mail::jmap {

// RFC 3339 "2026-12-01T10:00:00Z" or, unless utc_only (UTCDate, RFC 8620 1.4), with an
// offset "+01:00" (Date), as Unix seconds; nullopt when it is not one.
std::optional<int64_t> parse_date(const json& value, bool utc_only) {
  if (!value.is_string()) return std::nullopt;
  const auto text = value.get<std::string>();
  struct tm tm {};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return std::nullopt;
  if (*end == '.') {
    ++end;
    if (!std::isdigit(static_cast<unsigned char>(*end))) return std::nullopt;
    while (std::isdigit(static_cast<unsigned char>(*end))) ++end;
  }
  const std::string_view zone(end);
  const auto seconds = static_cast<int64_t>(timegm(&tm));
  if (zone == "Z") return seconds;
  if (utc_only || zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':' ||
      !std::isdigit(static_cast<unsigned char>(zone[1])) || !std::isdigit(static_cast<unsigned char>(zone[2])) ||
      !std::isdigit(static_cast<unsigned char>(zone[4])) || !std::isdigit(static_cast<unsigned char>(zone[5])))
    return std::nullopt;
  const int offset = ((zone[1] - '0') * 10 + (zone[2] - '0')) * 3600 + ((zone[4] - '0') * 10 + (zone[5] - '0')) * 60;
  return zone[0] == '+' ? seconds - offset : seconds + offset;
}

namespace {

// RFC 8621 4.4.2: every sort property (the keyword ones with a "keyword" in the comparator).
constexpr const char* kSortable[] = {"receivedAt", "sentAt", "size", "subject", "from", "to",
                                     "hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"};

std::string role_of(const MailboxInfo& box) {
  if (box.name == "INBOX") return "inbox";
  if (box.special_use.size() > 1) return ascii_lower(box.special_use.substr(1));  // "\\Sent" -> "sent"
  return {};
}

std::string mailbox_id(const MailboxInfo& box) { return "m" + std::to_string(box.id); }

// The row a Mailbox id names ("m" and digits), or nullopt.
std::optional<int64_t> mailbox_row(const json& id) {
  if (!id.is_string()) return std::nullopt;
  const auto& text = id.get_ref<const std::string&>();
  if (text.size() < 2 || text.size() > 19 || text[0] != 'm' || !std::all_of(text.begin() + 1, text.end(), ::isdigit)) return std::nullopt;
  return std::stoll(text.substr(1));
}
std::string email_id(const std::string& blob) { return "e" + blob.substr(0, 32); }

// RFC 8621 4.1.1: IMAP flags as keywords.
json keywords_of(unsigned flags, const std::string& keywords) {
  json out = json::object();
  if (flags & kSeen) out["$seen"] = true;
  if (flags & kAnswered) out["$answered"] = true;
  if (flags & kFlagged) out["$flagged"] = true;
  if (flags & kDraft) out["$draft"] = true;
  std::size_t start = 0;
  while (start < keywords.size()) {
    auto end = keywords.find(' ', start);
    if (end == std::string::npos) end = keywords.size();
    if (end > start) out[ascii_lower(keywords.substr(start, end - start))] = true;
    start = end + 1;
  }
  return out;
}

// UTCDate (RFC 8620 1.4): coop's one RFC 3339 writer.
std::string utc_date(int64_t seconds) { return http::iso8601(seconds); }

std::optional<int64_t> parse_utc_date(const json& value) { return parse_date(value, true); }

// One header field's unfolded value from a header section (the first; "" when absent).
std::string field_of(std::string_view header, std::string_view name) {
  for (const auto& [field, raw] : header_fields(header))
    if (ascii_iequals(field, name)) return unfolded(raw);
  return {};
}

// RFC 8621 3: an Email's thread, which never changes, so it is read from the Email's own
// header: the thread's first message, the first id of References (else of In-Reply-To, else
// the message's own Message-ID; else the Email itself). Replies keep the first reference
// (RFC 5322 3.6.4), so a conversation shares it; the id is a digest of that message id.
std::string thread_of_header(std::string_view header, const std::string& email) {
  auto root = imap::message_ids(field_of(header, "references"));
  if (root.empty()) root = imap::message_ids(field_of(header, "in-reply-to"));
  if (root.empty()) root = imap::message_ids(field_of(header, "message-id"));
  return "t" + sha256_hex(root.empty() ? "email:" + email : "id:" + root.front()).substr(0, 24);
}

// Thread ids by blob: they depend on the bytes only, so they are worked out once.
class ThreadCache {
 public:
  std::optional<std::string> find(const std::string& blob) {
    std::lock_guard lock(mutex_);
    const auto it = threads_.find(blob);
    if (it == threads_.end()) return std::nullopt;
    return it->second;
  }
  void put(const std::string& blob, const std::string& thread) {
    std::lock_guard lock(mutex_);
    if (threads_.size() >= 500000) threads_.clear();  // about 60 MB at most
    threads_.emplace(blob, thread);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::string> threads_;
};

ThreadCache& thread_cache() {
  static ThreadCache instance;
  return instance;
}

// Every mailbox and every message of the member, each message once with all its mailboxes.
struct View {
  struct Email {
    std::string blob, thread;
    std::string first_box;  // the name of a mailbox holding it, and its UID there
    int64_t uid = 0;
    int64_t size = 0, received = 0;
    unsigned flags = 0;
    std::string keywords, subject;
    std::vector<int64_t> mailboxes;  // row ids
  };
  std::vector<MailboxInfo> boxes;
  std::map<std::string, Email> emails;  // by id
  std::map<std::string, std::vector<std::string>> threads;  // email ids by thread, oldest first
  std::map<int64_t, std::pair<int64_t, int64_t>> thread_counts;  // by mailbox row: threads, unread ones
  bool with_emails;

  View(JmapContext& c, const std::string& handle, bool with_emails) : with_emails(with_emails) {
    auto& store = c.service->mailboxes();
    boxes = store.mailboxes(handle);
    if (!with_emails) return;
    for (const auto& box : boxes) {
      std::vector<std::pair<int64_t, Email*>> unthreaded;  // uid, email
      for (const auto& m : store.messages(handle, box.name, 0, INT_MAX)) {
        if (m.meta.flags & kDeleted) continue;  // RFC 8621 4.1.1: \Deleted messages are not shown
        const auto id = email_id(m.meta.blob);
        auto& e = emails[id];
        if (e.blob.empty()) {
          e.blob = m.meta.blob;
          e.first_box = box.name;
          e.uid = m.uid;
          e.size = m.meta.size;
          e.received = m.meta.internal_date;
          e.flags = m.meta.flags;
          e.keywords = m.meta.keywords;
          e.subject = m.meta.subject;
          if (auto t = thread_cache().find(e.blob)) e.thread = std::move(*t);
          else unthreaded.emplace_back(m.uid, &e);
        } else {
          e.flags |= m.meta.flags;  // a keyword set on one copy shows on the Email
        }
        e.mailboxes.push_back(box.id);
      }
      // The header sections of the messages not seen before, in one query.
      if (!unthreaded.empty()) {
        std::unordered_map<int64_t, std::string> headers;
        for (auto& [uid, header] : store.headers(handle, box.name, unthreaded.front().first, unthreaded.back().first))
          headers.emplace(uid, std::move(header));
        for (auto& [uid, e] : unthreaded) {
          const auto it = headers.find(uid);
          std::string read;  // stored before headers were kept: from the file
          if (it == headers.end()) {
            read = c.service->blobs().read(e->blob);
            read.resize(header_end(read));
          }
          e->thread = thread_of_header(it != headers.end() ? it->second : read, email_id(e->blob));
          thread_cache().put(e->blob, e->thread);
        }
      }
    }
    for (const auto& [id, e] : emails) threads[e.thread].push_back(id);
    // RFC 8621 2: the Threads with an Email in each mailbox, and those with one unread there.
    std::map<int64_t, std::pair<std::set<std::string_view>, std::set<std::string_view>>> in_box;
    for (const auto& [_, e] : emails)
      for (const auto b : e.mailboxes) {
        auto& [all, unseen] = in_box[b];
        all.insert(e.thread);
        if (!(e.flags & kSeen)) unseen.insert(e.thread);
      }
    for (const auto& [b, sets] : in_box)
      thread_counts[b] = {static_cast<int64_t>(sets.first.size()), static_cast<int64_t>(sets.second.size())};
    for (auto& [_, list] : threads)
      std::stable_sort(list.begin(), list.end(), [&](const std::string& a, const std::string& b) {
        return emails.at(a).received < emails.at(b).received;
      });
  }
  const MailboxInfo* box(const std::string& id) const {
    for (const auto& b : boxes)
      if (mailbox_id(b) == id) return &b;
    return nullptr;
  }
};

// The member's View for the state it was read at: every method of a request (and of the
// next requests, until something changes) shares one instead of reading the account again.
class ViewCache {
 public:
  std::shared_ptr<const View> find(const std::string& handle, const std::string& state) {
    std::lock_guard lock(mutex_);
    const auto it = views_.find(handle);
    return it != views_.end() && it->second.first == state ? it->second.second : nullptr;
  }
  void put(const std::string& handle, const std::string& state, std::shared_ptr<const View> view) {
    std::lock_guard lock(mutex_);
    if (views_.size() >= 256 && !views_.count(handle)) views_.erase(views_.begin());
    views_[handle] = {state, std::move(view)};
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::pair<std::string, std::shared_ptr<const View>>> views_;
};

ViewCache& view_cache() {
  static ViewCache instance;
  return instance;
}

// The View of the member's mail now, with its Emails.
std::shared_ptr<const View> view_of(JmapContext& c, const std::string& handle) {
  std::shared_ptr<const View> view;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto state = mail_state(c, handle);
    if ((view = view_cache().find(handle, state))) return view;
    view = std::make_shared<const View>(c, handle, true);
    // Remembered only when nothing changed while it was read.
    if (mail_state_of(view->boxes) == state) {
      view_cache().put(handle, state, view);
      return view;
    }
  }
  return view;
}

std::vector<std::string> ids_argument(const json& args, const char* name, int max) {
  std::vector<std::string> out;
  if (!args.contains(name) || args[name].is_null()) return out;
  if (!args[name].is_array()) throw MethodError("invalidArguments", std::string(name) + " is an array of ids or null");
  if (args[name].size() > static_cast<std::size_t>(max))
    throw MethodError("requestTooLarge", "at most " + std::to_string(max) + " ids a call (maxObjectsInGet)");
  std::set<std::string> seen;
  for (const auto& id : args[name]) {
    if (!id.is_string()) throw MethodError("invalidArguments", std::string(name) + " holds strings");
    if (seen.insert(id.get<std::string>()).second) out.push_back(id.get<std::string>());  // each once
  }
  return out;
}

// RFC 8621 4.1.3 "header:Name[:asForm][:all]": {name, form, all}; nullopt when it is not one.
struct HeaderProperty {
  std::string name, form;
  bool all = false;
};
std::optional<HeaderProperty> header_property(const std::string& property) {
  static const std::set<std::string> kForms = {"asRaw", "asText", "asAddresses", "asGroupedAddresses", "asMessageIds", "asDate", "asURLs"};
  if (!property.starts_with("header:")) return std::nullopt;
  HeaderProperty h;
  auto rest = property.substr(7);
  if (rest.ends_with(":all")) {
    h.all = true;
    rest.resize(rest.size() - 4);
  }
  const auto colon = rest.find(':');
  h.name = rest.substr(0, colon);
  h.form = colon == std::string::npos ? "asRaw" : rest.substr(colon + 1);
  if (h.name.empty() || !kForms.count(h.form) ||
      std::any_of(h.name.begin(), h.name.end(), [](char c) { return c < 33 || c > 126 || c == ':'; }))
    return std::nullopt;
  // RFC 8621 4.1.2.2-4.1.2.7: the fields whose syntax is known take their own form (or
  // asRaw); any other field may be read in any form.
  static const std::map<std::string, std::set<std::string>> kFormsOf = [] {
    std::map<std::string, std::set<std::string>> m;
    for (const char* f : {"from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender", "resent-reply-to",
                          "resent-to", "resent-cc", "resent-bcc"})
      m[f] = {"asRaw", "asAddresses", "asGroupedAddresses"};
    for (const char* f : {"message-id", "in-reply-to", "references", "resent-message-id"}) m[f] = {"asRaw", "asMessageIds"};
    for (const char* f : {"date", "resent-date"}) m[f] = {"asRaw", "asDate"};
    for (const char* f : {"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive"})
      m[f] = {"asRaw", "asURLs"};
    for (const char* f : {"subject", "comments", "keywords", "list-id"}) m[f] = {"asRaw", "asText"};
    return m;
  }();
  if (const auto it = kFormsOf.find(ascii_lower(h.name)); it != kFormsOf.end() && !it->second.count(h.form)) return std::nullopt;
  return h;
}

// The raw values (after the colon, folds kept as CRLF) of every field called name, in order.
std::vector<std::string> raw_fields(std::string_view header, std::string_view name) {
  std::vector<std::string> out;
  for (auto& [field, raw] : header_fields(header))
    if (ascii_iequals(field, name)) out.push_back(std::move(raw));
  return out;
}

// Every field of a header section as (name, raw value), in order, names valid UTF-8.
std::vector<std::pair<std::string, std::string>> raw_fields_all(std::string_view header) {
  auto out = header_fields(header);
  std::erase_if(out, [](const auto& f) { return !is_valid_utf8(f.first); });
  return out;
}

json addresses(const json& list);

// RFC 8621 4.1.2: a raw value in one of the parsed forms.
json header_form(const std::string& raw, const std::string& form) {
  // Bytes that are not UTF-8 cannot go into JSON: such a value is given decoded instead.
  if (form == "asRaw") return is_valid_utf8(raw) ? json(raw) : json(decode_header_text(raw));
  if (form == "asText") return decode_header_text(raw);
  if (form == "asAddresses") return addresses(parse_address_field(raw));
  if (form == "asGroupedAddresses") {
    // Mailboxes outside any group form a group whose name is null.
    json groups = json::array(), current = {{"name", nullptr}, {"addresses", json::array()}};
    for (const auto& a : parse_address_field(raw)) {
      if (a.value("group", false)) {
        if (!current["addresses"].empty() || !current["name"].is_null()) groups.push_back(current);
        current = {{"name", a["mailbox"].is_string() ? a["mailbox"] : json(nullptr)}, {"addresses", json::array()}};
        if (a["mailbox"].is_null()) current["name"] = nullptr;
        continue;
      }
      for (auto& one : addresses(json::array({a}))) current["addresses"].push_back(one);
    }
    if (!current["addresses"].empty() || !current["name"].is_null()) groups.push_back(current);
    return groups;
  }
  if (form == "asMessageIds") {
    const auto ids = imap::message_ids(raw);
    return ids.empty() ? json(nullptr) : json(ids);
  }
  if (form == "asDate") {
    const auto when = imap::sent_date(decode_header_text(raw));
    return when ? json(utc_date(*when)) : json(nullptr);
  }
  // asURLs (RFC 2369): the <...> of a comma-separated list.
  json urls = json::array();
  for (std::size_t at = raw.find('<'); at != std::string::npos; at = raw.find('<', at + 1)) {
    const auto end = raw.find('>', at);
    if (end == std::string::npos) break;
    const auto url = raw.substr(at + 1, end - at - 1);
    if (is_valid_utf8(url)) urls.push_back(url);
  }
  return urls.empty() ? json(nullptr) : urls;
}

// The properties asked for (null: every default one); an unknown one is invalidArguments.
std::vector<std::string> properties(const json& args, const std::vector<std::string>& known, const std::vector<std::string>& defaults) {
  if (!args.contains("properties") || args["properties"].is_null()) return defaults;
  if (!args["properties"].is_array()) throw MethodError("invalidArguments", "properties is an array of names or null");
  std::vector<std::string> out;
  for (const auto& p : args["properties"]) {
    if (!p.is_string()) throw MethodError("invalidArguments", "properties holds names");
    const auto name = p.get<std::string>();
    if (std::find(known.begin(), known.end(), name) == known.end() && !(name.starts_with("header:") && header_property(name)))
      throw MethodError("invalidArguments", "unknown property " + name);
    out.push_back(name);
  }
  if (std::find(out.begin(), out.end(), "id") == out.end()) out.push_back("id");  // RFC 8620 5.1: always
  return out;
}

json mailbox_object(const View& view, const MailboxInfo& box) {
  const auto levels = mailbox_levels(box.name);
  json parent = nullptr;
  std::string name = box.name;
  if (levels.size() > 1) {
    const auto parent_name = box.name.substr(0, box.name.size() - levels.back().size() - 1);
    for (const auto& b : view.boxes)
      if (b.name == parent_name) parent = mailbox_id(b);
    if (!parent.is_null()) name = levels.back();
  }
  const auto role = role_of(box);
  const int64_t unread = box.unseen;
  // RFC 8621 2: the Threads with an Email here, and those with one unread here (trash and
  // junk aside), when the view has the Emails; else the counts of Emails.
  int64_t threads = box.messages, unread_threads = unread;
  if (view.with_emails) {
    const auto it = view.thread_counts.find(box.id);
    threads = it == view.thread_counts.end() ? 0 : it->second.first;
    unread_threads = it == view.thread_counts.end() ? 0 : it->second.second;
  }
  return {{"id", mailbox_id(box)},
          {"name", name},
          {"parentId", parent},
          {"role", role.empty() ? json(nullptr) : json(role)},
          {"sortOrder", role == "inbox" ? 0 : role.empty() ? 10 : 1},
          {"totalEmails", box.messages},
          {"unreadEmails", unread},
          {"totalThreads", threads},
          {"unreadThreads", unread_threads},
          {"myRights", {{"mayReadItems", true}, {"mayAddItems", true}, {"mayRemoveItems", true}, {"maySetSeen", true},
                        {"maySetKeywords", true}, {"mayCreateChild", true}, {"mayRename", role != "inbox"},
                        {"mayDelete", role != "inbox"}, {"maySubmit", false}}},
          {"isSubscribed", box.subscribed}};
}

json pick(const json& object, const std::vector<std::string>& props) {
  json out = json::object();
  for (const auto& p : props)
    if (object.contains(p)) out[p] = object[p];
  return out;
}

// RFC 8620 5.1 /get over a list of objects built on demand.
template <typename Build>
json standard_get(const Call& call, const std::string& state, const std::function<std::vector<std::string>()>& all_ids, int max_objects,
                  Build build, const std::function<void(const std::vector<std::string>&)>& before = nullptr) {
  json list = json::array(), not_found = json::array();
  std::vector<std::string> ids;
  if (!call.args.contains("ids") || call.args["ids"].is_null()) {
    ids = all_ids();  // only when asked for all
    if (ids.size() > static_cast<std::size_t>(max_objects))
      throw MethodError("requestTooLarge", "more than maxObjectsInGet: ask for ids");
  } else {
    ids = ids_argument(call.args, "ids", max_objects);
    for (auto& id : ids) id = resolve_id(call, id);
  }
  if (before) before(ids);  // what the objects need, read for all of them at once
  for (const auto& id : ids) {
    auto object = build(id);
    if (object.is_null()) not_found.push_back(id);
    else list.push_back(std::move(object));
  }
  return get_response(call.account_id, state, std::move(list), std::move(not_found));
}

// RFC 8620 5.2 /changes. The store keeps no log of JMAP changes; instead every state this
// server hands out is remembered with a snapshot of what it stood for (each Email's
// mailboxes and keywords, each Mailbox's properties, hashed), and /changes is the
// difference between the snapshot of sinceState and the one of now. Nothing can be missed
// that way. The last 32 states of each member are kept in memory; an older one (or one from
// before a restart) gets cannotCalculateChanges, upon which the client fetches afresh.
struct Snapshot {
  std::map<std::string, uint64_t> emails, mailboxes, mailbox_counts, threads;  // id -> hash
};

class Snapshots {
 public:
  std::shared_ptr<const Snapshot> find(const std::string& handle, const std::string& state) {
    std::lock_guard lock(mutex_);
    const auto it = by_member_.find(handle);
    if (it == by_member_.end()) return nullptr;
    for (const auto& [s, snap] : it->second)
      if (s == state) return snap;
    return nullptr;
  }
  void put(const std::string& handle, const std::string& state, std::shared_ptr<const Snapshot> snap) {
    std::lock_guard lock(mutex_);
    if (by_member_.size() >= 2000 && !by_member_.count(handle)) by_member_.erase(by_member_.begin());
    auto& list = by_member_[handle];
    for (const auto& [s, _] : list)
      if (s == state) return;
    list.emplace_back(state, std::move(snap));
    // The last 32 states, fewer for big accounts: at most 400,000 entries a member in all.
    auto entries = [&list] {
      std::size_t n = 0;
      for (const auto& [_, snap] : list) n += snap->emails.size() + snap->mailboxes.size();
      return n;
    };
    while (list.size() > 32 || (list.size() > 2 && entries() > 400000)) list.pop_front();
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::deque<std::pair<std::string, std::shared_ptr<const Snapshot>>>> by_member_;
};

Snapshots& snapshots() {
  static Snapshots instance;
  return instance;
}

// Snapshots live in this process only, and only tell "the same" from "changed": the
// standard library's string hash is enough (a collision would hide one change from /changes
// with odds of 2^-64), and it is far cheaper than a digest on every Email of every state.
uint64_t hash_of(const std::string& text) { return std::hash<std::string>{}(text); }

json mailbox_object(const View& view, const MailboxInfo& box);
std::string mailbox_id(const MailboxInfo& box);

// The state now, with its snapshot remembered: what every response that names a state uses.
std::string stated(JmapContext& c, const std::string& handle) {
  for (int attempt = 0;; ++attempt) {
    const auto state = mail_state(c, handle);
    if (snapshots().find(handle, state)) return state;
    const auto shared_view = view_of(c, handle);
    const View& view = *shared_view;
    auto snap = std::make_shared<Snapshot>();
    for (const auto& [id, e] : view.emails) {
      std::string what = std::to_string(e.flags) + "|" + e.keywords;
      auto boxes = e.mailboxes;
      std::sort(boxes.begin(), boxes.end());
      for (const auto b : boxes) what += "|" + std::to_string(b);
      snap->emails[id] = hash_of(what);
    }
    for (const auto& box : view.boxes) {
      auto object = mailbox_object(view, box);
      snap->mailbox_counts[mailbox_id(box)] = hash_of(object.dump());
      for (const char* count : {"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"}) object.erase(count);
      snap->mailboxes[mailbox_id(box)] = hash_of(object.dump());
    }
    for (const auto& [thread, ids] : view.threads) {
      std::string members;
      for (const auto& id : ids) members += id + " ";
      snap->threads[thread] = hash_of(members);
    }
    // The store may have changed while the view was read: the snapshot must be of the state.
    if (mail_state(c, handle) == state) {
      snapshots().put(handle, state, std::move(snap));
      return state;
    }
    // Changing under us three times: hand the state out unremembered (its /changes will be
    // cannotCalculateChanges) rather than remember it with data it does not stand for.
    if (attempt == 2) return state;
  }
}

struct Difference {
  json created = json::array(), updated = json::array(), destroyed = json::array();
  std::size_t count() const { return created.size() + updated.size() + destroyed.size(); }
};

// What changed from `before` to `after`, at most `max` changes; `partial` is `before` with
// just those applied (the intermediate state when there are more).
Difference difference(const std::map<std::string, uint64_t>& before, const std::map<std::string, uint64_t>& after,
                      std::size_t max, std::map<std::string, uint64_t>& partial) {
  Difference d;
  partial = before;
  for (const auto& [id, hash] : after) {
    if (d.count() >= max) return d;
    const auto it = before.find(id);
    if (it == before.end()) d.created.push_back(id);
    else if (it->second != hash) d.updated.push_back(id);
    else continue;
    partial[id] = hash;
  }
  for (const auto& [id, _] : before) {
    if (d.count() >= max) return d;
    if (!after.count(id)) {
      d.destroyed.push_back(id);
      partial.erase(id);
    }
  }
  return d;
}

// What /changes and /queryChanges both start from (RFC 8620 5.2, 5.6): the state given in
// `argument` with its snapshot, maxChanges, and the state now with its snapshot.
struct Since {
  std::string state, now;
  std::size_t max = std::numeric_limits<std::size_t>::max();
  std::shared_ptr<const Snapshot> before, after;
};

Since since_arguments(JmapContext& c, const Call& call, const char* argument) {
  Since s;
  if (!call.args.contains(argument) || !call.args[argument].is_string())
    throw MethodError("invalidArguments", std::string(argument) + " is required");
  if (call.args.contains("maxChanges") && !call.args["maxChanges"].is_null()) {
    if (!call.args["maxChanges"].is_number_unsigned() || call.args["maxChanges"].get<int64_t>() == 0)
      throw MethodError("invalidArguments", "maxChanges is a positive integer");
    s.max = call.args["maxChanges"].get<std::size_t>();
  }
  s.state = call.args[argument].get<std::string>();
  s.before = snapshots().find(call.handle, s.state);
  if (!s.before) throw MethodError("cannotCalculateChanges", "that state is not known here (any more): fetch afresh");
  s.now = stated(c, call.handle);
  s.after = snapshots().find(call.handle, s.now);
  if (!s.after) throw MethodError("serverUnavailable", "the state changed while it was read: try again");
  return s;
}

// type: "Email", "Thread" or "Mailbox".
json standard_changes(JmapContext& c, const Call& call, const std::string& type) {
  const auto [since, now, max, old_snap, new_snap] = since_arguments(c, call, "sinceState");
  const bool mailbox = type == "Mailbox";
  auto of = [&](const Snapshot& snap) -> const std::map<std::string, uint64_t>& {
    return mailbox ? snap.mailbox_counts : type == "Thread" ? snap.threads : snap.emails;
  };
  std::map<std::string, uint64_t> partial;
  auto d = difference(of(*old_snap), of(*new_snap), max, partial);
  bool more = partial != of(*new_snap);
  std::string new_state = now;
  if (more) {
    // An intermediate state standing for `partial`, for the client to go on from.
    auto snap = std::make_shared<Snapshot>(*old_snap);
    (mailbox ? snap->mailbox_counts : type == "Thread" ? snap->threads : snap->emails) = partial;
    new_state = "p" + sha256_hex(type + ":" + since + now + std::to_string(max)).substr(0, 23);
    snapshots().put(call.handle, new_state, std::move(snap));
  }
  json out = {{"accountId", call.account_id}, {"oldState", since}, {"newState", new_state}, {"hasMoreChanges", more},
              {"created", d.created}, {"updated", d.updated}, {"destroyed", d.destroyed}};
  if (mailbox) {
    // RFC 8621 2.2: when only the counts changed, say which properties those are.
    bool counts_only = d.created.empty() && d.destroyed.empty();
    for (const auto& id : d.updated) {
      const auto key = id.get<std::string>();
      const auto a = old_snap->mailboxes.find(key), b = new_snap->mailboxes.find(key);
      if (a == old_snap->mailboxes.end() || b == new_snap->mailboxes.end() || a->second != b->second) counts_only = false;
    }
    out["updatedProperties"] = counts_only && !d.updated.empty()
                                   ? json({"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"})
                                   : json(nullptr);
  }
  return out;
}

// ---- Mailbox (RFC 8621 2) ----------------------------------------------------------------

const std::vector<std::string> kMailboxProperties = {"id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails",
                                                     "totalThreads", "unreadThreads", "myRights", "isSubscribed"};

json mailbox_get(JmapContext& c, const Call& call) {
  const auto state = stated(c, call.handle);
  const auto shared_view = view_of(c, call.handle);
  const View& view = *shared_view;  // with the Emails, for the thread counts
  const auto props = properties(call.args, kMailboxProperties, kMailboxProperties);
  auto all = [&] {
    std::vector<std::string> ids;
    for (const auto& b : view.boxes) ids.push_back(mailbox_id(b));
    return ids;
  };
  return standard_get(call, state, all, c.limits.max_objects_in_get, [&](const std::string& id) {
    const auto* box = view.box(id);
    return box ? pick(mailbox_object(view, *box), props) : json(nullptr);
  });
}

json mailbox_changes(JmapContext& c, const Call& call) { return standard_changes(c, call, "Mailbox"); }

// RFC 8620 5.5: the page of a query's ids that position (negative: from the end) or anchor
// with anchorOffset, and limit, ask for; and the position the page starts at.
std::pair<json, int64_t> query_window(const Call& call, const std::vector<std::string>& all) {
  const auto total = static_cast<int64_t>(all.size());
  const json& a = call.args;
  if (a.contains("position") && !a["position"].is_null() && !a["position"].is_number_integer())
    throw MethodError("invalidArguments", "position is an integer");
  int64_t position = a.contains("position") && !a["position"].is_null() ? a["position"].get<int64_t>() : 0;
  if (a.contains("anchor") && !a["anchor"].is_null()) {
    const auto it = std::find(all.begin(), all.end(), a["anchor"].is_string() ? a["anchor"].get<std::string>() : std::string());
    if (it == all.end()) throw MethodError("anchorNotFound", "");
    if (a.contains("anchorOffset") && !a["anchorOffset"].is_null() && !a["anchorOffset"].is_number_integer())
      throw MethodError("invalidArguments", "anchorOffset is an integer");
    const int64_t offset = a.contains("anchorOffset") && !a["anchorOffset"].is_null() ? a["anchorOffset"].get<int64_t>() : 0;
    position = std::clamp<int64_t>((it - all.begin()) + offset, 0, total);
  } else if (position < 0) {
    position = std::max<int64_t>(0, total + position);
  }
  position = std::min(position, total);
  int64_t limit = total;
  if (a.contains("limit") && !a["limit"].is_null()) {
    if (!a["limit"].is_number_unsigned()) throw MethodError("invalidArguments", "limit is an unsigned integer");
    limit = a["limit"].get<int64_t>();
  }
  json ids = json::array();
  for (int64_t i = position; i < total && static_cast<int64_t>(ids.size()) < limit; ++i) ids.push_back(all[static_cast<std::size_t>(i)]);
  return {ids, position};
}

// The ids of Mailbox/query's filter and sort, in order.
std::vector<std::string> mailbox_query_ids(const View& view, const Call& call) {
  const json filter = call.args.value("filter", json(nullptr));
  std::vector<json> rows;
  for (const auto& b : view.boxes) rows.push_back(mailbox_object(view, b));
  auto matches = [&](const json& m) {
    if (!filter.is_object()) return true;
    for (const auto& [key, value] : filter.items()) {
      if (key == "parentId") {
        if (m["parentId"] != value) return false;
      } else if (key == "name") {
        if (!value.is_string() || ascii_lower(m["name"].get<std::string>()).find(ascii_lower(value.get<std::string>())) == std::string::npos)
          return false;
      } else if (key == "role") {
        if (m["role"] != value) return false;
      } else if (key == "hasAnyRole") {
        if (!value.is_boolean() || m["role"].is_null() == value.get<bool>()) return false;
      } else if (key == "isSubscribed") {
        if (m["isSubscribed"] != value) return false;
      } else {
        throw MethodError("unsupportedFilter", "Mailbox/query cannot filter by " + key);
      }
    }
    return true;
  };
  if (!filter.is_null() && !filter.is_object()) throw MethodError("invalidArguments", "filter is an object");
  std::vector<json> kept;
  for (auto& m : rows)
    if (matches(m)) kept.push_back(m);
  const json sort = call.args.contains("sort") && !call.args["sort"].is_null() ? call.args["sort"] : json::array();
  if (!sort.is_array()) throw MethodError("invalidArguments", "sort is an array");
  for (const auto& s : sort)
    if (!s.is_object() || (s.value("property", "") != "name" && s.value("property", "") != "sortOrder"))
      throw MethodError("unsupportedSort", "Mailbox/query sorts by name or sortOrder");
  std::stable_sort(kept.begin(), kept.end(), [&](const json& a, const json& b) {
    for (const auto& s : sort) {
      const auto p = s["property"].get<std::string>();
      const bool asc = s.value("isAscending", true);
      if (a[p] != b[p]) return asc ? a[p] < b[p] : b[p] < a[p];
    }
    return false;
  });
  std::vector<std::string> all;
  for (const auto& m : kept) all.push_back(m["id"].get<std::string>());
  return all;
}

json mailbox_query(JmapContext& c, const Call& call) {
  const auto state = stated(c, call.handle);  // before the data, as /get
  const View view(c, call.handle, false);
  const auto all = mailbox_query_ids(view, call);
  auto [ids, position] = query_window(call, all);
  json out = {{"accountId", call.account_id}, {"queryState", state}, {"canCalculateChanges", true},
              {"position", position}, {"ids", ids}};
  if (call.args.value("calculateTotal", false)) out["total"] = all.size();
  return out;
}

// The arguments every /set shares (RFC 8620 5.3): ifInState checked against the state now,
// create and update objects, destroy an array, within maxObjectsInSet.
struct SetArguments {
  std::string old_state;
  json create, update, destroy;
};

SetArguments set_arguments(JmapContext& c, const Call& call) {
  SetArguments a;
  a.old_state = stated(c, call.handle);
  check_if_in_state(call, a.old_state);
  auto [create, update, destroy] = set_parts(call);
  a.create = std::move(create);
  a.update = std::move(update);
  a.destroy = std::move(destroy);
  if (a.create.size() + a.update.size() + a.destroy.size() > static_cast<std::size_t>(c.limits.max_objects_in_set))
    throw MethodError("requestTooLarge", "at most " + std::to_string(c.limits.max_objects_in_set) + " objects a call (maxObjectsInSet)");
  return a;
}

// The /set response (RFC 8620 5.3): the not* maps only when something failed.
json set_response(JmapContext& c, const Call& call, const std::string& old_state, json created, json updated,
                  json destroyed, const json& not_created, const json& not_updated, const json& not_destroyed) {
  json out = {{"accountId", call.account_id}, {"oldState", old_state}, {"newState", stated(c, call.handle)},
              {"created", std::move(created)}, {"updated", std::move(updated)}, {"destroyed", std::move(destroyed)}};
  if (!not_created.empty()) out["notCreated"] = not_created;
  if (!not_updated.empty()) out["notUpdated"] = not_updated;
  if (!not_destroyed.empty()) out["notDestroyed"] = not_destroyed;
  null_when_empty(out);
  return out;
}

// RFC 8621 2 role: a special use of RFC 6154 (inbox is INBOX's alone); "" for null, nullopt
// for a value that is not a role coop knows.
std::optional<std::string> special_use_of_role(const json& role) {
  if (role.is_null()) return std::string();
  static const std::map<std::string, std::string> kUses = {
      {"archive", "\\Archive"}, {"drafts", "\\Drafts"},   {"junk", "\\Junk"},     {"sent", "\\Sent"},
      {"trash", "\\Trash"},     {"all", "\\All"},         {"flagged", "\\Flagged"}, {"important", "\\Important"}};
  if (!role.is_string()) return std::nullopt;
  const auto it = kUses.find(role.get<std::string>());
  if (it == kUses.end()) return std::nullopt;
  return it->second;
}

// RFC 8621 2.5 Mailbox/set: create (name, parentId, isSubscribed), update (the same, a move
// being a new parentId) and destroy (onDestroyRemoveEmails: without it a mailbox with mail is
// mailboxHasEmail). A name is one level: no "/" (coop's hierarchy separator).
json mailbox_set(JmapContext& c, const Call& call) {
  auto& store = c.service->mailboxes();
  const auto [old_state, create, update, destroy] = set_arguments(c, call);
  json created = json::object(), not_created = json::object(), updated = json::object(), not_updated = json::object(),
       destroyed = json::array(), not_destroyed = json::object();
  // The full name a (name, parentId) pair stands for; "" with why when it cannot be.
  auto full_name = [&](const json& name, const json& parent, std::string& why) -> std::string {
    if (!name.is_string() || name.get<std::string>().empty() || name.get<std::string>().size() > 255 ||
        name.get<std::string>().find(kMailboxSeparator) != std::string::npos) {
      why = "name is 1 to 255 characters without '/'";
      return {};
    }
    std::string full = name.get<std::string>();
    if (!parent.is_null()) {
      const View view(c, call.handle, false);
      const auto* p = parent.is_string() ? view.box(resolve_id(call, parent.get<std::string>())) : nullptr;
      if (!p) {
        why = "no such parentId";
        return {};
      }
      full = p->name + kMailboxSeparator + full;
    }
    if (const auto problem = mailbox_name_problem(full); !problem.empty()) {
      why = problem;
      return {};
    }
    return full;
  };
  for (const auto& [creation, object] : create.items()) {
    std::string why;
    if (!object.is_object()) {
      not_created[creation] = {{"type", "invalidProperties"}};
      continue;
    }
    const auto name = full_name(object.value("name", json(nullptr)), object.value("parentId", json(nullptr)), why);
    if (name.empty()) {
      not_created[creation] = {{"type", "invalidProperties"}, {"properties", {"name"}}, {"description", why}};
      continue;
    }
    if (store.name_of(call.handle, name)) {
      not_created[creation] = {{"type", "alreadyExists"}};
      continue;
    }
    // A role, when asked: one a role, never inbox (RFC 8621 2).
    std::string use;
    if (object.contains("role") && !object["role"].is_null()) {
      const auto wanted = special_use_of_role(object["role"]);
      const View view(c, call.handle, false);
      const bool taken = wanted && std::any_of(view.boxes.begin(), view.boxes.end(), [&](const MailboxInfo& b) { return b.special_use == *wanted; });
      if (!wanted || taken) {
        not_created[creation] = {{"type", "invalidProperties"}, {"properties", {"role"}},
                                 {"description", taken ? "another mailbox has that role" : "not a role this server knows"}};
        continue;
      }
      use = *wanted;
    }
    store.ensure_mailbox(call.handle, name);
    if (!use.empty()) store.set_special_use(call.handle, name, use);
    if (object.contains("isSubscribed") && object["isSubscribed"].is_boolean())
      store.set_subscribed(call.handle, name, object["isSubscribed"].get<bool>());
    const View view(c, call.handle, false);
    for (const auto& b : view.boxes)
      if (b.name == name) {
        created[creation] = mailbox_object(view, b);
        call.created_ids[creation] = mailbox_id(b);
      }
  }
  for (const auto& [given_id, patch] : update.items()) {
    const auto id = resolve_id(call, given_id);
    const View view(c, call.handle, false);
    const auto* box = view.box(id);
    if (!box) {
      not_updated[id] = {{"type", "notFound"}};
      continue;
    }
    if (!patch.is_object()) {
      not_updated[id] = {{"type", "invalidPatch"}};
      continue;
    }
    try {
      const auto current = mailbox_object(view, *box);
      // RFC 8620 5.3: name, parentId and isSubscribed change; anything else must be as it is.
      json wrong = json::array();
      for (const auto& [property, value] : patch.items())
        if (property != "name" && property != "parentId" && property != "isSubscribed" && property != "role" &&
            (!current.contains(property) || current[property] != value))
          wrong.push_back(property);
      // A new role: one a role, and INBOX keeps its own.
      std::optional<std::string> new_use;
      if (patch.contains("role") && patch["role"] != current["role"]) {
        new_use = special_use_of_role(patch["role"]);
        const bool taken = new_use && !new_use->empty() &&
                           std::any_of(view.boxes.begin(), view.boxes.end(), [&](const MailboxInfo& b) { return b.special_use == *new_use; });
        if (!new_use || taken || current["role"] == "inbox") wrong.push_back("role");
      }
      if (!wrong.empty()) {
        not_updated[id] = {{"type", "invalidProperties"}, {"properties", wrong}};
        continue;
      }
      if (patch.contains("name") || patch.contains("parentId")) {
        if (current["role"] == "inbox") {
          not_updated[id] = {{"type", "forbidden"}, {"description", "INBOX keeps its name and place (mayRename is false)"}};
          continue;
        }
        std::string why;
        const auto name = full_name(patch.value("name", current["name"]), patch.contains("parentId") ? patch["parentId"] : current["parentId"], why);
        if (name.empty()) {
          not_updated[id] = {{"type", "invalidProperties"}, {"description", why}};
          continue;
        }
        // Not under itself or one of its children.
        if (name.starts_with(box->name + kMailboxSeparator)) {
          not_updated[id] = {{"type", "invalidProperties"}, {"properties", {"parentId"}}, {"description", "a mailbox cannot go under itself"}};
          continue;
        }
        if (name != box->name) store.rename_mailbox(call.handle, box->name, name);
      }
      const auto now_named = store.name_of(call.handle, MailboxStore::key_of(box->id, box->uidvalidity)).value_or(box->name);
      if (patch.contains("isSubscribed") && patch["isSubscribed"].is_boolean())
        store.set_subscribed(call.handle, now_named, patch["isSubscribed"].get<bool>());
      if (new_use) store.set_special_use(call.handle, now_named, *new_use);
      updated[id] = nullptr;
    } catch (const Error& e) {
      not_updated[id] = {{"type", e.status() == 409 ? "alreadyExists" : "forbidden"}, {"description", e.what()}};
    }
  }
  const bool remove_emails = call.args.value("onDestroyRemoveEmails", false);
  for (const auto& d : destroy) {
    const auto id = d.is_string() ? resolve_id(call, d.get<std::string>()) : std::string();
    const View view(c, call.handle, false);
    const auto* box = view.box(id);
    if (!box) {
      not_destroyed[id] = {{"type", "notFound"}};
      continue;
    }
    if (role_of(*box) == "inbox") {  // before anything else: retrying cannot help (mayDelete is false)
      not_destroyed[id] = {{"type", "forbidden"}, {"description", "INBOX cannot be destroyed"}};
      continue;
    }
    if (box->messages > 0 && !remove_emails) {
      not_destroyed[id] = {{"type", "mailboxHasEmail"}};
      continue;
    }
    try {
      store.delete_mailbox(call.handle, box->name);
      destroyed.push_back(id);
    } catch (const Error& e) {
      not_destroyed[id] = {{"type", e.code() == "has_children" ? "mailboxHasChild" : "forbidden"}, {"description", e.what()}};
    }
  }
  return set_response(c, call, old_state, created, updated, destroyed, not_created, not_updated, not_destroyed);
}

// ---- Email (RFC 8621 4) ------------------------------------------------------------------

const std::vector<std::string> kEmailDefaults = {"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt",
                                                 "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc",
                                                 "replyTo", "subject", "sentAt", "hasAttachment", "preview", "bodyValues",
                                                 "textBody", "htmlBody", "attachments"};
const std::vector<std::string> kEmailProperties = [] {
  auto all = kEmailDefaults;
  all.push_back("bodyStructure");
  all.push_back("headers");
  return all;
}();

// RFC 8621 4.1.2.3: EmailAddress objects from the envelope's addresses.
json addresses(const json& list) {
  json out = json::array();
  if (!list.is_array()) return out;
  for (const auto& a : list) {
    if (a.value("group", false)) continue;
    const auto mailbox = a.value("mailbox", json(nullptr));
    if (!mailbox.is_string()) continue;
    const auto host = a.value("host", json(nullptr));
    out.push_back({{"name", a.value("name", json(nullptr))},
                   {"email", mailbox.get<std::string>() + (host.is_string() ? "@" + host.get<std::string>() : "")}});
  }
  return out;
}

// "<a@b> <c@d>" -> ["a@b", "c@d"]; null when there are none (RFC 8621 4.1.2.5).
json message_ids(const json& raw) {
  if (!raw.is_string()) return nullptr;
  json out = json::array();
  const auto text = raw.get<std::string>();
  for (std::size_t at = text.find('<'); at != std::string::npos; at = text.find('<', at + 1)) {
    const auto end = text.find('>', at);
    if (end == std::string::npos) break;
    out.push_back(text.substr(at + 1, end - at - 1));
  }
  return out.empty() ? json(nullptr) : out;
}

// The EmailBodyPart of a body_structure node (RFC 8621 4.1.4), with its part number.
json body_part(const json& node, const std::string& part_id, const std::string& blob) {
  const std::string type = node.value("type", "text") + "/" + node.value("subtype", "plain");
  const json params = node.value("params", json::object());
  const json disposition = node.value("disposition", json(nullptr));
  json name = nullptr;
  if (disposition.is_object() && disposition.value("params", json::object()).contains("filename"))
    name = disposition["params"]["filename"];
  else if (params.contains("name"))
    name = params["name"];
  json part = {{"partId", part_id},
               {"blobId", "G" + blob + "_" + part_id},
               {"size", node.value("size", 0)},
               {"type", type},
               {"charset", params.contains("charset") ? params["charset"] : (node.value("type", "") == "text" ? json("us-ascii") : json(nullptr))},
               {"disposition", disposition.is_object() ? disposition["type"] : json(nullptr)},
               {"name", name},
               {"cid", node.value("id", json(nullptr))},
               {"language", node.value("language", json(nullptr))},
               {"location", node.value("location", json(nullptr))}};
  // Content-ID without its angle brackets (RFC 8621 4.1.4 cid).
  if (part["cid"].is_string()) {
    auto cid = part["cid"].get<std::string>();
    if (cid.size() >= 2 && cid.front() == '<' && cid.back() == '>') part["cid"] = cid.substr(1, cid.size() - 2);
  }
  for (char& c : part["blobId"].get_ref<std::string&>())
    if (c == '.') c = '-';
  return part;
}

json structure(const json& node, const std::string& part_id, const std::string& blob) {
  if (node.contains("parts") && node["parts"].is_array()) {
    // RFC 8621 4.1.4: a multipart has no partId or blobId of its own.
    json out = {{"partId", nullptr}, {"blobId", nullptr}, {"size", node.value("size", 0)},
                {"type", node.value("type", "multipart") + "/" + node.value("subtype", "mixed")},
                {"name", nullptr}, {"charset", nullptr}, {"disposition", nullptr}, {"cid", nullptr},
                {"language", node.value("language", json(nullptr))}, {"location", node.value("location", json(nullptr))},
                {"subParts", json::array()}};
    for (std::size_t i = 0; i < node["parts"].size(); ++i)
      out["subParts"].push_back(structure(node["parts"][i], part_id.empty() ? std::to_string(i + 1) : part_id + "." + std::to_string(i + 1), blob));
    return out;
  }
  return body_part(node, part_id.empty() ? "1" : part_id, blob);
}

// RFC 8621 4.1.4's parseStructure, simplified: alternatives choose their plain or HTML
// part; other inline text parts go to both lists; everything else is an attachment.
void flatten(const json& part, const std::string& in_alternative, json& text, json& html, json& attachments) {
  if (part.contains("subParts")) {
    const bool alternative = part["type"] == "multipart/alternative";
    for (const auto& sub : part["subParts"]) flatten(sub, alternative ? "yes" : in_alternative, text, html, attachments);
    return;
  }
  const auto type = part["type"].get<std::string>();
  const bool inline_text = (type == "text/plain" || type == "text/html") && part["disposition"] != "attachment";
  if (!inline_text) {
    attachments.push_back(part);
    return;
  }
  if (in_alternative.empty()) {
    text.push_back(part);
    html.push_back(part);
  } else if (type == "text/plain") {
    text.push_back(part);
  } else {
    html.push_back(part);
  }
}


// Valid UTF-8 of at most max bytes, cut at a character's start (RFC 8621 4.2 maxBodyValueBytes).
std::pair<std::string, bool> truncated(std::string value, std::size_t max) {
  if (max == 0 || value.size() <= max) return {std::move(value), false};
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  value.resize(cut);
  return {std::move(value), true};
}

constexpr std::size_t kMaxBodyValueBytes = 16 << 20;

// What is left of this call's body values (a method call runs on one thread).
std::size_t& body_value_budget() {
  thread_local std::size_t budget = kMaxBodyValueBytes;
  return budget;
}

// row: what was summarized at delivery, when the store has it (then only preview and
// bodyValues read the message); null: the message is read and parsed here.
json email_object(JmapContext& c, const View::Email& e, const std::string& id, const std::vector<std::string>& props,
                  const json& args, const SummaryRow* row = nullptr) {
  json out = {{"id", id}};
  auto wants = [&props](const char* p) { return std::find(props.begin(), props.end(), p) != props.end(); };
  if (wants("blobId")) out["blobId"] = "G" + e.blob;
  if (wants("threadId")) out["threadId"] = e.thread;
  if (wants("mailboxIds")) {
    json boxes = json::object();
    for (const auto b : e.mailboxes) boxes["m" + std::to_string(b)] = true;
    out["mailboxIds"] = boxes;
  }
  if (wants("keywords")) out["keywords"] = keywords_of(e.flags, e.keywords);
  if (wants("size")) out["size"] = e.size;
  if (wants("receivedAt")) out["receivedAt"] = utc_date(e.received);
  static const std::vector<std::string> kParsed = {"messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc",
                                                   "replyTo", "subject", "sentAt", "hasAttachment", "preview", "bodyValues",
                                                   "textBody", "htmlBody", "attachments", "bodyStructure", "headers"};
  const bool parse = std::any_of(props.begin(), props.end(), [](const std::string& p) {
    return std::find(kParsed.begin(), kParsed.end(), p) != kParsed.end() || p.starts_with("header:");
  });
  if (!parse) return out;
  const bool summarized = row && row->header && row->sent_date;
  // What needs the body structure (else only the header and envelope are read).
  static const std::vector<std::string> kStructural = {"bodyStructure", "textBody", "htmlBody", "attachments", "hasAttachment", "bodyValues"};
  const bool structural = std::any_of(kStructural.begin(), kStructural.end(), [&](const std::string& p) { return wants(p.c_str()); });
  std::string bytes;
  if (!summarized || wants("preview") || wants("bodyValues")) bytes = c.service->blobs().read(e.blob);
  json env, body_structure;
  int64_t sent = 0;
  std::string header;
  if (summarized) {
    env = parse_json(row->envelope);
    if (structural) body_structure = parse_json(row->body_structure);
    sent = *row->sent_date;
    header = *row->header;
  } else {
    auto summary = summarize_message(bytes);
    env = std::move(summary.envelope);
    body_structure = std::move(summary.body_structure);
    sent = summary.date;
    header = bytes.substr(0, header_end(bytes));
  }
  if (wants("messageId")) out["messageId"] = message_ids(env.value("message_id", json(nullptr)));
  if (wants("inReplyTo")) out["inReplyTo"] = message_ids(env.value("in_reply_to", json(nullptr)));
  if (wants("references")) {
    const auto refs = imap::message_ids(field_of(header, "references"));
    out["references"] = refs.empty() ? json(nullptr) : json(refs);
  }
  for (const auto& [prop, field] : std::vector<std::pair<const char*, const char*>>{
           {"sender", "sender"}, {"from", "from"}, {"to", "to"}, {"cc", "cc"}, {"bcc", "bcc"}, {"replyTo", "reply_to"}})
    if (wants(prop)) {
      // IMAP's envelope fills Sender and Reply-To in from From; JMAP says what the message says.
      const bool absent = (field == std::string_view("sender") || field == std::string_view("reply_to")) &&
                          raw_fields(header, field == std::string_view("sender") ? "sender" : "reply-to").empty();
      auto list = absent ? json::array() : addresses(env.value(field, json::array()));
      out[prop] = list.empty() ? json(nullptr) : list;
    }
  if (wants("subject")) out["subject"] = env.value("subject", json(nullptr));
  if (wants("sentAt")) out["sentAt"] = sent ? json(utc_date(sent)) : json(nullptr);
  if (wants("preview")) out["preview"] = message_preview(bytes);
  for (const auto& p : props) {
    const auto h = header_property(p);
    if (!h) continue;
    const auto raws = raw_fields(header, h->name);
    if (h->all) {
      json list = json::array();
      for (const auto& raw : raws) list.push_back(header_form(raw, h->form));
      out[p] = list;
    } else {
      out[p] = raws.empty() ? json(nullptr) : header_form(raws.back(), h->form);  // the last one (RFC 8621 4.1.3)
    }
  }
  if (wants("headers")) {
    json headers = json::array();
    for (const auto& [name, raw] : raw_fields_all(header)) headers.push_back({{"name", name}, {"value", header_form(raw, "asRaw")}});
    out["headers"] = headers;
  }
  if (!structural) return out;
  const json tree = structure(body_structure, "", e.blob);
  json text = json::array(), html = json::array(), attachments = json::array();
  flatten(tree, "", text, html, attachments);
  // RFC 8621 4.1.4: an attachment a client would offer, one not shown inline.
  if (wants("hasAttachment"))
    out["hasAttachment"] = std::any_of(attachments.begin(), attachments.end(), [](const json& a) { return a["disposition"] != "inline"; });
  // RFC 8621 4.2 bodyProperties: what each EmailBodyPart says.
  static const std::vector<std::string> kPartDefaults = {"partId", "blobId", "size", "name", "type", "charset",
                                                         "disposition", "cid", "language", "location"};
  static const std::set<std::string> kPartKnown = {"partId", "blobId", "size", "headers", "name", "type", "charset",
                                                   "disposition", "cid", "language", "location", "subParts"};
  std::vector<std::string> part_props = kPartDefaults;
  if (args.contains("bodyProperties") && !args["bodyProperties"].is_null()) {
    if (!args["bodyProperties"].is_array()) throw MethodError("invalidArguments", "bodyProperties is an array of names");
    part_props.clear();
    for (const auto& p : args["bodyProperties"]) {
      if (!p.is_string() || (!kPartKnown.count(p.get<std::string>()) && !header_property(p.get<std::string>())))
        throw MethodError("invalidArguments", "unknown body property " + p.dump());
      part_props.push_back(p.get<std::string>());
    }
  }
  const bool part_headers = std::any_of(part_props.begin(), part_props.end(), [](const std::string& p) {
    return p == "headers" || p.starts_with("header:");
  });
  if (part_headers && bytes.empty()) bytes = c.service->blobs().read(e.blob);
  // Every leaf part's header section, from one parse of the message.
  const auto leaf_headers = part_headers ? part_header_sections(bytes) : std::map<std::string, std::string>();
  std::function<json(const json&)> shape = [&](const json& part) {
    json shaped = json::object();
    for (const auto& p : part_props) {
      if (part.contains(p)) {
        shaped[p] = part[p];
        continue;
      }
      if (p != "headers" && !p.starts_with("header:")) continue;
      // The part's own header, read from the message (multiparts: none kept here).
      const auto section = part["partId"].is_string() ? leaf_headers.find(part["partId"].get<std::string>()) : leaf_headers.end();
      const std::string head = section == leaf_headers.end() ? std::string() : section->second;
      if (p == "headers") {
        json list = json::array();
        for (const auto& line : raw_fields_all(head)) list.push_back({{"name", line.first}, {"value", header_form(line.second, "asRaw")}});
        shaped[p] = list;
      } else {
        const auto h = header_property(p);
        const auto raws = raw_fields(head, h->name);
        if (h->all) {
          json list = json::array();
          for (const auto& raw : raws) list.push_back(header_form(raw, h->form));
          shaped[p] = list;
        } else {
          shaped[p] = raws.empty() ? json(nullptr) : header_form(raws.back(), h->form);
        }
      }
    }
    if (part.contains("subParts")) {
      json subs = json::array();
      for (const auto& sub : part["subParts"]) subs.push_back(shape(sub));
      shaped["subParts"] = subs;
    }
    return shaped;
  };
  auto shape_all = [&](const json& list) {
    json out_list = json::array();
    for (const auto& part : list) out_list.push_back(shape(part));
    return out_list;
  };
  if (wants("bodyStructure")) out["bodyStructure"] = shape(tree);
  if (wants("textBody")) out["textBody"] = shape_all(text);
  if (wants("htmlBody")) out["htmlBody"] = shape_all(html);
  if (wants("attachments")) out["attachments"] = shape_all(attachments);
  if (wants("bodyValues")) {
    json values = json::object();
    const bool all = args.value("fetchAllBodyValues", false), want_text = args.value("fetchTextBodyValues", false),
               want_html = args.value("fetchHTMLBodyValues", false);
    const std::size_t max = args.value("maxBodyValueBytes", 0);
    if (all || want_text || want_html) {
      const auto texts = text_part_values(bytes);
      std::set<std::string> chosen;
      for (const auto& [list, on] : {std::pair{&text, want_text || all}, std::pair{&html, want_html || all}})
        if (on)
          for (const auto& p : *list) chosen.insert(p["partId"].get<std::string>());
      if (all)
        for (const auto& [part, _] : texts) chosen.insert(part);
      for (const auto& part : chosen) {
        const auto it = texts.find(part);
        if (it == texts.end()) continue;
        // A response carries at most kMaxBodyValueBytes of text in all; the rest is truncated.
        auto& budget = body_value_budget();
        const std::size_t room = budget > 0 ? budget : 1;
        auto [value, cut] = truncated(it->second, max == 0 ? room : std::min(max, room));
        budget -= std::min(budget, value.size());
        const bool problem = value.find("\xEF\xBF\xBD") != std::string::npos;
        values[part] = {{"value", value}, {"isEncodingProblem", problem}, {"isTruncated", cut}};
      }
    }
    out["bodyValues"] = values;
  }
  return out;
}

json email_get(JmapContext& c, const Call& call) {
  body_value_budget() = kMaxBodyValueBytes;
  const auto state = stated(c, call.handle);  // before the data: a change after it is a change since
  const auto shared_view = view_of(c, call.handle);
  const View& view = *shared_view;
  const auto props = properties(call.args, kEmailProperties, kEmailDefaults);
  auto all = [&] {
    std::vector<std::string> ids;
    for (const auto& [id, _] : view.emails) ids.push_back(id);
    return ids;
  };
  // What delivery summarized of the Emails asked for, a mailbox at a time, by blob.
  std::map<std::string, SummaryRow> rows;
  auto read_rows = [&](const std::vector<std::string>& ids) {
    std::map<std::string, std::vector<int64_t>> uids;  // by mailbox
    std::map<std::pair<std::string, int64_t>, std::string> blob_at;
    for (const auto& id : ids)
      if (const auto it = view.emails.find(id); it != view.emails.end()) {
        uids[it->second.first_box].push_back(it->second.uid);
        blob_at[{it->second.first_box, it->second.uid}] = it->second.blob;
      }
    for (auto& [box, list] : uids) {
      std::sort(list.begin(), list.end());
      for (auto& r : c.service->mailboxes().summary_rows(call.handle, box, list)) {
        const auto blob = blob_at.find({box, r.uid});
        if (blob != blob_at.end()) rows[blob->second] = std::move(r);
      }
    }
  };
  return standard_get(call, state, all, c.limits.max_objects_in_get, [&](const std::string& id) {
    const auto it = view.emails.find(id);
    if (it == view.emails.end()) return json(nullptr);
    const auto row = rows.find(it->second.blob);
    return email_object(c, it->second, id, props, call.args, row == rows.end() ? nullptr : &row->second);
  }, read_rows);
}

json email_changes(JmapContext& c, const Call& call) { return standard_changes(c, call, "Email"); }

// RFC 8621 4.4.1: a FilterCondition or a FilterOperator, checked against one Email. Text
// conditions read the message (its header for from/to/cc/bcc/subject, the text for body
// and text).
// What one query works out once and reads for every Email: message texts by blob, and how
// many Emails of each thread have a keyword, by keyword.
struct QueryScratch {
  std::map<std::string, MessageText> texts;
  std::map<std::string, std::map<std::string, long>> thread_keywords;
};

long thread_keyword_count(const View& view, const std::string& thread, const std::string& keyword, QueryScratch& scratch) {
  auto found = scratch.thread_keywords.find(keyword);
  if (found == scratch.thread_keywords.end()) {
    auto& counts = scratch.thread_keywords[keyword];
    for (const auto& [_, x] : view.emails)
      if (keywords_of(x.flags, x.keywords).contains(keyword)) ++counts[x.thread];
    found = scratch.thread_keywords.find(keyword);
  }
  const auto it = found->second.find(thread);
  return it == found->second.end() ? 0 : it->second;
}

bool matches(JmapContext& c, const View& view, const View::Email& e, const json& filter, int depth,
             QueryScratch& scratch) {
  if (depth > 16) throw MethodError("invalidArguments", "filters nest at most 16 deep");
  if (!filter.is_object()) throw MethodError("invalidArguments", "a filter is an object");
  if (filter.contains("operator")) {
    const auto op = filter["operator"];
    const auto& conditions = filter.value("conditions", json::array());
    if (!conditions.is_array()) throw MethodError("invalidArguments", "conditions is an array");
    if (op == "AND") {
      for (const auto& f : conditions)
        if (!matches(c, view, e, f, depth + 1, scratch)) return false;
      return true;
    }
    if (op == "OR" || op == "NOT") {
      bool any = false;
      for (const auto& f : conditions) any = any || matches(c, view, e, f, depth + 1, scratch);
      return op == "OR" ? any : !any;
    }
    throw MethodError("unsupportedFilter", "operator is AND, OR or NOT");
  }
  auto text_of = [&]() -> const MessageText& {
    auto it = scratch.texts.find(e.blob);
    if (it == scratch.texts.end()) it = scratch.texts.emplace(e.blob, message_text(c.service->blobs().read(e.blob))).first;
    return it->second;
  };
  auto contains = [](const std::string& haystack, const json& needle) {
    return needle.is_string() && ascii_lower(haystack).find(ascii_lower(needle.get<std::string>())) != std::string::npos;
  };
  for (const auto& [key, value] : filter.items()) {
    bool ok = true;
    if (key == "inMailbox") {
      const auto row = mailbox_row(value);
      ok = row && std::find(e.mailboxes.begin(), e.mailboxes.end(), *row) != e.mailboxes.end();
    } else if (key == "inMailboxOtherThan") {
      if (!value.is_array()) throw MethodError("invalidArguments", "inMailboxOtherThan is an array");
      ok = std::any_of(e.mailboxes.begin(), e.mailboxes.end(), [&](int64_t b) {
        return std::find(value.begin(), value.end(), json("m" + std::to_string(b))) == value.end();
      });
    } else if (key == "before" || key == "after") {
      const auto when = parse_utc_date(value);
      if (!when) throw MethodError("invalidArguments", key + " is a UTCDate");
      ok = key == "before" ? e.received < *when : e.received >= *when;
    } else if (key == "minSize" || key == "maxSize") {
      if (!value.is_number_unsigned()) throw MethodError("invalidArguments", key + " is an unsigned integer");
      ok = key == "minSize" ? e.size >= value.get<int64_t>() : e.size < value.get<int64_t>();
    } else if (key == "hasKeyword" || key == "notKeyword" || key == "allInThreadHaveKeyword" || key == "someInThreadHaveKeyword" ||
               key == "noneInThreadHaveKeyword") {
      if (!value.is_string()) throw MethodError("invalidArguments", key + " is a keyword");
      const auto keyword = ascii_lower(value.get<std::string>());
      auto has = [&](const View::Email& x) { return keywords_of(x.flags, x.keywords).contains(keyword); };
      if (key == "hasKeyword" || key == "notKeyword") {
        ok = has(e) == (key == "hasKeyword");
      } else {
        // RFC 8621 4.4.1: over every Email of the thread (counted once a keyword, not once an Email).
        const auto with = thread_keyword_count(view, e.thread, keyword, scratch);
        const auto members = static_cast<long>(view.threads.at(e.thread).size());
        ok = key == "allInThreadHaveKeyword" ? with == members : key == "someInThreadHaveKeyword" ? with > 0 : with == 0;
      }
    } else if (key == "hasAttachment") {
      ok = value.is_boolean() && (!text_of().attachment_names.empty()) == value.get<bool>();
    } else if (key == "subject") {
      ok = contains(text_of().subject, value);
    } else if (key == "from") {
      ok = contains(text_of().from + " " + text_of().from_name, value);
    } else if (key == "to" || key == "cc" || key == "bcc") {
      // The message's recipients, read once an Email for every condition that asks.
      auto& t = scratch.texts[e.blob + "#" + key];
      if (t.subject.empty()) {
        const auto header = c.service->blobs().read(e.blob);
        const auto env = summarize_message(header.substr(0, header_end(header))).envelope;
        t.subject = " ";
        for (const auto& a : addresses(env.value(key, json::array())))
          t.subject += a["email"].get<std::string>() + " " + (a["name"].is_string() ? a["name"].get<std::string>() : "") + " ";
      }
      ok = contains(t.subject, value);
    } else if (key == "header") {
      // RFC 8621 4.4.1: [name] (the field is there) or [name, value] (its text contains it).
      if (!value.is_array() || value.empty() || value.size() > 2 || !value[0].is_string() || (value.size() == 2 && !value[1].is_string()))
        throw MethodError("invalidArguments", "header is [name] or [name, value]");
      const auto bytes = c.service->blobs().read(e.blob);
      const auto raws = raw_fields(std::string_view(bytes).substr(0, header_end(bytes)), value[0].get<std::string>());
      ok = value.size() == 1 ? !raws.empty() : std::any_of(raws.begin(), raws.end(), [&](const std::string& raw) {
        return contains(decode_header_text(raw), value[1]);
      });
    } else if (key == "body") {
      ok = contains(text_of().body, value);
    } else if (key == "text") {
      const auto& t = text_of();
      ok = contains(t.subject + "\n" + t.from + " " + t.from_name + "\n" + t.body, value);
    } else {
      throw MethodError("unsupportedFilter", "Email/query cannot filter by " + key);
    }
    if (!ok) return false;
  }
  return true;
}

// A filter's shape, checked before any Email is looked at (an empty mailbox still says
// unsupportedFilter for a property it does not know).
void check_filter(const json& filter, int depth, int& conditions) {
  if (++conditions > 64) throw MethodError("unsupportedFilter", "at most 64 conditions a filter");
  static const std::set<std::string> kKnown = {
      "inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize", "hasKeyword", "notKeyword",
      "allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword", "hasAttachment", "subject", "from",
      "to", "cc", "bcc", "body", "text", "header"};
  if (depth > 16) throw MethodError("invalidArguments", "filters nest at most 16 deep");
  if (!filter.is_object()) throw MethodError("invalidArguments", "a filter is an object");
  if (filter.contains("operator")) {
    if (!filter.contains("conditions") || !filter["conditions"].is_array())
      throw MethodError("invalidArguments", "an operator has conditions");
    for (const auto& f : filter["conditions"]) check_filter(f, depth + 1, conditions);
    return;
  }
  for (const auto& [key, _] : filter.items())
    if (!kKnown.count(key)) throw MethodError("unsupportedFilter", "Email/query cannot filter by " + key);
}

// The ids of Email/query's filter, sort and collapseThreads, in order.
std::vector<std::string> compute_email_query(JmapContext& c, const View& view, const Call& call, const json& filter,
                                             const json& sort, bool collapse) {
  QueryScratch scratch;
  std::vector<std::pair<const std::string*, const View::Email*>> kept;
  for (const auto& [id, e] : view.emails)
    if (filter.is_null() || matches(c, view, e, filter, 0, scratch)) kept.emplace_back(&id, &e);
  std::vector<std::pair<std::string, bool>> order;  // property, ascending
  std::vector<std::string> sort_keywords;          // for the keyword sorts
  for (const auto& s : sort) {
    order.emplace_back(s["property"].get<std::string>(), s.value("isAscending", true));
    sort_keywords.push_back(s.contains("keyword") && s["keyword"].is_string() ? ascii_lower(s["keyword"].get<std::string>()) : "");
  }
  // sentAt, from and to: the SORT keys the store keeps (RFC 5256), a mailbox at a time; a
  // message stored before they were kept is read.
  std::map<std::pair<std::string, int64_t>, SortRow> sort_rows;
  if (std::any_of(order.begin(), order.end(), [](const auto& o) { return o.first == "sentAt" || o.first == "from" || o.first == "to"; }))
    for (const auto& box : view.boxes)
      for (auto& row : c.service->mailboxes().sort_rows(call.handle, box.name, 1, std::numeric_limits<int64_t>::max()))
        sort_rows[{box.name, row.uid}] = std::move(row);
  auto stored = [&](const View::Email& e) -> SortRow {
    if (const auto it = sort_rows.find({e.first_box, e.uid}); it != sort_rows.end()) return it->second;
    const auto bytes = c.service->blobs().read(e.blob);
    const auto summary = summarize_message(bytes.substr(0, header_end(bytes)));
    SortRow row;
    row.sent_date = summary.date;
    for (auto [field, out] : {std::pair{"from", &row.from_mailbox}, std::pair{"to", &row.to_mailbox}}) {
      const auto list = addresses(summary.envelope.value(field, json::array()));
      if (!list.empty()) *out = ascii_lower(list[0]["email"].get<std::string>());
    }
    return row;
  };
  // Each Email's keys, worked out once: a number or a text for each comparator.
  struct Key {
    int64_t number = 0;
    std::string text;
  };
  const std::size_t width = order.size();
  std::vector<Key> keys(kept.size() * width);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    const auto& e = *kept[i].second;
    std::optional<SortRow> row;
    for (std::size_t n = 0; n < width; ++n) {
      const auto& p = order[n].first;
      auto& k = keys[i * width + n];
      auto has = [&](const View::Email& x) { return keywords_of(x.flags, x.keywords).contains(sort_keywords[n]); };
      if (p == "receivedAt") k.number = e.received;
      else if (p == "size") k.number = e.size;
      else if (p == "subject") k.text = ascii_lower(e.subject);
      else if (p == "hasKeyword") k.number = has(e);
      else if (p == "allInThreadHaveKeyword" || p == "someInThreadHaveKeyword") {
        const auto with = thread_keyword_count(view, e.thread, sort_keywords[n], scratch);
        k.number = p == "allInThreadHaveKeyword" ? with == static_cast<long>(view.threads.at(e.thread).size()) : with > 0;
      } else {
        if (!row) row = stored(e);
        if (p == "sentAt") k.number = row->sent_date;
        else k.text = p == "from" ? row->from_mailbox : row->to_mailbox;
      }
    }
  }
  std::vector<std::size_t> index(kept.size());
  for (std::size_t i = 0; i < index.size(); ++i) index[i] = i;
  std::sort(index.begin(), index.end(), [&](std::size_t a, std::size_t b) {
    for (std::size_t n = 0; n < width; ++n) {
      const auto& ka = keys[a * width + n];
      const auto& kb = keys[b * width + n];
      const int c = ka.number != kb.number ? (ka.number < kb.number ? -1 : 1) : ka.text.compare(kb.text);
      if (c != 0) return order[n].second ? c < 0 : c > 0;
    }
    return *kept[a].first < *kept[b].first;  // the same keys: by id, so pages are stable
  });
  // RFC 8621 4.4.3 collapseThreads: the first Email of each thread in this order.
  std::set<std::string_view> seen_threads;
  std::vector<std::string> all;
  all.reserve(index.size());
  for (const auto i : index)
    if (!collapse || seen_threads.insert(kept[i].second->thread).second) all.push_back(*kept[i].first);
  return all;
}

// A query's results for a View, kept while the View is the member's latest: a client paging
// through a mailbox asks the same query again and again.
class QueryCache {
 public:
  std::shared_ptr<const std::vector<std::string>> find(const View* view, const std::string& key) {
    std::lock_guard lock(mutex_);
    for (const auto& entry : entries_)
      if (entry.view.lock().get() == view && entry.key == key) return entry.ids;
    return nullptr;
  }
  void put(const std::shared_ptr<const View>& view, std::string key, std::shared_ptr<const std::vector<std::string>> ids) {
    std::lock_guard lock(mutex_);
    std::erase_if(entries_, [](const Entry& e) { return e.view.expired(); });
    if (entries_.size() >= 64) entries_.pop_front();
    entries_.push_back({view, std::move(key), std::move(ids)});
  }

 private:
  struct Entry {
    std::weak_ptr<const View> view;
    std::string key;
    std::shared_ptr<const std::vector<std::string>> ids;
  };
  std::mutex mutex_;
  std::deque<Entry> entries_;
};

QueryCache& query_cache() {
  static QueryCache instance;
  return instance;
}

std::shared_ptr<const std::vector<std::string>> email_query_ids(JmapContext& c, const std::shared_ptr<const View>& view,
                                                                const Call& call) {
  const json filter = call.args.value("filter", json(nullptr));
  int conditions = 0;
  if (!filter.is_null()) check_filter(filter, 0, conditions);
  const json sort = call.args.contains("sort") && !call.args["sort"].is_null()
                        ? call.args["sort"]
                        : json::array({{{"property", "receivedAt"}, {"isAscending", false}}});
  if (!sort.is_array()) throw MethodError("invalidArguments", "sort is an array");
  for (const auto& s : sort)
    if (!s.is_object() || !s.contains("property") ||
        std::find(std::begin(kSortable), std::end(kSortable), s["property"]) == std::end(kSortable) ||
        (s.contains("isAscending") && !s["isAscending"].is_boolean()) ||
        (std::string_view(s["property"].is_string() ? s["property"].get_ref<const std::string&>() : "").find("Keyword") != std::string_view::npos &&
         (!s.contains("keyword") || !s["keyword"].is_string() || !imap::valid_keyword(s["keyword"].get<std::string>()))))
      throw MethodError("unsupportedSort", "Email/query sorts by receivedAt, sentAt, size, subject, from, to, or a keyword's presence");
  const json collapse = call.args.value("collapseThreads", json(false));
  if (!collapse.is_boolean() && !collapse.is_null()) throw MethodError("invalidArguments", "collapseThreads is a boolean");
  const auto key = filter.dump() + "|" + sort.dump() + "|" + (collapse == true ? "1" : "0");
  if (auto ids = query_cache().find(view.get(), key)) return ids;
  auto ids = std::make_shared<const std::vector<std::string>>(compute_email_query(c, *view, call, filter, sort, collapse == true));
  query_cache().put(view, key, ids);
  return ids;
}

json email_query(JmapContext& c, const Call& call) {
  const auto state = stated(c, call.handle);  // before the data, as /get
  const auto shared_view = view_of(c, call.handle);
  const auto found = email_query_ids(c, shared_view, call);
  const auto& all = *found;
  auto [ids, position] = query_window(call, all);
  json out = {{"accountId", call.account_id}, {"queryState", state}, {"canCalculateChanges", true},
              {"position", position}, {"ids", ids}, {"collapseThreads", call.args.value("collapseThreads", json(false)) == true}};
  if (call.args.value("calculateTotal", false)) out["total"] = all.size();
  return out;
}

// Whether a filter reads other Emails of the thread (its results then change with them).
bool thread_filter(const json& filter, int depth = 0) {
  if (!filter.is_object() || depth > 16) return false;
  if (filter.contains("conditions") && filter["conditions"].is_array())
    for (const auto& f : filter["conditions"])
      if (thread_filter(f, depth + 1)) return true;
  return filter.contains("allInThreadHaveKeyword") || filter.contains("someInThreadHaveKeyword") ||
         filter.contains("noneInThreadHaveKeyword");
}

// RFC 8620 5.6 /queryChanges, from the snapshots /changes uses: every object that changed
// since the old query state is "removed", and those of them in the results now are "added"
// at their index (RFC 8620 5.6 allows removing more than left). What did not change keeps
// its order: its sort keys did not change either, the thread-wide ones aside, whose whole
// threads count as changed. type: "Email" or "Mailbox".
json standard_query_changes(JmapContext& c, const Call& call, const std::string& type) {
  if (call.args.contains("upToId") && !call.args["upToId"].is_null() && !call.args["upToId"].is_string())
    throw MethodError("invalidArguments", "upToId is an id");
  const auto [since, now, max, old_snap, new_snap] = since_arguments(c, call, "sinceQueryState");
  const bool mailbox = type == "Mailbox";
  const auto shared_view = view_of(c, call.handle);
  const View& view = *shared_view;
  const auto all = mailbox ? mailbox_query_ids(view, call) : *email_query_ids(c, shared_view, call);
  std::set<std::string> changed;
  const auto& before = mailbox ? old_snap->mailboxes : old_snap->emails;
  const auto& after = mailbox ? new_snap->mailboxes : new_snap->emails;
  for (const auto& [id, hash] : after)
    if (const auto it = before.find(id); it == before.end() || it->second != hash) changed.insert(id);
  for (const auto& [id, _] : before)
    if (!after.count(id)) changed.insert(id);
  // Collapsed or thread-wide queries: a change to one Email may move its thread's others.
  const auto sort_text = call.args.value("sort", json(nullptr)).dump();
  const bool thread_sort = sort_text.find("InThreadHaveKeyword") != std::string::npos;
  if (!mailbox && (call.args.value("collapseThreads", json(false)) == true || thread_sort ||
                   thread_filter(call.args.value("filter", json(nullptr))))) {
    std::set<std::string> threads;
    for (const auto& id : changed)
      if (const auto it = view.emails.find(id); it != view.emails.end()) threads.insert(it->second.thread);
    for (const auto& [thread, hash] : new_snap->threads)
      if (const auto it = old_snap->threads.find(thread); it == old_snap->threads.end() || it->second != hash) threads.insert(thread);
    for (const auto& thread : threads)
      if (const auto it = view.threads.find(thread); it != view.threads.end()) changed.insert(it->second.begin(), it->second.end());
  }
  json removed = json::array(), added = json::array();
  for (const auto& id : changed) removed.push_back(id);
  for (std::size_t i = 0; i < all.size(); ++i)
    if (changed.count(all[i])) added.push_back({{"id", all[i]}, {"index", i}});
  if (removed.size() + added.size() > max) throw MethodError("tooManyChanges", "more changes than maxChanges: query afresh");
  json out = {{"accountId", call.account_id}, {"oldQueryState", since}, {"newQueryState", now}, {"removed", removed}, {"added", added}};
  if (call.args.value("calculateTotal", false)) out["total"] = all.size();
  return out;
}

json email_query_changes(JmapContext& c, const Call& call) { return standard_query_changes(c, call, "Email"); }
json mailbox_query_changes(JmapContext& c, const Call& call) { return standard_query_changes(c, call, "Mailbox"); }

// RFC 8621 4.1.1: keywords as IMAP flags and keywords; false when one is not a valid
// keyword set to true.
bool keyword_flags(const json& keywords, unsigned& flags, std::string& others) {
  flags = 0;
  others.clear();
  if (!keywords.is_object()) return false;
  for (const auto& [k, v] : keywords.items()) {
    if (v != true || !imap::valid_keyword(k)) return false;
    const auto lower = ascii_lower(k);
    if (lower == "$seen") flags |= kSeen;
    else if (lower == "$answered") flags |= kAnswered;
    else if (lower == "$flagged") flags |= kFlagged;
    else if (lower == "$draft") flags |= kDraft;
    else others += (others.empty() ? "" : " ") + lower;
  }
  return true;
}

// What Email/import and Email/set create share: a new Email's mailboxIds (creation ids
// allowed), keywords and receivedAt, checked; the error object when one is wrong.
struct NewEmail {
  std::vector<std::string> boxes;  // mailbox names
  unsigned flags = 0;
  std::string keywords;
  int64_t received = 0;
  json error;  // null when all is well
};

NewEmail new_email(JmapContext& c, const Call& call, const json& object) {
  NewEmail out;
  const View view(c, call.handle, false);
  const json boxes = object.value("mailboxIds", json(nullptr));
  if (boxes.is_object())
    for (const auto& [id, on] : boxes.items()) {
      const auto* box = view.box(resolve_id(call, id));
      if (on != true || !box) {
        out.boxes.clear();
        break;
      }
      out.boxes.push_back(box->name);
    }
  if (out.boxes.empty()) {
    out.error = {{"type", "invalidProperties"}, {"properties", {"mailboxIds"}}, {"description", "an Email is in one or more known mailboxes"}};
    return out;
  }
  if (!keyword_flags(object.value("keywords", json::object()), out.flags, out.keywords)) {
    out.error = {{"type", "invalidProperties"}, {"properties", {"keywords"}}};
    return out;
  }
  const auto received = object.contains("receivedAt") ? parse_utc_date(object["receivedAt"]) : std::optional<int64_t>(::time(nullptr));
  if (!received) out.error = {{"type", "invalidProperties"}, {"properties", {"receivedAt"}}};
  else out.received = *received;
  return out;
}

// Stores bytes as a new Email (a copy in each mailbox), within the member's quota: the
// created object RFC 8621 asks for, or the error object.
void store_email(JmapContext& c, const Call& call, const std::string& creation, const std::string& bytes, const NewEmail& e,
                 json& created, json& not_created) {
  try {
    const Recipient me{call.handle, c.service->quota_of(call.handle)};
    c.service->check_quota({me}, bytes.size() * e.boxes.size());
    for (const auto& box : e.boxes) c.service->append(call.handle, box, bytes, e.flags, e.received, nullptr, e.keywords);
    const auto sha = sha256_hex(bytes);
    const auto id = email_id(sha);
    created[creation] = {{"id", id}, {"blobId", "G" + sha}, {"threadId", thread_of_header(std::string_view(bytes).substr(0, header_end(bytes)), id)},
                         {"size", bytes.size()}};
    call.created_ids[creation] = id;
  } catch (const Error& err) {
    not_created[creation] = {{"type", err.code() == errc::kQuotaExceeded ? "overQuota" : "invalidEmail"}, {"description", err.what()}};
  }
}

// An Email/set creation the client got wrong: the SetError it answers (RFC 8620 5.3).
struct CreateError {
  json error;
};

CreateError invalid(const std::string& property, const std::string& why) {
  return {{{"type", "invalidProperties"}, {"properties", {property}}, {"description", why}}};
}

// RFC 8621 4.6: the message's Content-* fields come from its parts; a part's Content-Type and
// Content-Transfer-Encoding from its properties and the server.
void check_content_field(const std::string& name, const std::string& property, bool part) {
  const auto lower = ascii_lower(name);
  if (!part && lower.starts_with("content-")) throw invalid(property, "Content-* fields belong to body parts");
  if (part && (lower == "content-type" || lower == "content-transfer-encoding"))
    throw invalid(property, name + " comes from the part's type and the server");
}

// "headers" ([EmailHeader], raw values) or "header:Name[:asForm][:all]" of an Email or a
// body part being created, as fields; the names given, each once.
std::vector<std::string> header_fields(const std::string& property, const json& value, std::vector<ComposedField>& out, bool part) {
  std::vector<std::string> names;
  if (property == "headers") {
    if (!value.is_array()) throw invalid(property, "headers is an array of EmailHeader");
    for (const auto& h : value) {
      if (!h.is_object() || !h.contains("name") || !h["name"].is_string() || !h.contains("value") || !h["value"].is_string())
        throw invalid(property, "an EmailHeader has a name and a value");
      const auto name = h["name"].get<std::string>();
      check_content_field(name, property, part);
      names.push_back(name);
      auto raw = h["value"].get<std::string>();
      if (!raw.empty() && raw.front() == ' ') raw.erase(0, 1);
      out.push_back({name, raw, true});
    }
  } else {
    // header:Name[:asForm]; one value each (":all" takes an array of them).
    auto rest = property.substr(7);
    const bool all = rest.ends_with(":all");
    if (all) rest.resize(rest.size() - 4);
    const auto colon = rest.find(':');
    const auto name = rest.substr(0, colon);
    const auto form = colon == std::string::npos ? std::string("asRaw") : rest.substr(colon + 1);
    check_content_field(name, property, part);
    names.push_back(name);
    const json values = all ? value : json::array({value});
    if (!values.is_array()) throw invalid(property, property + " is an array");
    for (const auto& v : values) {
      if (form == "asRaw" || form == "asText") {
        if (!v.is_string()) throw invalid(property, property + " is a string");
        auto text = v.get<std::string>();
        if (form == "asRaw" && !text.empty() && text.front() == ' ') text.erase(0, 1);
        out.push_back({name, text, form == "asRaw"});
      } else if (form == "asMessageIds" || form == "asURLs") {
        if (!v.is_array()) throw invalid(property, property + " is an array of strings");
        std::string joined;
        for (const auto& x : v) {
          if (!x.is_string() || x.get<std::string>().find_first_of("<> \t\r\n") != std::string::npos)
            throw invalid(property, property + " holds strings without <>");
          joined += (joined.empty() ? "<" : ", <") + x.get<std::string>() + ">";
        }
        if (form == "asMessageIds")
          for (std::size_t at; (at = joined.find(", ")) != std::string::npos;) joined.erase(at, 1);
        out.push_back({name, joined, true});
      } else if (form == "asDate") {
        const auto when = parse_date(v);
        if (!when) throw invalid(property, property + " is a Date");
        out.push_back({name, rfc5322_date(*when), true});
      } else if (form == "asAddresses") {
        // Names are written only when they are plain ASCII that needs no encoding.
        if (!v.is_array()) throw invalid(property, property + " is an array of EmailAddress");
        std::string joined;
        for (const auto& a : v) {
          if (!a.is_object() || !a.contains("email") || !a["email"].is_string()) throw invalid(property, "an EmailAddress has an email");
          const auto email = a["email"].get<std::string>();
          if (email.find_first_of("<>,;\" \t\r\n") != std::string::npos) throw invalid(property, email + " is not an address");
          const auto name_of = a.value("name", json(nullptr));
          std::string name_text = name_of.is_string() ? name_of.get<std::string>() : "";
          if (std::any_of(name_text.begin(), name_text.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x80 || ch == '"' || ch == '\\' || ch == '\r' || ch == '\n'; }))
            name_text.clear();
          joined += (joined.empty() ? "" : ", ") + (name_text.empty() ? email : "\"" + name_text + "\" <" + email + ">");
        }
        out.push_back({name, joined, true});
      } else {
        throw invalid(property, "the form " + form + " cannot be written");
      }
    }
  }
  return names;
}

// RFC 8621 4.6: an Email creation object as message bytes: its header fields from the
// properties (parsed forms and header:Name:asForm), its body from bodyStructure or
// textBody/htmlBody/attachments, whose parts name a bodyValue (partId) or a blob (blobId).
std::string compose_email(JmapContext& c, const Call& call, const json& object) {
  static const std::set<std::string> kServerSet = {"id", "blobId", "threadId", "size", "hasAttachment", "preview"};
  ComposedMessage m;
  auto address_list = [&](const std::string& property) {
    std::vector<ComposedAddress> out;
    const json& list = object[property];
    if (list.is_null()) return out;
    if (!list.is_array()) throw invalid(property, property + " is an array of EmailAddress");
    for (const auto& a : list) {
      if (!a.is_object() || !a.contains("email") || !a["email"].is_string() || (a.contains("name") && !a["name"].is_string() && !a["name"].is_null()))
        throw invalid(property, "an EmailAddress has an email and maybe a name");
      out.push_back({a.value("name", json("")).is_string() ? a.value("name", std::string()) : std::string(), a["email"].get<std::string>()});
    }
    return out;
  };
  auto id_list = [&](const std::string& property) {
    std::vector<std::string> out;
    const json& list = object[property];
    if (list.is_null()) return out;
    if (!list.is_array()) throw invalid(property, property + " is an array of message ids");
    for (const auto& id : list) {
      if (!id.is_string() || id.get<std::string>().empty()) throw invalid(property, property + " holds message ids");
      out.push_back(id.get<std::string>());
    }
    return out;
  };
  std::set<std::string> named;  // header fields given, lower-cased: each only once
  auto claim = [&](const std::string& field, const std::string& property) {
    if (!named.insert(ascii_lower(field)).second) throw invalid(property, "the " + field + " field is given twice");
  };
  static const std::vector<std::pair<const char*, const char*>> kAddressFields = {
      {"from", "From"}, {"sender", "Sender"}, {"replyTo", "Reply-To"}, {"to", "To"}, {"cc", "Cc"}, {"bcc", "Bcc"}};
  for (const auto& [property, value] : object.items()) {
    if (kServerSet.count(property)) throw invalid(property, property + " is set by the server");
    if (property == "mailboxIds" || property == "keywords" || property == "receivedAt" || property == "bodyValues" ||
        property == "bodyStructure" || property == "textBody" || property == "htmlBody" || property == "attachments")
      continue;
    if (value.is_null()) continue;
    const auto address = std::find_if(kAddressFields.begin(), kAddressFields.end(), [&](const auto& f) { return property == f.first; });
    if (address != kAddressFields.end()) {
      claim(address->second, property);
      m.addresses.emplace_back(address->second, address_list(property));
    } else if (property == "subject") {
      if (!value.is_string()) throw invalid(property, "subject is a string");
      claim("Subject", property);
      m.subject = value.get<std::string>();
    } else if (property == "sentAt") {
      const auto when = parse_date(value);
      if (!when) throw invalid(property, "sentAt is a Date");
      claim("Date", property);
      m.date = *when;
    } else if (property == "messageId") {
      claim("Message-ID", property);
      m.message_id = id_list(property);
    } else if (property == "inReplyTo") {
      claim("In-Reply-To", property);
      m.in_reply_to = id_list(property);
    } else if (property == "references") {
      claim("References", property);
      m.references = id_list(property);
    } else if (property == "headers" || property.starts_with("header:")) {
      for (const auto& name : header_fields(property, value, m.fields, false)) claim(name, property);
    } else {
      throw invalid(property, "unknown property " + property);
    }
  }
  // The body (RFC 8621 4.6's rules): a part names its content by partId (a bodyValue, text)
  // or by blobId (a blob the member may see).
  const json values = object.value("bodyValues", json::object());
  if (!values.is_object()) throw invalid("bodyValues", "bodyValues is an object");
  for (const auto& [id, v] : values.items())
    if (!v.is_object() || !v.contains("value") || !v["value"].is_string() || v.value("isTruncated", false) != false ||
        v.value("isEncodingProblem", false) != false)
      throw invalid("bodyValues/" + id, "a body value is a whole string");
  // Parts and bytes are counted as they are gathered: a thousand parts naming one big blob
  // must not be a thousand copies of it.
  std::size_t parts = 0, bytes = 0;
  auto count = [&](std::size_t more) {
    bytes += more;
    if (++parts > 1000) throw invalid("bodyStructure", "at most 1,000 parts");
    if (bytes > c.limits.max_size_upload)
      throw CreateError{{{"type", "tooLarge"}, {"description", "the message is over maxSizeAttachmentsPerEmail"}}};
  };
  std::function<ComposedPart(const json&, const std::string&, int)> part_of = [&](const json& p, const std::string& where, int depth) {
    if (depth > 10) throw invalid(where, "parts nest at most 10 deep");
    count(0);
    if (!p.is_object()) throw invalid(where, "a part is an EmailBodyPart");
    ComposedPart part;
    const json type = p.value("type", json(nullptr));
    if (!type.is_null() && !type.is_string()) throw invalid(where, "type is a string");
    for (const char* field : {"disposition", "name", "cid", "location"})
      if (p.contains(field) && !p[field].is_null() && !p[field].is_string()) throw invalid(where, std::string(field) + " is a string");
    part.disposition = p.value("disposition", json("")).is_string() ? p.value("disposition", std::string()) : "";
    part.name = p.value("name", json("")).is_string() ? p.value("name", std::string()) : "";
    part.cid = p.value("cid", json("")).is_string() ? p.value("cid", std::string()) : "";
    part.location = p.value("location", json("")).is_string() ? p.value("location", std::string()) : "";
    if (p.contains("language") && p["language"].is_array())
      for (const auto& l : p["language"])
        if (l.is_string()) part.language += (part.language.empty() ? "" : ", ") + l.get<std::string>();
    // More of the part's header (RFC 8621 4.1.4 headers and header:Name forms).
    for (const auto& [key, value] : p.items())
      if (key == "headers" || key.starts_with("header:")) header_fields(key, value, part.fields, true);
    if (p.contains("subParts") && !p["subParts"].is_null()) {
      if (!p["subParts"].is_array()) throw invalid(where, "subParts is an array");
      part.type = type.is_string() ? ascii_lower(type.get<std::string>()) : "multipart/mixed";
      if (!part.type.starts_with("multipart/")) throw invalid(where, "a part with subParts is multipart/*");
      for (std::size_t i = 0; i < p["subParts"].size(); ++i) part.sub_parts.push_back(part_of(p["subParts"][i], where + "/subParts/" + std::to_string(i), depth + 1));
      return part;
    }
    if (p.contains("partId") && p["partId"].is_string()) {
      const auto id = p["partId"].get<std::string>();
      if (p.contains("blobId") && !p["blobId"].is_null()) throw invalid(where, "a part has a partId or a blobId, not both");
      if (!values.contains(id)) throw invalid(where, "no bodyValue " + id);
      part.type = type.is_string() ? ascii_lower(type.get<std::string>()) : "text/plain";
      if (!part.type.starts_with("text/")) throw invalid(where, "a part from bodyValues is text/*");
      count(values[id]["value"].get_ref<const std::string&>().size());
      part.content = values[id]["value"].get<std::string>();
      return part;
    }
    if (p.contains("blobId") && p["blobId"].is_string()) {
      auto content = read_blob(c, call.handle, p["blobId"].get<std::string>());
      if (!content) throw CreateError{{{"type", "blobNotFound"}, {"notFound", {p["blobId"]}}}};
      count(content->size());
      part.type = type.is_string() ? ascii_lower(type.get<std::string>()) : "application/octet-stream";
      part.content = std::move(*content);
      return part;
    }
    throw invalid(where, "a part has a partId, a blobId or subParts");
  };
  const bool structured = object.contains("bodyStructure") && !object["bodyStructure"].is_null();
  for (const char* list : {"textBody", "htmlBody", "attachments"})
    if (object.contains(list) && !object[list].is_null()) {
      if (structured) throw invalid(list, "bodyStructure or textBody, htmlBody and attachments, not both");
      if (!object[list].is_array()) throw invalid(list, std::string(list) + " is an array");
    }
  if (structured) {
    m.body = part_of(object["bodyStructure"], "bodyStructure", 0);
  } else {
    auto single = [&](const char* list, const char* want) -> std::optional<ComposedPart> {
      if (!object.contains(list) || object[list].is_null() || object[list].empty()) return std::nullopt;
      if (object[list].size() != 1) throw invalid(list, std::string(list) + " holds one part");
      auto part = part_of(object[list][0], std::string(list) + "/0", 0);
      if (part.type != want) throw invalid(list, std::string(list) + " is " + want);
      return part;
    };
    const auto text = single("textBody", "text/plain");
    const auto html = single("htmlBody", "text/html");
    ComposedPart main;
    if (text && html) {
      main.type = "multipart/alternative";
      main.sub_parts = {*text, *html};
    } else if (text || html) {
      main = text ? *text : *html;
    } else {
      main.type = "text/plain";
    }
    std::vector<ComposedPart> inline_parts, attached;
    if (object.contains("attachments") && object["attachments"].is_array())
      for (std::size_t i = 0; i < object["attachments"].size(); ++i) {
        auto part = part_of(object["attachments"][i], "attachments/" + std::to_string(i), 0);
        (html && !part.cid.empty() && part.disposition != "attachment" ? inline_parts : attached).push_back(std::move(part));
      }
    // Inline images beside the HTML they belong to (RFC 2387), then attachments around all.
    if (!inline_parts.empty()) {
      ComposedPart related;
      related.type = "multipart/related";
      related.sub_parts.push_back(std::move(main));
      for (auto& p : inline_parts) related.sub_parts.push_back(std::move(p));
      main = std::move(related);
    }
    if (!attached.empty()) {
      ComposedPart mixed;
      mixed.type = "multipart/mixed";
      mixed.sub_parts.push_back(std::move(main));
      for (auto& p : attached) {
        if (p.disposition.empty()) p.disposition = "attachment";
        mixed.sub_parts.push_back(std::move(p));
      }
      main = std::move(mixed);
    }
    m.body = std::move(main);
  }
  // RFC 5322 3.6: a Date and a Message-ID when the client gave none.
  if (!named.count("date")) m.date = ::time(nullptr);
  if (!named.count("message-id")) {
    std::string domain = "coop.invalid";
    for (const auto& [field, list] : m.addresses)
      if (field == "From" && !list.empty() && list.front().email.find('@') != std::string::npos)
        domain = list.front().email.substr(list.front().email.rfind('@') + 1);
    m.message_id = {unique_token() + "@" + domain};
  }
  try {
    return compose_message(m);
  } catch (const std::invalid_argument& e) {
    throw CreateError{{{"type", "invalidProperties"}, {"description", e.what()}}};
  }
}

// RFC 8621 4.6 Email/set: keywords and mailboxIds, whole or by patch ("keywords/$seen"),
// and destroy. Moving an Email into Junk teaches the spam filter it is spam, out of Junk
// (not to Trash) that it is ham, as an IMAP move does.
json email_set(JmapContext& c, const Call& call) {
  auto& store = c.service->mailboxes();
  const auto [old_state, create, update, destroy] = set_arguments(c, call);
  json created = json::object(), not_created = json::object(), updated = json::object(), not_updated = json::object(),
       destroyed = json::array(), not_destroyed = json::object();
  // RFC 8621 4.6: new Emails (drafts, mostly) built from their properties.
  for (const auto& [creation, object] : create.items()) {
    if (!object.is_object()) {
      not_created[creation] = {{"type", "invalidProperties"}};
      continue;
    }
    const auto wanted = new_email(c, call, object);
    if (!wanted.error.is_null()) {
      not_created[creation] = wanted.error;
      continue;
    }
    try {
      const auto bytes = compose_email(c, call, object);
      if (bytes.size() > c.limits.max_size_upload) {
        not_created[creation] = {{"type", "tooLarge"}, {"description", "the message is over maxSizeAttachmentsPerEmail"}};
        continue;
      }
      store_email(c, call, creation, bytes, wanted, created, not_created);
    } catch (const CreateError& e) {
      not_created[creation] = e.error;
    }
  }
  const auto shared_view = view_of(c, call.handle);
  const View& view = *shared_view;
  auto uid_in = [&](const MailboxInfo& box, const std::string& blob) { return store.find_blob(call.handle, box.name, blob); };
  auto key = [](const MailboxInfo& box) { return MailboxStore::key_of(box.id, box.uidvalidity); };
  // Every copy of the bytes in that mailbox (APPEND may have put the same message twice).
  auto remove_from = [&](const MailboxInfo& box, const std::string& blob) {
    for (int copies = 0; copies < 1000; ++copies) {
      const auto uid = uid_in(box, blob);
      if (!uid) return;
      store.change_flags(call.handle, key(box), {*uid}, MailboxStore::FlagChange::add, kDeleted);
      store.expunge(call.handle, key(box), std::vector<int64_t>{*uid});
    }
  };
  for (const auto& [given_id, patch] : update.items()) {
    const auto id = resolve_id(call, given_id);
    const auto it = view.emails.find(id);
    if (it == view.emails.end()) {
      not_updated[id] = {{"type", "notFound"}};
      continue;
    }
    const auto& e = it->second;
    if (!patch.is_object()) {
      not_updated[id] = {{"type", "invalidPatch"}};
      continue;
    }
    // The wanted keywords and mailboxes, from the whole value or the patch paths.
    json keywords = keywords_of(e.flags, e.keywords);
    std::set<std::string> boxes;
    for (const auto b : e.mailboxes) boxes.insert("m" + std::to_string(b));
    bool bad = false;
    std::vector<std::string> fixed;  // properties that cannot change, given back
    for (const auto& [path, value] : patch.items()) {
      // RFC 8621 4.1.1: a keyword is an IMAP atom, and only `true` is a value.
      if (path == "keywords" && value.is_object()) {
        keywords = json::object();
        for (const auto& [k, v] : value.items()) {
          if (v != true || !imap::valid_keyword(k)) bad = true;
          keywords[ascii_lower(k)] = true;
        }
      } else if (path.starts_with("keywords/") && (value == true || value.is_null())) {
        const auto k = ascii_lower(path.substr(9));
        if (!imap::valid_keyword(k)) bad = true;
        if (value.is_null()) keywords.erase(k);
        else keywords[k] = true;
      } else if (path == "mailboxIds" && value.is_object()) {
        boxes.clear();
        for (const auto& [m, v] : value.items())
          if (v == true) boxes.insert(resolve_id(call, m));
      } else if (path.starts_with("mailboxIds/") && (value == true || value.is_null())) {
        const auto box = resolve_id(call, path.substr(11));
        if (value.is_null()) boxes.erase(box);
        else boxes.insert(box);
      } else if (path.find('/') == std::string::npos && path != "keywords" && path != "mailboxIds" &&
                 (std::find(kEmailProperties.begin(), kEmailProperties.end(), path) != kEmailProperties.end() || header_property(path))) {
        fixed.push_back(path);  // checked below, all from one read of the message
      } else {
        bad = true;
      }
    }
    // RFC 8620 5.3: a whole object may come back; what cannot change must be as it is.
    if (!bad && !fixed.empty()) {
      const auto now = email_object(c, e, id, fixed, json::object());
      for (const auto& path : fixed) bad = bad || !now.contains(path) || now[path] != patch[path];
    }
    for (const auto& b : boxes) bad = bad || !view.box(b);
    if (bad || boxes.empty()) {
      not_updated[id] = {{"type", "invalidProperties"},
                         {"description", boxes.empty() ? "an Email is in at least one mailbox" : "keywords and mailboxIds only, with known mailboxes"}};
      continue;
    }
    try {
      // Keywords on every copy: IMAP flags for the system ones (RFC 8621 4.1.1).
      unsigned flags = 0;
      std::vector<std::string> others;
      for (const auto& [k, v] : keywords.items()) {
        if (k == "$seen") flags |= kSeen;
        else if (k == "$answered") flags |= kAnswered;
        else if (k == "$flagged") flags |= kFlagged;
        else if (k == "$draft") flags |= kDraft;
        else others.push_back(k);
      }
      const MailboxInfo* source = nullptr;
      for (const auto b : e.mailboxes)
        if (const auto* box = view.box("m" + std::to_string(b))) {
          source = source ? source : box;
          if (const auto uid = uid_in(*box, e.blob))
            store.change_flags(call.handle, key(*box), {*uid}, MailboxStore::FlagChange::replace, flags, others);
        }
      // Mailboxes: copies where it is new, then removal where it no longer is.
      bool was_junk = false, to_junk = false, to_trash = false;
      for (const auto b : e.mailboxes)
        if (const auto* box = view.box("m" + std::to_string(b)); box && box->special_use == "\\Junk") was_junk = true;
      for (const auto& b : boxes) {
        const auto* box = view.box(b);
        if (box->special_use == "\\Junk") to_junk = true;
        if (box->special_use == "\\Trash") to_trash = true;
        if (source && !uid_in(*box, e.blob))
          if (const auto uid = uid_in(*source, e.blob)) store.copy(call.handle, key(*source), box->name, {*uid});
      }
      for (const auto b : e.mailboxes) {
        const auto* box = view.box("m" + std::to_string(b));
        if (box && !boxes.count(mailbox_id(*box))) remove_from(*box, e.blob);
      }
      if (c.spam && was_junk != to_junk && !(was_junk && to_trash)) {
        try {
          c.spam->train(call.handle, e.blob, c.service->blobs().read(e.blob), to_junk);
        } catch (const std::exception&) {
          // Learning is best effort, as over IMAP; the update itself is done.
        }
      }
      updated[id] = nullptr;
    } catch (const Error& err) {
      not_updated[id] = {{"type", "invalidProperties"}, {"description", err.what()}};
    }
  }
  for (const auto& d : destroy) {
    const auto id = d.is_string() ? resolve_id(call, d.get<std::string>()) : std::string();
    const auto it = view.emails.find(id);
    if (it == view.emails.end()) {
      not_destroyed[id] = {{"type", "notFound"}};
      continue;
    }
    for (const auto b : it->second.mailboxes)
      if (const auto* box = view.box("m" + std::to_string(b))) remove_from(*box, it->second.blob);
    destroyed.push_back(id);
  }
  return set_response(c, call, old_state, created, updated, destroyed, not_created, not_updated, not_destroyed);
}

// RFC 8621 4.8 Email/import: uploaded blobs (message/rfc822 bytes) stored in mailboxes with
// keywords and a receivedAt; the same bytes already there are that Email, not a copy.
json email_import(JmapContext& c, const Call& call) {
  const json emails = call.args.value("emails", json::object());
  if (!emails.is_object()) throw MethodError("invalidArguments", "emails is an object");
  if (emails.size() > static_cast<std::size_t>(c.limits.max_objects_in_set))
    throw MethodError("requestTooLarge", "at most " + std::to_string(c.limits.max_objects_in_set) + " a call");
  const auto old_state = stated(c, call.handle);
  check_if_in_state(call, old_state);
  json created = json::object(), not_created = json::object();
  for (const auto& [creation, e] : emails.items()) {
    const auto blob = e.is_object() ? e.value("blobId", json(nullptr)) : json(nullptr);
    const auto parsed = blob.is_string() ? parse_blob_id(blob.get<std::string>()) : std::nullopt;
    if (!parsed || !parsed->second.empty() || !blob_visible(c, call.handle, parsed->first)) {
      not_created[creation] = {{"type", "blobNotFound"}, {"notFound", {blob}}};
      continue;
    }
    const auto wanted = new_email(c, call, e);
    if (!wanted.error.is_null()) {
      not_created[creation] = wanted.error;
      continue;
    }
    store_email(c, call, creation, c.service->blobs().read(parsed->first), wanted, created, not_created);
  }
  auto out = set_response(c, call, old_state, created, json::object(), json::array(), not_created, json::object(), json::object());
  out.erase("updated");  // Email/import answers created and notCreated only (RFC 8621 4.8)
  out.erase("destroyed");
  return out;
}

// RFC 8621 4.9 Email/parse: a message blob (an upload) read as an Email, not stored.
json email_parse(JmapContext& c, const Call& call) {
  body_value_budget() = kMaxBodyValueBytes;
  const auto ids = ids_argument(call.args, "blobIds", c.limits.max_objects_in_get);
  static const std::vector<std::string> kDefaults = {"messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc",
                                                     "replyTo", "subject", "sentAt", "hasAttachment", "preview", "bodyValues",
                                                     "textBody", "htmlBody", "attachments"};
  auto props = properties(call.args, kEmailProperties, kDefaults);
  for (const char* stored_only : {"id", "mailboxIds", "keywords", "receivedAt", "threadId"})
    props.erase(std::remove(props.begin(), props.end(), stored_only), props.end());
  json parsed = json::object(), not_parsable = json::array(), not_found = json::array();
  for (const auto& id : ids) {
    const auto blob = parse_blob_id(id);
    const std::string sha = blob && blob->second.empty() ? blob->first : std::string();
    if (sha.empty() || !blob_visible(c, call.handle, sha)) {
      not_found.push_back(id);
      continue;
    }
    View::Email e;
    e.blob = sha;
    e.size = static_cast<int64_t>(c.service->blobs().size_of(sha));
    auto email = email_object(c, e, email_id(sha), props, call.args);
    email.erase("id");
    parsed[id] = email;
  }
  return {{"accountId", call.account_id}, {"parsed", parsed}, {"notParsable", not_parsable}, {"notFound", not_found}};
}

// RFC 8621 5.1 SearchSnippet/get: the subject and a piece of the text with the filter's
// words marked (<mark>), HTML-escaped; null where nothing matched.
json search_snippet_get(JmapContext& c, const Call& call) {
  const auto ids = ids_argument(call.args, "emailIds", c.limits.max_objects_in_get);
  std::vector<std::string> terms;
  std::function<void(const json&, int)> collect = [&](const json& f, int depth) {
    if (!f.is_object() || depth > 16) return;
    if (f.contains("conditions") && f["conditions"].is_array())
      for (const auto& sub : f["conditions"]) collect(sub, depth + 1);
    for (const char* key : {"text", "subject", "body"})
      if (f.contains(key) && f[key].is_string() && !f[key].get<std::string>().empty() && terms.size() < 16)
        terms.push_back(ascii_lower(f[key].get<std::string>()));
  };
  collect(call.args.value("filter", json(nullptr)), 0);
  auto escape = [](std::string_view text) {
    std::string out;
    for (char ch : text) out += ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '&' ? "&amp;" : std::string(1, ch);
    return out;
  };
  // The text with every term marked; nullopt when none is in it.
  auto mark = [&](const std::string& text) -> std::optional<std::string> {
    const auto lower = ascii_lower(text);
    std::string out;
    std::size_t at = 0;
    bool any = false;
    while (at < text.size()) {
      std::size_t best = std::string::npos, length = 0;
      for (const auto& t : terms)
        if (const auto found = lower.find(t, at); found != std::string::npos && found < best) {
          best = found;
          length = t.size();
        }
      if (best == std::string::npos) break;
      out += escape(std::string_view(text).substr(at, best - at)) + "<mark>" + escape(std::string_view(text).substr(best, length)) + "</mark>";
      at = best + length;
      any = true;
    }
    if (!any) return std::nullopt;
    return out + escape(std::string_view(text).substr(at));
  };
  const auto shared_view = view_of(c, call.handle);
  const View& view = *shared_view;
  json list = json::array(), not_found = json::array();
  for (const auto& id : ids) {
    const auto it = view.emails.find(id);
    if (it == view.emails.end()) {
      not_found.push_back(id);
      continue;
    }
    const auto text = message_text(c.service->blobs().read(it->second.blob));
    json snippet = {{"emailId", id}, {"subject", nullptr}, {"preview", nullptr}};
    if (!terms.empty()) {
      if (auto subject = mark(text.subject)) snippet["subject"] = *subject;
      // A piece of the text around the first match, at most 255 characters before marking.
      const auto lower = ascii_lower(text.body);
      std::size_t first = std::string::npos;
      for (const auto& t : terms) first = std::min(first, lower.find(t));
      if (first != std::string::npos) {
        std::size_t start = first > 80 ? first - 80 : 0, end = std::min(text.body.size(), start + 255);
        while (start > 0 && (static_cast<unsigned char>(text.body[start]) & 0xC0) == 0x80) --start;
        while (end < text.body.size() && (static_cast<unsigned char>(text.body[end]) & 0xC0) == 0x80) ++end;
        if (auto piece = mark(text.body.substr(start, end - start))) snippet["preview"] = *piece;
      }
    }
    list.push_back(snippet);
  }
  return {{"accountId", call.account_id}, {"list", list}, {"notFound", not_found.empty() ? json(nullptr) : not_found}};
}

// ---- Thread (RFC 8621 3): the Emails of a conversation, oldest first ---------------------

json thread_get(JmapContext& c, const Call& call) {
  const auto state = stated(c, call.handle);
  const auto shared_view = view_of(c, call.handle);
  const View& view = *shared_view;
  auto all = [&] {
    std::vector<std::string> ids;
    for (const auto& [id, _] : view.threads) ids.push_back(id);
    return ids;
  };
  return standard_get(call, state, all, c.limits.max_objects_in_get, [&](const std::string& id) {
    const auto it = view.threads.find(id);
    return it == view.threads.end() ? json(nullptr) : json({{"id", id}, {"emailIds", it->second}});
  });
}

json thread_changes(JmapContext& c, const Call& call) { return standard_changes(c, call, "Thread"); }

}  // namespace

json mail_account_capabilities(const JmapLimits& limits) {
  return {{"maxMailboxesPerEmail", nullptr},
          {"maxMailboxDepth", nullptr},
          {"maxSizeMailboxName", 255},
          {"maxSizeAttachmentsPerEmail", limits.max_size_upload},
          {"emailQuerySortOptions", kSortable},
          {"mayCreateTopLevelMailbox", true}};
}

std::string mail_state(JmapContext& c, const std::string& handle) { return mail_state_of(c.service->mailboxes().mailbox_heads(handle)); }

std::string mail_state_of(const std::vector<MailboxInfo>& boxes) {
  std::string all;
  for (const auto& b : boxes)
    all += std::to_string(b.id) + ":" + std::to_string(b.uidvalidity) + ":" + std::to_string(b.highest_modseq) + ":" +
           (b.subscribed ? "s:" : "u:") + b.special_use + ":" + b.name + "\n";
  return sha256_hex(all).substr(0, 24);
}

// RFC 8620 5.4 and 6.3, RFC 8621 4.7: Email/copy and Blob/copy go from another account to
// this one. Each member has one account here and may read no other, so the source is never
// found (and the same account on both sides is invalidArguments, as 5.4 says).
json copy_from_account(JmapContext&, const Call& call) {
  const auto from = call.args.value("fromAccountId", json(nullptr));
  if (!from.is_string()) throw MethodError("invalidArguments", "fromAccountId is required");
  if (from == call.account_id) throw MethodError("invalidArguments", "fromAccountId is this account: copy within it with Email/set");
  throw MethodError("fromAccountNotFound", "");
}

const std::map<std::string, Method>& mail_methods() {
  static const std::map<std::string, Method> methods = {
      {"Mailbox/get", {kMail, mailbox_get}},     {"Mailbox/changes", {kMail, mailbox_changes}},
      {"Mailbox/query", {kMail, mailbox_query}}, {"Mailbox/queryChanges", {kMail, mailbox_query_changes}},
      {"Email/queryChanges", {kMail, email_query_changes}}, {"Email/get", {kMail, email_get}},
      {"Email/changes", {kMail, email_changes}}, {"Email/query", {kMail, email_query}},
      {"Email/set", {kMail, email_set}},         {"Email/import", {kMail, email_import}},
      {"Mailbox/set", {kMail, mailbox_set}},     {"Email/copy", {kMail, copy_from_account}},
      {"Blob/copy", {kCore, copy_from_account}},     {"Email/parse", {kMail, email_parse}},
      {"SearchSnippet/get", {kMail, search_snippet_get}},
      {"Thread/get", {kMail, thread_get}},       {"Thread/changes", {kMail, thread_changes}},
  };
  return methods;
}

}  // namespace coop::mail::jmap
