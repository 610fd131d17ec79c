// WebDAV/CalDAV/CardDAV request handling: URL layout, access control, properties, reports.
#include "workers/dav/dav_handler.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "common/auth/basic_auth.h"
#include "common/auth/member_client.h"
#include "common/control/client.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/http/date.h"
#include "common/paths.h"
#include "common/text.h"
#include "workers/dav/calendar_data.h"
#include "workers/dav/dav_xml.h"
#include "workers/dav/file_tree.h"
#include "workers/dav/scheduler.h"
#include "workers/dav/scheduling.h"
#include "workers/dav/store/dav_store.h"
#include "workers/dav/vcard_data.h"

namespace coop::dav {

namespace {

using http::Request;
using http::Response;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxResourceBytes = 1 << 20;  // max-resource-size (RFC 4791 5.2.5)
constexpr std::size_t kMaxAttendees = 1000;          // max-attendees-per-instance (RFC 4791 5.2.9)
constexpr const char* kSyncPrefix = "https://coop.invalid/sync/";
const QName kApple{"http://apple.com/ns/ical/", "calendar-color"};

QName dav(const char* name) { return {std::string(kDav), name}; }
QName cal(const char* name) { return {std::string(kCalDav), name}; }
QName card(const char* name) { return {std::string(kCardDav), name}; }
QName cs(const char* name) { return {std::string(kCalendarServer), name}; }

std::vector<std::string> segments_of(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// What a /dav/... path names.
struct Target {
  enum Kind { kRoot, kPrincipals, kPrincipal, kHome, kCollection, kResource, kNone } kind = kNone;
  std::string area;   // "calendars" or "addressbooks"
  std::string owner;  // handle
  std::string collection;
  std::string resource;
  std::string kind_name() const { return area == "calendars" ? "calendar" : "addressbook"; }
};

// path as sent (percent-encoded): a request's raw path, a Destination, an href.
Target parse_target(const std::string& path) {
  Target t;
  std::string decoded;
  if (!percent_decode(path, decoded)) return t;
  auto parts = segments_of(decoded);
  if (parts.empty() || parts[0] != "dav") return t;
  parts.erase(parts.begin());
  auto only = [](Target::Kind kind, std::string owner = {}) {
    Target target;
    target.kind = kind;
    target.owner = std::move(owner);
    return target;
  };
  if (parts.empty()) return only(Target::kRoot);
  if (parts[0] == "principals") {
    if (parts.size() == 1) return only(Target::kPrincipals);
    if (parts.size() == 2) return only(Target::kPrincipal, parts[1]);
    return t;
  }
  if (parts[0] != "calendars" && parts[0] != "addressbooks") return t;
  t.area = parts[0];
  if (parts.size() == 2) return t.kind = Target::kHome, t.owner = parts[1], t;
  if (parts.size() == 3) return t.kind = Target::kCollection, t.owner = parts[1], t.collection = parts[2], t;
  if (parts.size() == 4) {
    t.kind = Target::kResource;
    t.owner = parts[1];
    t.collection = parts[2];
    t.resource = parts[3];
  }
  return t;
}

std::string collection_href(const Collection& c) {
  return "/dav/" + std::string(c.kind == "calendar" ? "calendars" : "addressbooks") + "/" + percent_encode(c.owner) + "/" +
         percent_encode(c.name) + "/";
}

Response dav_response(int status, std::string body = {}, std::string content_type = "application/xml; charset=utf-8") {
  auto r = Response::bytes(status, std::move(body), body.empty() ? std::string() : std::move(content_type));
  // RFC 6638 2: calendar-auto-schedule, the server schedules.
  r.headers.emplace_back("DAV", "1, 3, calendar-access, calendar-auto-schedule, addressbook, extended-mkcol");
  return r;
}

Response precondition(int status, const QName& name, const std::string& message) {
  spdlog::debug("dav precondition {}: {}", clark(name), message);
  return dav_response(status, error_body(name));
}

// Property values arrive as inner XML (dav_xml.h); text properties store the text itself.
std::string xml_text(std::string_view inner) {
  std::string out;
  for (std::size_t i = 0; i < inner.size(); ++i) {
    if (inner[i] != '&') {
      out += inner[i];
      continue;
    }
    const auto end = inner.find(';', i);
    if (end == std::string_view::npos) {
      out += inner.substr(i);
      break;
    }
    const auto entity = inner.substr(i + 1, end - i - 1);
    if (entity == "amp") out += '&';
    else if (entity == "lt") out += '<';
    else if (entity == "gt") out += '>';
    else if (entity == "quot") out += '"';
    else if (entity == "apos") out += '\'';
    else if (!entity.empty() && entity[0] == '#') {
      const long code = entity.size() > 1 && entity[1] == 'x' ? std::strtol(std::string(entity.substr(2)).c_str(), nullptr, 16)
                                                              : std::strtol(std::string(entity.substr(1)).c_str(), nullptr, 10);
      if (code > 0 && code < 0x80) out += static_cast<char>(code);
    } else {
      out += inner.substr(i, end - i + 1);
    }
    i = end;
  }
  return out;
}

// The components a calendar object resource is made of (RFC 4791 4.1), which the store
// records per resource.
bool is_instance_component(const std::string& name) {
  return name == "VEVENT" || name == "VTODO" || name == "VJOURNAL" || name == "VFREEBUSY";
}

struct Identity {
  std::string handle;
  std::vector<std::string> groups;
  std::vector<std::string> emails;  // the registry's addresses of the member
};

// RFC 9110 13.1.1 / 13.1.2: If-Match and If-None-Match hold "*" or a list of entity tags.
// If-Match compares strongly (a weak tag never matches), If-None-Match weakly (W/ ignored).
bool etag_listed(std::string_view header, std::string_view etag, bool weak_comparison) {
  if (header.find_first_not_of(" \t") == std::string_view::npos) return false;
  std::size_t at = 0;
  while (at < header.size()) {
    while (at < header.size() && (header[at] == ' ' || header[at] == '\t' || header[at] == ',')) ++at;
    if (at >= header.size()) break;
    if (header[at] == '*') return true;
    bool weak = false;
    if (header.compare(at, 2, "W/") == 0) {
      weak = true;
      at += 2;
    }
    if (at >= header.size() || header[at] != '"') return false;  // not an entity tag: nothing matches
    const auto close = header.find('"', at + 1);
    if (close == std::string_view::npos) return false;
    const auto tag = header.substr(at, close - at + 1);
    if (tag == etag && (weak_comparison || !weak)) return true;
    at = close + 1;
  }
  return false;
}

}  // namespace

struct DavHandler::Impl {
  const Home& home;
  DavStore& store;
  std::string domain;

