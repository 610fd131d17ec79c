// dav.db: calendars and address books (collections), their object resources, the change log
// that sync-collection (RFC 6578) reads, sharing grants, and dead properties (PROPPATCH).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::sqlite {
class Database;
}

namespace coop::dav {

struct Collection {
  int64_t id = 0;
  std::string owner;        // member handle ("coop" for the shard's own, like the directory)
  std::string kind;         // "calendar" or "addressbook"
  std::string name;         // path segment
  std::string displayname;
  std::string description;
  std::string color;
  std::string components;   // calendars: "VEVENT,VTODO"
  int64_t sync_seq = 0;     // bumped on every change: the getctag and the sync token
  std::string group;        // a working group's calendar: its group, else empty
};

struct Resource {
  std::string name;
  std::string etag;  // quoted strong ETag
  std::string uid;
  std::string component;
  std::string data;
  int64_t modified_at = 0;
  std::string schedule_tag;  // RFC 6638 3.2.10, quoted; empty for resources that are not scheduled
};

struct Change {
  std::string name;
  bool deleted = false;
};

struct Grant {
  std::string grantee;  // "member:alice" or "group:kitchen"
  std::string access;   // "read" or "read-write"
};

// Dead properties of a collection (RFC 4918 4.2: PROPPATCH of anything not protected):
// namespace, name and value as inner XML (dav_xml.h), e.g. Apple's calendar-order.
struct DeadProperty {
  std::string ns, name, value;
};

class DavStore {
 public:
  explicit DavStore(const std::filesystem::path& file);
  ~DavStore();

  Collection create_collection(const std::string& owner, const std::string& kind, const std::string& name,
                               const std::string& displayname, const std::string& components, const std::string& group = {});
  std::optional<Collection> collection(const std::string& owner, const std::string& kind, const std::string& name);
  std::vector<Collection> collections(const std::string& owner, const std::string& kind);
  std::vector<Collection> all_collections(const std::string& kind);
  void remove_collection(int64_t id);
  // One PROPPATCH, all or nothing: the live properties that change, and dead ones set (a
  // value) or removed (nullopt).
  void update_collection(int64_t id, const std::optional<std::string>& displayname,
                         const std::optional<std::string>& description, const std::optional<std::string>& color,
                         const std::vector<std::pair<DeadProperty, bool>>& dead = {});

  std::optional<Resource> resource(int64_t collection, const std::string& name);
  std::vector<Resource> resources(int64_t collection);
  // Stores a resource (new or replaced) and logs the change; returns the new ETag.
  // coop::Error("no-uid-conflict", 409) when another resource of the collection has the UID.
  // bounds: the calendar object's instance span, for time-range pre-selection.
  // schedule_tag: the new Schedule-Tag; nullopt keeps the one the resource has.
  std::string put_resource(int64_t collection, const std::string& name, const std::string& uid,
                           const std::string& component, const std::string& data,
                           std::optional<std::pair<int64_t, int64_t>> bounds = std::nullopt,
                           const std::optional<std::string>& schedule_tag = std::nullopt);
  // Resources whose instances may overlap [start, end): the exact test is the caller's.
  std::vector<Resource> time_range_candidates(int64_t collection, std::optional<int64_t> start, std::optional<int64_t> end);
  bool delete_resource(int64_t collection, const std::string& name);
  // MOVE (RFC 4918 9.9) as one change: the resource leaves `from_name` and takes `to_name`
  // (replacing what was there) with its UID, data and ETag; both collections log it.
  // coop::Error("no-uid-conflict", 409) when another resource of the target has the UID.
  void move_resource(int64_t from, const std::string& from_name, int64_t to, const std::string& to_name,
                     std::optional<std::pair<int64_t, int64_t>> bounds);
  // The calendar objects of a member's own calendars (not the scheduling inbox) with a UID:
  // where scheduling finds a member's copy of an event.
  std::vector<std::pair<Collection, Resource>> calendar_objects_with_uid(const std::string& owner, const std::string& uid);
  // The resource of a collection that has this UID.
  std::optional<std::string> name_of_uid(int64_t collection, const std::string& uid);

  std::vector<DeadProperty> dead_properties(int64_t collection);
  // Changes after seq (the latest per name), and the collection's current seq.
  std::pair<std::vector<Change>, int64_t> changes_since(int64_t collection, int64_t seq);

  void grant(int64_t collection, const std::string& grantee, const std::string& access);
  void revoke(int64_t collection, const std::string& grantee);
  std::vector<Grant> grants(int64_t collection);
  // Collections shared with a member directly or through one of their groups.
  std::vector<std::pair<Collection, std::string>> shared_with(const std::string& handle,
                                                              const std::vector<std::string>& groups,
                                                              const std::string& kind);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::dav
