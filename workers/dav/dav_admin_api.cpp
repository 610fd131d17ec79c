// Thin control handlers over the DAV store.
#include "workers/dav/dav_admin_api.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/worker_runtime.h"
#include "workers/dav/calendar_data.h"
#include "workers/dav/ical_bundle.h"
#include "workers/dav/scheduler.h"
#include "workers/dav/store/dav_store.h"
#include "workers/dav/vcard_data.h"

namespace coop::dav {

namespace {

using control::Request;
using control::Response;
using nlohmann::json;

std::string kind_of(const std::string& area) {
  if (area == "calendar" || area == "addressbook") return area;
  throw Error(errc::kUsage, "kind is calendar or addressbook", 400);
}

void check_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' &&
                  std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; });
  if (!ok) throw Error(errc::kUsage, "a collection name is 1-64 of a-z, 0-9, '-', '_', '.'", 400);
}

json collection_json(DavStore& store, const Collection& c) {
  json shares = json::array();
  for (const auto& g : store.grants(c.id)) shares.push_back({{"with", g.grantee}, {"access", g.access}});
  const std::string area = c.kind == "calendar" ? "calendars" : "addressbooks";
  return {{"kind", c.kind}, {"owner", c.owner}, {"name", c.name}, {"displayname", c.displayname},
          {"components", c.components}, {"group", c.group}, {"objects", store.resources(c.id).size()},
          {"path", "/dav/" + area + "/" + c.owner + "/" + c.name + "/"}, {"shares", shares}};
}

Collection find(DavStore& store, const Request& q) {
  auto c = store.collection(q.param("owner"), kind_of(q.param("kind")), q.param("name"));
  if (!c) throw Error(errc::kNoSuchCollection, "no " + q.param("kind") + " " + q.param("owner") + "/" + q.param("name"), 404);
  return *c;
}

std::string resource_name(const std::string& uid, const std::string& extension) {
  std::string name;
  for (char c : uid) name += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
  return name.substr(0, 120) + extension;
}

}  // namespace

void add_dav_admin_routes(WorkerRuntime& runtime, DavStore& store) {
  auto& r = runtime.router();
  auto run = runtime.blocking_runner();

  r.add_blocking("GET", "/v1/collections", run, [&store](const Request& q) {
    json list = json::array();
    for (const auto& c : store.all_collections(q.query_value("kind"))) {
      if (c.kind == "calendar" && c.name == kInboxName) continue;  // scheduling messages, not a calendar
      if (q.query_value("owner").empty() || c.owner == q.query_value("owner")) list.push_back(collection_json(store, c));
    }
    return Response::json(list);
  }, "calendars and address books (?kind=, ?owner=)");

  r.add_blocking("POST", "/v1/collections", run, [&store](const Request& q) {
    const auto body = q.json();
    const auto kind = kind_of(body.value("kind", ""));
    const auto name = body.value("name", "");
    check_name(name);
    if (kind == "calendar" && (name == kInboxName || name == kOutboxName))
      throw Error(errc::kUsage, "'" + name + "' is every member's scheduling " + name + " (RFC 6638)", 400);
    const auto group = body.value("group", "");
    // A working group's calendar belongs to the shard and is writable by the group.
    const auto owner = group.empty() ? body.value("owner", "") : std::string("coop");
    if (owner.empty()) throw Error(errc::kUsage, "an owner (member handle) or a group is needed", 400);
    auto c = store.create_collection(owner, kind, name, body.value("displayname", name), body.value("components", ""), group);
    if (!group.empty()) store.grant(c.id, "group:" + group, "read-write");
    return Response::json(collection_json(store, c), 201);
  }, "create ({kind, owner or group, name, displayname, components})");

  r.add_blocking("DELETE", "/v1/collections/{kind}/{owner}/{name}", run, [&store](const Request& q) {
    store.remove_collection(find(store, q).id);
    return Response::json({{"removed", q.param("owner") + "/" + q.param("name")}});
  }, "remove a calendar or address book with everything in it");

  r.add_blocking("POST", "/v1/collections/{kind}/{owner}/{name}/shares", run, [&store](const Request& q) {
    const auto body = q.json();
    const auto grantee = body.value("with", "");
    if (grantee.rfind("member:", 0) != 0 && grantee.rfind("group:", 0) != 0 && grantee != "everyone")
      throw Error(errc::kUsage, "share with member:HANDLE, group:NAME or everyone", 400);
    const auto access = body.value("access", "read");
    if (access != "read" && access != "read-write") throw Error(errc::kUsage, "access is read or read-write", 400);
    const auto c = find(store, q);
    store.grant(c.id, grantee, access);
    return Response::json(collection_json(store, c));
  }, "share ({with: member:x|group:y|everyone, access: read|read-write})");

  r.add_blocking("DELETE", "/v1/collections/{kind}/{owner}/{name}/shares/{grantee}", run, [&store](const Request& q) {
    const auto c = find(store, q);
    store.revoke(c.id, q.param("grantee"));
    return Response::json(collection_json(store, c));
  }, "stop sharing");

  r.add_blocking("POST", "/v1/collections/{kind}/{owner}/{name}/import", run, [&store](const Request& q) {
    const auto c = find(store, q);
    // Everything is checked before anything is written: a bad file changes nothing.
    std::vector<std::tuple<std::string, std::string, std::string, std::string>> items;  // name, uid, component, data
    if (c.kind == "calendar") {
      for (auto& [uid, data] : split_calendar(q.body)) {
        const auto object = parse_calendar_object(data);
        items.emplace_back(resource_name(uid, ".ics"), uid, object.component, data);
      }
    } else {
      // The whole file must be cards (split_vcards refuses anything else); each card is then
      // stored as the client sent it.
      const auto cards = split_vcards(q.body);
      std::size_t start = 0;
      while (true) {
        const auto begin = q.body.find("BEGIN:VCARD", start);
        if (begin == std::string::npos) break;
        auto end = q.body.find("END:VCARD", begin);
        if (end == std::string::npos) break;
        end += 9;
        std::string text = q.body.substr(begin, end - begin) + "\r\n";
        const auto card = parse_vcard(text);
        items.emplace_back(resource_name(card.uid, ".vcf"), card.uid, "VCARD", text);
        start = end;
      }
      if (items.size() != cards.size()) throw Error("valid-address-data", "the cards could not be told apart", 400);
    }
    for (const auto& [name, uid, component, data] : items) {
      std::optional<std::pair<int64_t, int64_t>> bounds;
      if (c.kind == "calendar")
        if (const auto b = instance_bounds(data)) bounds = std::make_pair(b->first_start, b->last_end);
      store.put_resource(c.id, name, uid, component, data, bounds);
    }
    return Response::json({{"imported", items.size()}});
  }, "import an .ics or .vcf file (body); all or nothing; a UID already there is replaced");

  r.add_blocking("GET", "/v1/collections/{kind}/{owner}/{name}/export", run, [&store](const Request& q) {
    const auto c = find(store, q);
    std::vector<std::string> objects;
    std::string cards;
    for (const auto& res : store.resources(c.id)) {
      objects.push_back(res.data);
      cards += res.data;
    }
    if (c.kind == "calendar") return Response::bytes(200, join_calendar(objects), "text/calendar; charset=utf-8");
    return Response::bytes(200, cards, "text/vcard; charset=utf-8");
  }, "the whole calendar as one .ics, or the address book as one .vcf");
}

}  // namespace coop::dav