  // DAV clients send Basic credentials on every request: a verified pair is remembered for a
  // minute (by a hash, never the password), so argon2 runs once, not per request.
  auth::BasicAuthCache credentials;

  FileTree files;  // plain WebDAV, in its own database (dav-files.db)
  Scheduler scheduler;

  Impl(const Home& home, DavStore& store, std::string domain)
      : home(home), store(store), domain(domain), credentials(home, "dav"),
        files(home.database("dav-files"), home.root() / "blobs" / "dav-files"),
        scheduler(home, store, domain) {}

  static bool is_scheduling_box(const Target& t) {
    return t.area == "calendars" && (t.collection == kInboxName || t.collection == kOutboxName);
  }

  // The addresses of a calendar's owner, asked only when scheduling needs them.
  std::vector<std::string> owner_addresses(const Identity& who, const std::string& owner) {
    return scheduler.addresses_of(owner, owner == who.handle ? who.emails : std::vector<std::string>{});
  }

  // An app password may open only calendars, contacts or files: the scope asked for follows
  // the path; the principal and the roots (discovery) are "dav", which any of them opens.
  std::optional<Identity> authenticate(const Request& q) {
    const char* scope = q.path.rfind("/dav/calendars/", 0) == 0      ? "calendars"
                        : q.path.rfind("/dav/addressbooks/", 0) == 0 ? "contacts"
                        : q.path.rfind("/dav/files/", 0) == 0        ? "files"
                                                                     : "dav";
    const auto member = credentials.check_member(q, scope);
    if (!member) return std::nullopt;
    return Identity{member->handle, member->groups, member->emails};
  }

  // "owner", "read-write", "read" or "" (no access: answer 404, RFC 4918 leaks nothing).
  std::string access(const Identity& who, const Collection& c) {
    if (c.owner == who.handle) return "owner";
    std::string best;
    for (const auto& g : store.grants(c.id)) {
      const bool applies = g.grantee == "everyone" || g.grantee == "member:" + who.handle ||
                           (g.grantee.rfind("group:", 0) == 0 &&
                            std::find(who.groups.begin(), who.groups.end(), g.grantee.substr(6)) != who.groups.end());
      if (applies && (best.empty() || g.access == "read-write")) best = g.access;
    }
    return best;
  }

  std::vector<std::pair<Collection, std::string>> visible_collections(const Identity& who, const std::string& kind) {
    std::vector<std::pair<Collection, std::string>> out;
    for (const auto& c : store.collections(who.handle, kind))
      if (kind != "calendar" || c.name != kInboxName) out.emplace_back(c, "owner");
    for (auto& shared : store.shared_with(who.handle, who.groups, kind)) out.push_back(shared);
    return out;
  }

  // ---- properties ----

  std::string principal_href(const std::string& handle) { return "/dav/principals/" + percent_encode(handle) + "/"; }

  std::vector<PropValue> principal_props(const Identity& who, const std::string& handle, const std::vector<QName>& want) {
    std::vector<PropValue> out;
    for (const auto& p : want) {
      std::optional<std::string> v;
      if (p == dav("resourcetype")) v = "<D:principal/>";
      else if (p == dav("displayname")) v = xml_escape(handle);
      else if (p == dav("current-user-principal")) v = href_xml(principal_href(who.handle));
      else if (p == dav("principal-URL")) v = href_xml(principal_href(handle));
      else if (p == cal("calendar-home-set")) v = href_xml("/dav/calendars/" + percent_encode(handle) + "/");
      else if (p == card("addressbook-home-set")) v = href_xml("/dav/addressbooks/" + percent_encode(handle) + "/");
      else if (p == cal("calendar-user-address-set")) {
        // RFC 6638 2.4.1: every address the member is known by, the registered ones first.
        std::string hrefs;
        for (const auto& a : scheduler.addresses_of(handle, handle == who.handle ? who.emails : std::vector<std::string>{}))
          hrefs += href_xml("mailto:" + a);
        v = hrefs;
      }
      else if (p == cal("schedule-inbox-URL")) v = href_xml("/dav/calendars/" + percent_encode(handle) + "/" + kInboxName + "/");
      else if (p == cal("schedule-outbox-URL")) v = href_xml("/dav/calendars/" + percent_encode(handle) + "/" + kOutboxName + "/");
      else if (p == cal("calendar-user-type")) v = "INDIVIDUAL";
      else if (p == dav("principal-collection-set")) v = href_xml("/dav/principals/");
      else if (p == dav("supported-report-set")) v = "";
      out.push_back(v ? PropValue{p, v, 200} : PropValue{p, std::nullopt, 404});
    }
    return out;
  }

  std::string privileges(const std::string& level) {
    // RFC 3744 5.4 current-user-privilege-set.
    std::string out = "<D:privilege><D:read/></D:privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege>";
    if (level == "owner" || level == "read-write")
      out += "<D:privilege><D:write/></D:privilege><D:privilege><D:write-content/></D:privilege>"
             "<D:privilege><D:bind/></D:privilege><D:privilege><D:unbind/></D:privilege>";
    if (level == "owner") out += "<D:privilege><D:write-properties/></D:privilege>";
    return out;
  }

  std::vector<PropValue> collection_props(const Identity& who, const Collection& c, const std::string& level,
                                          const std::vector<QName>& want) {
    const bool calendar = c.kind == "calendar";
    const auto dead = store.dead_properties(c.id);
    std::vector<PropValue> out;
    for (const auto& p : want) {
      std::optional<std::string> v;
      const bool inbox = calendar && c.name == kInboxName;
      if (p == dav("resourcetype"))
        v = inbox ? "<D:collection/><C:schedule-inbox/>" : calendar ? "<D:collection/><C:calendar/>" : "<D:collection/><CR:addressbook/>";
      else if (inbox && p == cal("schedule-default-calendar-URL"))
        v = href_xml(collection_href(scheduler.default_calendar(c.owner)));
      else if (p == dav("displayname")) v = xml_escape(c.displayname.empty() ? c.name : c.displayname);
      else if (p == cs("getctag")) v = xml_escape(std::to_string(c.sync_seq));
      else if (p == dav("sync-token")) v = xml_escape(kSyncPrefix + std::to_string(c.id) + "/" + std::to_string(c.sync_seq));
      else if (p == dav("current-user-principal")) v = href_xml(principal_href(who.handle));
      else if (p == dav("owner")) v = href_xml(principal_href(c.owner));
      else if (p == dav("current-user-privilege-set")) v = privileges(level);
      else if (p == dav("supported-report-set")) {
        std::string reports = "<D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report>";
        reports += calendar ? "<D:supported-report><D:report><C:calendar-query/></D:report></D:supported-report>"
                              "<D:supported-report><D:report><C:calendar-multiget/></D:report></D:supported-report>"
                              "<D:supported-report><D:report><C:free-busy-query/></D:report></D:supported-report>"
                            : "<D:supported-report><D:report><CR:addressbook-query/></D:report></D:supported-report>"
                              "<D:supported-report><D:report><CR:addressbook-multiget/></D:report></D:supported-report>";
        v = reports;
      } else if (calendar && p == cal("supported-calendar-component-set")) {
        std::string comps;
        std::string list = c.components.empty() ? "VEVENT,VTODO,VJOURNAL" : c.components;
        std::size_t start = 0;
        while (start < list.size()) {
          auto end = list.find(',', start);
          if (end == std::string::npos) end = list.size();
          comps += "<C:comp name=\"" + xml_escape(list.substr(start, end - start)) + "\"/>";
          start = end + 1;
        }
        v = comps;
      } else if (calendar && p == cal("calendar-description")) v = xml_escape(c.description);
      else if (!calendar && p == card("addressbook-description")) v = xml_escape(c.description);
      else if ((calendar && p == cal("max-resource-size")) || (!calendar && p == card("max-resource-size")))
        v = std::to_string(kMaxResourceBytes);
      else if (calendar && p == cal("max-attendees-per-instance")) v = std::to_string(kMaxAttendees);
      else if (!calendar && p == card("supported-address-data"))
        v = "<CR:address-data-type content-type=\"text/vcard\" version=\"3.0\"/><CR:address-data-type content-type=\"text/vcard\" version=\"4.0\"/>";
      else if (calendar && p == kApple && !c.color.empty()) v = xml_escape(c.color);
      else if (!is_live(p))
        for (const auto& d : dead)
          if (d.ns == p.ns && d.name == p.name) v = d.value;
      out.push_back(v ? PropValue{p, v, 200} : PropValue{p, std::nullopt, 404});
    }
    return out;
  }

  // What coop computes or keeps in columns: PROPPATCH may change only displayname, the
  // descriptions and the colour among them (the rest is protected, RFC 4918 15); any other
  // property is dead and stored as sent.
  static bool is_live(const QName& p) {
    static const std::set<QName> kLive = {
        dav("resourcetype"), dav("displayname"), dav("getetag"), dav("getcontenttype"), dav("getcontentlength"),
        dav("getlastmodified"), dav("creationdate"), dav("sync-token"), dav("current-user-principal"), dav("owner"),
        dav("current-user-privilege-set"), dav("supported-report-set"), dav("lockdiscovery"), dav("supportedlock"),
        dav("principal-URL"), dav("principal-collection-set"), dav("acl"), dav("supported-privilege-set"),
        cs("getctag"), cal("supported-calendar-component-set"), cal("supported-calendar-data"), cal("max-resource-size"),
        cal("min-date-time"), cal("max-date-time"), cal("max-instances"), cal("max-attendees-per-instance"),
        cal("calendar-description"), card("addressbook-description"), card("supported-address-data"),
        card("max-resource-size"), cal("calendar-home-set"), card("addressbook-home-set"), cal("calendar-user-address-set"),
        cal("schedule-inbox-URL"), cal("schedule-outbox-URL"), cal("schedule-default-calendar-URL"), cal("calendar-user-type"),
        cal("schedule-tag"), kApple};
    return kLive.count(p) > 0;
  }

  std::vector<PropValue> resource_props(const Collection& c, const Resource& r, const std::vector<QName>& want) {
    std::vector<PropValue> out;
    for (const auto& p : want) {
      std::optional<std::string> v;
      if (p == dav("resourcetype")) v = "";
      else if (p == dav("getetag")) v = xml_escape(r.etag);
      else if (p == dav("getcontenttype")) v = c.kind == "calendar" ? "text/calendar; charset=utf-8" : "text/vcard; charset=utf-8";
      else if (p == dav("getcontentlength")) v = std::to_string(r.data.size());
      else if (p == dav("getlastmodified")) v = http::http_date(r.modified_at);
      else if (p == dav("displayname")) v = "";
      else if (c.kind == "calendar" && p == cal("schedule-tag") && !r.schedule_tag.empty()) v = xml_escape(r.schedule_tag);
      else if ((c.kind == "calendar" && p == cal("calendar-data")) || (c.kind != "calendar" && p == card("address-data")))
        v = xml_escape(r.data);
      out.push_back(v ? PropValue{p, v, 200} : PropValue{p, std::nullopt, 404});
    }
    return out;
  }

  // allprop (RFC 4918 9.1): the live properties worth sending and, for a collection, its dead ones.
  std::vector<QName> wanted(const PropfindRequest& request, const Collection* collection) {
    if (request.kind == PropfindRequest::kProp) return request.props;
    std::vector<QName> all = {dav("resourcetype"), dav("displayname"), dav("getetag"), dav("getcontenttype"),
                              dav("getlastmodified"), dav("getcontentlength")};
    if (collection) {
      all = {dav("resourcetype"), dav("displayname"), cs("getctag"), dav("sync-token")};
      for (const auto& d : store.dead_properties(collection->id)) all.push_back({d.ns, d.name});
    }
    for (const auto& extra : request.include) all.push_back(extra);
    return all;
  }

  static std::vector<PropValue> names_only(std::vector<PropValue> props) {
    std::vector<PropValue> out;
    for (auto& p : props)
      if (p.status == 200) out.push_back({p.name, std::nullopt, 200});
    return out;
  }

  // RFC 4791 5.3.2.1 / RFC 6352 6.3.2.1: no-uid-conflict names the resource that has the UID.
  Response uid_conflict(const Collection& c, const std::string& uid, const std::string& message) {
    const auto name = store.name_of_uid(c.id, uid);
    const auto condition = c.kind == "calendar" ? cal("no-uid-conflict") : card("no-uid-conflict");
    spdlog::debug("dav precondition {}: {}", clark(condition), message);
    return dav_response(409, error_body(condition, name ? std::optional<std::string>(href_xml(collection_href(c) + percent_encode(*name)))
                                                        : std::nullopt));
  }

  // RFC 6638 2.1: the outbox takes free-busy requests (POST) and holds nothing.
  static std::string outbox_href(const std::string& handle) {
    return "/dav/calendars/" + percent_encode(handle) + "/" + kOutboxName + "/";
  }

  std::vector<PropValue> outbox_props(const Identity& who, const std::vector<QName>& want) {
    std::vector<PropValue> out;
    for (const auto& p : want) {
      std::optional<std::string> v;
      if (p == dav("resourcetype")) v = "<D:collection/><C:schedule-outbox/>";
      else if (p == dav("displayname")) v = "Outbox";
      else if (p == dav("current-user-principal")) v = href_xml(principal_href(who.handle));
      else if (p == dav("owner")) v = href_xml(principal_href(who.handle));
      else if (p == dav("current-user-privilege-set"))
        v = "<D:privilege><D:read/></D:privilege><D:privilege><C:schedule-send/></D:privilege>"
            "<D:privilege><C:schedule-query-freebusy/></D:privilege>";
      else if (p == dav("supported-report-set")) v = "";
      out.push_back(v ? PropValue{p, v, 200} : PropValue{p, std::nullopt, 404});
    }
    return out;
  }

  // RFC 6638 3.2.10 and 8.3: If-Schedule-Tag-Match guards an attendee's copy against an
  // organizer's change the client has not seen.
  static bool schedule_tag_mismatch(const Request& q, const std::optional<Resource>& existing) {
    const auto wanted = q.header("if-schedule-tag-match");
    if (wanted.empty()) return false;
    return !existing || existing->schedule_tag.empty() || !etag_listed(wanted, existing->schedule_tag, false);
  }

  // ---- methods ----

  Response propfind(const Identity& who, const Request& q, const Target& t) {
    // RFC 4918 9.1: no Depth header means infinity, which collections refuse (10.2,
    // propfind-finite-depth); a resource or a principal has nothing below it anyway.
    const auto depth = ascii_lower(q.header("depth", "infinity"));
    if (depth != "0" && depth != "1" && depth != "infinity") return dav_response(400, "Depth is 0, 1 or infinity\n", "text/plain; charset=utf-8");
    const auto request = parse_propfind(q.body);  // a malformed body is 400 whatever the depth
    if (depth == "infinity" && t.kind != Target::kResource && t.kind != Target::kPrincipal)
      return precondition(403, dav("propfind-finite-depth"), "depth infinity");
    const bool names = request.kind == PropfindRequest::kPropname;
    Multistatus ms;
    auto add = [&](const std::string& href, std::vector<PropValue> props) {
      ms.add_response(href, names ? names_only(std::move(props)) : std::move(props));
    };
    const std::vector<QName> principal_all = {dav("resourcetype"), dav("displayname"), dav("current-user-principal"),
                                              cal("calendar-home-set"), card("addressbook-home-set")};
    switch (t.kind) {
      case Target::kRoot:
      case Target::kPrincipals: {
        const auto props = request.kind == PropfindRequest::kProp ? request.props : principal_all;
        std::vector<PropValue> values;
        for (const auto& p : props) {
          if (p == dav("resourcetype")) values.push_back({p, "<D:collection/>", 200});
          else if (p == dav("current-user-principal")) values.push_back({p, href_xml(principal_href(who.handle)), 200});
          else values.push_back({p, std::nullopt, 404});
        }
        add(t.kind == Target::kRoot ? "/dav/" : "/dav/principals/", values);
        if (depth == "1" && t.kind == Target::kPrincipals)
          add(principal_href(who.handle), principal_props(who, who.handle, props));
        break;
      }
      case Target::kPrincipal: {
        if (t.owner != who.handle) return dav_response(404);
        add(principal_href(t.owner), principal_props(who, t.owner, request.kind == PropfindRequest::kProp ? request.props : principal_all));
        break;
      }
      case Target::kHome: {
        if (t.owner != who.handle) return dav_response(404);
        const auto props = request.kind == PropfindRequest::kProp ? request.props : std::vector<QName>{dav("resourcetype"), dav("displayname")};
        std::vector<PropValue> values;
        for (const auto& p : props) {
          if (p == dav("resourcetype")) values.push_back({p, "<D:collection/>", 200});
          else if (p == dav("current-user-principal")) values.push_back({p, href_xml(principal_href(who.handle)), 200});
          else if (p == dav("displayname")) values.push_back({p, xml_escape(t.area), 200});
          else if (p == dav("current-user-privilege-set")) values.push_back({p, privileges("owner"), 200});
          else values.push_back({p, std::nullopt, 404});
        }
        add("/dav/" + t.area + "/" + percent_encode(t.owner) + "/", values);
        if (depth == "1") {
          for (const auto& [c, level] : visible_collections(who, t.kind_name()))
            add(collection_href(c), collection_props(who, c, level, wanted(request, &c)));
          if (t.area == "calendars") {
            // RFC 6638 2.2 and 2.1: the scheduling inbox and outbox live in the calendar home.
            const auto inbox = scheduler.inbox(who.handle);
            add(collection_href(inbox), collection_props(who, inbox, "owner", wanted(request, &inbox)));
            add(outbox_href(who.handle), outbox_props(who, request.kind == PropfindRequest::kProp ? request.props : std::vector<QName>{dav("resourcetype"), dav("displayname")}));
          }
        }
        break;
      }
      case Target::kCollection: {
        if (is_scheduling_box(t)) {
          if (t.owner != who.handle) return dav_response(404);
          if (t.collection == kOutboxName) {
            add(outbox_href(t.owner), outbox_props(who, request.kind == PropfindRequest::kProp ? request.props : std::vector<QName>{dav("resourcetype"), dav("displayname")}));
            break;
          }
          scheduler.inbox(t.owner);  // made on first use
        }
        auto c = store.collection(t.owner, t.kind_name(), t.collection);
        if (!c) return dav_response(404);
        const auto level = access(who, *c);
        if (level.empty()) return dav_response(404);
        add(collection_href(*c), collection_props(who, *c, level, wanted(request, &*c)));
        if (depth == "1")
          for (const auto& r : store.resources(c->id))
            add(collection_href(*c) + percent_encode(r.name), resource_props(*c, r, wanted(request, nullptr)));
        break;
      }
      case Target::kResource: {
        auto c = store.collection(t.owner, t.kind_name(), t.collection);
        if (!c || access(who, *c).empty()) return dav_response(404);
        auto r = store.resource(c->id, t.resource);
        if (!r) return dav_response(404);
        add(collection_href(*c) + percent_encode(r->name), resource_props(*c, *r, wanted(request, nullptr)));
        break;
      }
      case Target::kNone: return dav_response(404);
    }
    return dav_response(207, ms.str());
  }

  Response proppatch(const Identity& who, const Request& q, const Target& t) {
    if (t.kind != Target::kCollection || is_scheduling_box(t)) return dav_response(403);
    auto c = store.collection(t.owner, t.kind_name(), t.collection);
    if (!c || access(who, *c).empty()) return dav_response(404);
    if (access(who, *c) != "owner") return dav_response(403);
    const auto request = parse_proppatch(q.body);
    std::optional<std::string> name, description, color;
    std::vector<std::pair<DeadProperty, bool>> dead;
    bool failed = false;
    std::vector<PropValue> results;
    constexpr std::size_t kMaxDeadValue = 64 << 10;
    for (const auto& [p, value] : request.changes) {
      const auto text = xml_text(value.value_or(""));
      if (p == dav("displayname")) name = text;
      else if (p == cal("calendar-description") || p == card("addressbook-description")) description = text;
      else if (p == kApple) color = text;
      else if (!is_live(p) && (!value || value->size() <= kMaxDeadValue)) dead.push_back({{p.ns, p.name, value.value_or("")}, value.has_value()});
      else {
        failed = true;  // protected (RFC 4918 9.2: cannot-modify-protected-property), or too large
        results.push_back({p, std::nullopt, 403});
        continue;
      }
      results.push_back({p, std::nullopt, 200});
    }
    // RFC 4918 9.2: all or nothing; the others fail with 424 when one is refused.
    if (failed) {
      for (auto& r : results)
        if (r.status == 200) r.status = 424;
    } else {
      store.update_collection(c->id, name, description, color, dead);
    }
    Multistatus ms;
    ms.add_response(collection_href(*c), results);
    return dav_response(207, ms.str());
  }

  Response make_collection(const Identity& who, const Request& q, const Target& t, bool mkcalendar) {
    if (t.kind != Target::kCollection) return dav_response(403);
    if (t.owner != who.handle) return dav_response(403);
    if (is_scheduling_box(t)) return precondition(405, dav("resource-must-be-null"), "the scheduling inbox and outbox exist");
    const auto request = parse_mkcol(q.body);
    const bool is_calendar = mkcalendar || std::find(request.resourcetype.begin(), request.resourcetype.end(), cal("calendar")) != request.resourcetype.end();
    const bool is_addressbook = std::find(request.resourcetype.begin(), request.resourcetype.end(), card("addressbook")) != request.resourcetype.end();
    if ((t.area == "calendars" && !is_calendar) || (t.area == "addressbooks" && !is_addressbook))
      return precondition(403, dav("valid-resourcetype"), "only calendars and address books can be made here");
    std::string displayname, components;
    for (const auto& [p, value] : request.props)
      if (p == dav("displayname")) displayname = xml_text(value);
    for (const auto& comp : request.components) components += (components.empty() ? "" : ",") + comp;
    try {
      store.create_collection(who.handle, t.kind_name(), t.collection, displayname, components);
    } catch (const Error& e) {
      if (e.code() == errc::kCollectionExists) return precondition(405, dav("resource-must-be-null"), e.what());
      throw;
    }
    return dav_response(201);
  }

  Response get(const Identity& who, const Request& q, const Target& t) {
    if (t.kind != Target::kResource) return dav_response(t.kind == Target::kNone ? 404 : 405);
    auto c = store.collection(t.owner, t.kind_name(), t.collection);
    if (!c || access(who, *c).empty()) return dav_response(404);
    auto r = store.resource(c->id, t.resource);
    if (!r) return dav_response(404);
    if (const auto if_none = q.header("if-none-match"); etag_listed(if_none, r->etag, true)) {
      auto not_modified = dav_response(304);
      not_modified.headers.emplace_back("ETag", r->etag);
      return not_modified;
    }
    auto response = Response::bytes(200, r->data, c->kind == "calendar" ? "text/calendar; charset=utf-8" : "text/vcard; charset=utf-8");
    response.headers.emplace_back("ETag", r->etag);
    response.headers.emplace_back("Last-Modified", http::http_date(r->modified_at));
    if (!r->schedule_tag.empty()) response.headers.emplace_back("Schedule-Tag", r->schedule_tag);
    return response;
  }

  Response put(const Identity& who, const Request& q, const Target& t) {
    if (t.kind != Target::kResource) return dav_response(405);
    // RFC 6638 2.1.1 and 2.2.1: messages reach an inbox by scheduling only; the outbox holds nothing.
    if (is_scheduling_box(t)) return dav_response(t.owner == who.handle ? 403 : 404);
    auto c = store.collection(t.owner, t.kind_name(), t.collection);
    if (!c) return dav_response(t.owner == who.handle ? 409 : 404);
    const auto level = access(who, *c);
    if (level.empty()) return dav_response(404);
    if (level == "read") return precondition(403, dav("need-privileges"), "read-only");
    const bool calendar = c->kind == "calendar";
    if (q.body.size() > kMaxResourceBytes)
      return precondition(403, calendar ? cal("max-resource-size") : card("max-resource-size"), "too large");
    // RFC 4918 10.4 and RFC 7232: If-Match / If-None-Match: * guard against lost updates.
    const auto existing = store.resource(c->id, t.resource);
    const auto if_match = q.header("if-match"), if_none = q.header("if-none-match");
    if (!if_match.empty() && (!existing || !etag_listed(if_match, existing->etag, false))) return dav_response(412);
    if (!if_none.empty() && existing && etag_listed(if_none, existing->etag, true)) return dav_response(412);
    if (calendar && schedule_tag_mismatch(q, existing)) return dav_response(412);
    // RFC 5545 3.1.4 and RFC 6350 3.1: the data is UTF-8; anything else would be stored as
    // sent and read back differently by each client.
    if (!is_valid_utf8(q.body))
      return precondition(403, calendar ? cal("supported-calendar-data") : card("supported-address-data"), "not UTF-8");
    std::string uid, component;
    std::optional<std::pair<int64_t, int64_t>> bounds;
    try {
      if (calendar) {
        const auto object = parse_calendar_object(q.body);
        if (const auto b = instance_bounds(q.body)) bounds = std::make_pair(b->first_start, b->last_end);
        const std::string allowed = c->components.empty() ? "VEVENT,VTODO,VJOURNAL,VFREEBUSY" : c->components;
        if (("," + allowed + ",").find("," + object.component + ",") == std::string::npos)
          return precondition(403, cal("supported-calendar-component"), object.component + " not allowed here");
        uid = object.uid;
        component = object.component;
      } else {
        const auto card_data = parse_vcard(q.body);
        uid = card_data.uid;
        component = "VCARD";
      }
    } catch (const Error& e) {
      return precondition(403, calendar ? cal("valid-calendar-data") : card("valid-address-data"), e.what());
    }
    // RFC 6638 3.2: a scheduling object is stored as the server completes it (SCHEDULE-STATUS,
    // answers asked again) and then sent to the attendees or the organizer.
    std::optional<Scheduler::Change> change;
    Scheduler::Outcome outcome;
    const auto scheduled = calendar ? scheduling_object(q.body) : std::nullopt;
    // RFC 4791 5.2.9: at most kMaxAttendees attendees, so one PUT cannot fan out without end.
    if (scheduled && scheduled->attendees.size() > kMaxAttendees)
      return precondition(403, cal("max-attendees-per-instance"), "too many attendees");
    if (calendar && (scheduled || (existing && scheduling_object(existing->data)))) {
      change = Scheduler::Change{c->owner, owner_addresses(who, c->owner), existing ? std::optional(existing->data) : std::nullopt,
                                 q.body, ascii_lower(q.header("schedule-reply", "T")) != "f"};
      outcome = scheduler.prepare(*change);
    }
    const std::string& data = outcome.stored.empty() ? q.body : outcome.stored;
    std::string etag;
    try {
      etag = store.put_resource(c->id, t.resource, uid, component, data, bounds,
                                outcome.organizer ? std::optional<std::string>("\"" + random_hex(10) + "\"") : std::nullopt);
    } catch (const Error& e) {
      if (e.code() == "no-uid-conflict") return uid_conflict(*c, uid, e.what());
      throw;
    }
    if (change) scheduler.send(*change, outcome, c->id, t.resource);
    auto response = dav_response(existing ? 204 : 201);
    // RFC 4791 5.3.4: no ETag when what is stored is not what was sent.
    if (data == q.body) response.headers.emplace_back("ETag", etag);
    if (change)
      if (const auto stored = store.resource(c->id, t.resource); stored && !stored->schedule_tag.empty())
        response.headers.emplace_back("Schedule-Tag", stored->schedule_tag);
    return response;
  }

  Response remove(const Identity& who, const Request& q, const Target& t) {
    if (t.kind != Target::kResource && t.kind != Target::kCollection) return dav_response(403);
    auto c = store.collection(t.owner, t.kind_name(), t.collection);
    if (!c) return dav_response(404);
    const auto level = access(who, *c);
    if (level.empty()) return dav_response(404);
    if (t.kind == Target::kCollection) {
      if (level != "owner") return dav_response(403);
      store.remove_collection(c->id);
      return dav_response(204);
    }
    if (level == "read") return dav_response(403);
    const auto existing = store.resource(c->id, t.resource);
    if (!existing) return dav_response(404);
    const auto if_match = q.header("if-match");
    if (!if_match.empty() && !etag_listed(if_match, existing->etag, false)) return dav_response(412);
    if (c->kind == "calendar" && schedule_tag_mismatch(q, existing)) return dav_response(412);
    store.delete_resource(c->id, t.resource);
    // RFC 6638 3.2.1.3 and 3.2.2.4: deleting a scheduled event cancels or declines it.
    if (c->kind == "calendar" && c->name != kInboxName && scheduling_object(existing->data)) {
      const Scheduler::Change change{c->owner, owner_addresses(who, c->owner), existing->data, std::nullopt,
                                     ascii_lower(q.header("schedule-reply", "T")) != "f"};
      scheduler.send(change, {}, c->id, t.resource);
    }
    return dav_response(204);
  }

  Response copy_or_move(const Identity& who, const Request& q, const Target& t, bool move) {
    if (t.kind != Target::kResource) return dav_response(403);
    auto from = store.collection(t.owner, t.kind_name(), t.collection);
    if (!from || access(who, *from).empty()) return dav_response(404);
    auto r = store.resource(from->id, t.resource);
    if (!r) return dav_response(404);
    std::string destination = q.header("destination");
    if (const auto scheme = destination.find("://"); scheme != std::string::npos) {
      const auto path = destination.find('/', scheme + 3);
      destination = path == std::string::npos ? "/" : destination.substr(path);
    }
    const auto d = parse_target(destination);
    if (d.kind != Target::kResource || d.area != t.area) return dav_response(502);
    auto to = store.collection(d.owner, d.kind_name(), d.collection);
    if (!to || access(who, *to).empty()) return dav_response(409);
    const auto to_level = access(who, *to);
    if (to_level == "read" || (move && access(who, *from) == "read")) return dav_response(403);
    const bool exists = store.resource(to->id, d.resource).has_value();
    if (exists && q.header("overwrite", "T") == "F") return dav_response(412);
    if (to->id == from->id && d.resource == t.resource) return dav_response(403);  // RFC 4918 9.8.5: onto itself
    try {
      std::optional<std::pair<int64_t, int64_t>> bounds;
      if (from->kind == "calendar")
        if (const auto b = instance_bounds(r->data)) bounds = std::make_pair(b->first_start, b->last_end);
      // A MOVE is one change: the resource leaves its name as it takes the new one, so a
      // rename inside a calendar keeps its UID without clashing with itself.
      if (move) store.move_resource(from->id, t.resource, to->id, d.resource, bounds);
      else store.put_resource(to->id, d.resource, r->uid, r->component, r->data, bounds);
    } catch (const Error& e) {
      if (e.code() == "no-uid-conflict") return uid_conflict(*to, r->uid, e.what());
      throw;
    }
    return dav_response(exists ? 204 : 201);
  }

  // RFC 6638 5.1: a free-busy request to the member's own outbox.
  Response post(const Identity& who, const Request& q, const Target& t) {
    if (t.kind != Target::kCollection || t.area != "calendars" || t.collection != kOutboxName) return dav_response(405);
    if (t.owner != who.handle) return dav_response(404);
    if (q.body.size() > kMaxResourceBytes) return precondition(403, cal("max-resource-size"), "too large");
    if (!is_valid_utf8(q.body)) return precondition(403, cal("supported-calendar-data"), "not UTF-8");
    try {
      return dav_response(200, scheduler.free_busy(who.handle, owner_addresses(who, who.handle), q.body));
    } catch (const Error& e) {
      if (e.code() == "valid-scheduling-message" || e.code() == "organizer-allowed")
        return precondition(403, cal(e.code().c_str()), e.what());
      throw;
    }
  }

  Response report(const Identity& who, const Request& q, const Target& t) {
    if (t.kind != Target::kCollection) return precondition(403, dav("supported-report"), "reports run on collections");
    auto c = store.collection(t.owner, t.kind_name(), t.collection);
    if (!c || access(who, *c).empty()) return dav_response(404);
    Report report;
    try {
      report = parse_report(q.body);
    } catch (const Error& e) {
      // RFC 4791 7.5 / 9.7: what the filter asks that coop cannot do is named, not ignored.
      if (e.code() == errc::kUnsupportedCollation) return precondition(403, c->kind == "calendar" ? cal("supported-collation") : card("supported-collation"), e.what());
      if (e.code() == errc::kUnsupportedFilter) return precondition(403, c->kind == "calendar" ? cal("supported-filter") : card("supported-filter"), e.what());
      throw;
    }
    const bool calendar = c->kind == "calendar";
    // <C:calendar-data><C:expand/> or <C:limit-recurrence-set/> (RFC 4791 9.6.5, 9.6.6): the
    // data each response carries, rewritten for the range.
    std::optional<std::pair<int64_t, int64_t>> expand, limit;
    try {
      if (report.expand) {
        if (!report.expand->start || !report.expand->end) return precondition(403, cal("valid-filter"), "expand needs start and end");
        expand.emplace(parse_ical_utc(*report.expand->start), parse_ical_utc(*report.expand->end));
      }
      if (report.limit_recurrence_set) {
        if (!report.limit_recurrence_set->start || !report.limit_recurrence_set->end)
          return precondition(403, cal("valid-filter"), "limit-recurrence-set needs start and end");
        limit.emplace(parse_ical_utc(*report.limit_recurrence_set->start), parse_ical_utc(*report.limit_recurrence_set->end));
      }
    } catch (const Error&) {
      return precondition(403, cal("valid-filter"), "bad time range in calendar-data");
    }
    const auto props_of = [&](const Resource& r, const std::vector<QName>& wanted_props) {
      if (!calendar || (!expand && !limit)) return resource_props(*c, r, wanted_props);
      Resource shown = r;
      shown.data = expand ? expand_instances(r.data, expand->first, expand->second)
                          : limit_recurrence_set(r.data, limit->first, limit->second);
      return resource_props(*c, shown, wanted_props);
    };
    const auto data_prop = calendar ? cal("calendar-data") : card("address-data");
    auto props = report.props;
    if (props.empty()) props = {dav("getetag"), data_prop};
    Multistatus ms;
    const auto href_of = [&](const std::string& name) { return collection_href(*c) + percent_encode(name); };

    switch (report.kind) {
      case Report::kCalendarMultiget:
      case Report::kAddressbookMultiget: {
        for (const auto& href : report.hrefs) {
          const auto target = parse_target(href);
          std::optional<Resource> r;
          if (target.kind == Target::kResource && target.owner == c->owner && target.collection == c->name)
            r = store.resource(c->id, target.resource);
          if (r) ms.add_response(href, props_of(*r, props));
          else ms.add_status_response(href, 404);
        }
        break;
      }
      case Report::kCalendarQuery: {
        if (!calendar) return precondition(403, dav("supported-report"), "not a calendar");
        std::optional<int64_t> start, end;
        try {
          if (report.time_range_start) start = parse_ical_utc(*report.time_range_start);
          if (report.time_range_end) end = parse_ical_utc(*report.time_range_end);
        } catch (const Error&) {
          return precondition(403, cal("valid-filter"), "bad time-range");
        }
        // The stored instance bounds pick the candidates; the whole filter, evaluated with
        // libical, decides for those only.
        try {
          for (const auto& r : (start || end) ? store.time_range_candidates(c->id, start, end) : store.resources(c->id)) {
            if (is_instance_component(report.comp_filter) && r.component != report.comp_filter) continue;
            if (report.calendar_filter ? !matches_filter(r.data, *report.calendar_filter) : ((start || end) && !overlaps_time_range(r.data, start, end)))
              continue;
            ms.add_response(href_of(r.name), props_of(r, props));
          }
        } catch (const Error& e) {
          if (e.code() == errc::kBadTimeRange) return precondition(403, cal("valid-filter"), e.what());
          throw;
        }
        break;
      }
      case Report::kAddressbookQuery: {
        if (calendar) return precondition(403, dav("supported-report"), "not an address book");
        int count = 0;
        for (const auto& r : store.resources(c->id)) {
          if (report.limit && count >= *report.limit) break;
          bool keep = report.text_matches.empty();
          if (!keep) {
            const auto parsed = parse_vcard(r.data);
            keep = !report.anyof;
            for (const auto& m : report.text_matches) {
              const bool hit = text_match(parsed, m.property, m.text, m.match_type.empty() ? "contains" : m.match_type, m.negate);
              keep = report.anyof ? (keep || hit) : (keep && hit);
            }
          }
          if (!keep) continue;
          ms.add_response(href_of(r.name), resource_props(*c, r, props));
          ++count;
        }
        break;
      }
      case Report::kSyncCollection: {
        // RFC 6578 3.2: the token names the collection and its change sequence.
        int64_t since = 0;
        if (!report.sync_token.empty()) {
          const std::string prefix = kSyncPrefix + std::to_string(c->id) + "/";
          if (report.sync_token.rfind(prefix, 0) != 0) return precondition(403, dav("valid-sync-token"), "unknown token");
          try {
            since = std::stoll(report.sync_token.substr(prefix.size()));
          } catch (...) {
            return precondition(403, dav("valid-sync-token"), "bad token");
          }
          if (since > c->sync_seq) return precondition(403, dav("valid-sync-token"), "token from the future");
        }
        auto [changes, now] = store.changes_since(c->id, since);
        for (const auto& change : changes) {
          if (change.deleted) {
            if (since > 0) ms.add_status_response(href_of(change.name), 404);
            continue;
          }
          if (auto r = store.resource(c->id, change.name)) ms.add_response(href_of(r->name), resource_props(*c, *r, props));
        }
        ms.set_sync_token(kSyncPrefix + std::to_string(c->id) + "/" + std::to_string(now));
        break;
      }
      case Report::kFreeBusyQuery: {
        if (!calendar || !report.time_range_start || !report.time_range_end)
          return precondition(403, cal("valid-filter"), "free-busy-query needs a time-range");
        std::vector<std::string> objects;
        for (const auto& r : store.resources(c->id)) objects.push_back(r.data);
        return Response::bytes(200, free_busy(objects, parse_ical_utc(*report.time_range_start), parse_ical_utc(*report.time_range_end)),
                               "text/calendar; charset=utf-8");
      }
      case Report::kUnknown: return precondition(403, dav("supported-report"), "unsupported report");
    }
    return dav_response(207, ms.str());
  }
};

DavHandler::DavHandler(const Home& home, DavStore& store, std::string domain)
    : impl_(std::make_unique<Impl>(home, store, std::move(domain))) {}

DavHandler::~DavHandler() = default;

std::filesystem::path DavHandler::spool_dir() const { return impl_->files.spool_dir(); }

http::Router::BodyAdmission DavHandler::admit_upload(const Request& head, uint64_t max_file_bytes) {
  http::Router::BodyAdmission admission;
  const auto refuse = [&](int status, const std::string& text) {
    auto r = dav_response(status, text + "\n", "text/plain; charset=utf-8");
    if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"coop\", charset=\"UTF-8\"");
    admission.refusal = std::move(r);
    return admission;
  };
  std::optional<Identity> who;
  try {
    who = impl_->authenticate(head);
  } catch (const Error& e) {
    return refuse(e.status() >= 500 ? 503 : e.status(), e.what());
  }
  if (!who) return refuse(401, "authentication required");
  // What the member may still store: the registry's quota less their files (RFC 4331's
  // quota; 507 when nothing is left), and [workers.dav] max_file_bytes when set.
  uint64_t allowed = max_file_bytes ? max_file_bytes : std::numeric_limits<uint64_t>::max();
  try {
    control::Client member(impl_->home.socket("member"));
    const auto found = member.get("/v1/members/" + percent_encode(who->handle));
    found.throw_if_error();
    const auto quota = found.json().value("quota_bytes", int64_t{0});
    if (quota > 0) {
      const auto used = impl_->files.usage(who->handle);
      if (used >= quota) return refuse(507, "over quota: " + std::to_string(used) + " of " + std::to_string(quota) + " bytes used");
      allowed = std::min<uint64_t>(allowed, static_cast<uint64_t>(quota - used));
    }
  } catch (const Error& e) {
    return refuse(503, std::string("the member registry is not answering: ") + e.what());
  }
  const auto declared = head.header("content-length");
  if (!declared.empty() && std::strtoull(declared.c_str(), nullptr, 10) > allowed)
    return refuse(max_file_bytes && std::strtoull(declared.c_str(), nullptr, 10) > max_file_bytes ? 413 : 507,
                  "the file is larger than what may be stored (" + std::to_string(allowed) + " bytes)");
  admission.max_bytes = allowed;
  return admission;
}

std::string DavHandler::receive_imip(const std::string& handle, const std::string& from, bool authenticated,
                                     const std::string& calendar) {
  return impl_->scheduler.receive_imip(handle, from, authenticated, calendar);
}

void DavHandler::forget(const std::string& handle) {
  if (handle.empty()) impl_->credentials.forget_all();
  else impl_->credentials.forget(handle);
}

Response DavHandler::handle(const Request& q) {
  // RFC 6764 5: the well-known URIs lead to the DAV root.
  if (q.path == "/.well-known/caldav" || q.path == "/.well-known/carddav") {
    auto r = dav_response(301);
    r.headers.emplace_back("Location", "/dav/");
    return r;
  }
  if (q.method == "OPTIONS" && q.path.rfind("/dav/files/", 0) == 0) {
    // Only the plain WebDAV tree supports locking (DAV class 2).
    auto r = Response::bytes(200, "", "");
    r.headers.emplace_back("DAV", "1, 2, 3");
    r.headers.emplace_back("Allow", "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK");
    return r;
  }
  if (q.method == "OPTIONS") {
    auto r = dav_response(200);
    r.headers.emplace_back("Allow", "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, REPORT, COPY, MOVE, POST");
    return r;
  }
  std::optional<Identity> who;
  try {
    who = impl_->authenticate(q);
  } catch (const Error& e) {
    // A suspended member (403) or a throttled client (429) hears so; the registry being
    // down goes up as 503.
    if (e.status() >= 500) throw;
    return dav_response(e.status(), std::string(e.what()) + "\n", "text/plain; charset=utf-8");
  }
  if (!who) {
    auto r = dav_response(401, "authentication required\n", "text/plain; charset=utf-8");
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"coop\", charset=\"UTF-8\"");
    return r;
  }
  const auto target = parse_target(q.raw_path());
  try {
    if (q.path.rfind("/dav/files/", 0) == 0) return impl_->files.handle(q, who->handle);
    if (q.method == "PROPFIND") return impl_->propfind(*who, q, target);
    if (q.method == "PROPPATCH") return impl_->proppatch(*who, q, target);
    if (q.method == "MKCALENDAR") return impl_->make_collection(*who, q, target, true);
    if (q.method == "MKCOL") return impl_->make_collection(*who, q, target, false);
    if (q.method == "GET" || q.method == "HEAD") return impl_->get(*who, q, target);
    if (q.method == "PUT") return impl_->put(*who, q, target);
    if (q.method == "DELETE") return impl_->remove(*who, q, target);
    if (q.method == "COPY" || q.method == "MOVE") return impl_->copy_or_move(*who, q, target, q.method == "MOVE");
    if (q.method == "REPORT") return impl_->report(*who, q, target);
    if (q.method == "POST") return impl_->post(*who, q, target);
  } catch (const Error& e) {
    // The one place DAV answers a refusal: its status and why (bad_xml 400, body_too_large
    // 413...); a failure of ours goes up, to be logged and answered without detail.
    if (e.status() >= 500) throw;
    return dav_response(e.status(), std::string(e.what()) + "\n", "text/plain; charset=utf-8");
  }
  return dav_response(405);
}

}  // namespace coop::dav
