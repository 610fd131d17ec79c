// dav.db schema and queries.
#include "workers/dav/store/dav_store.h"

#include <ctime>

#include "common/digest.h"
#include "common/error.h"
#include "common/sqlite.h"

namespace coop::dav {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE collections (
        id          INTEGER PRIMARY KEY,
        owner       TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('calendar', 'addressbook')),
        name        TEXT NOT NULL,
        displayname TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        color       TEXT NOT NULL DEFAULT '',
        components  TEXT NOT NULL DEFAULT '',
        grp         TEXT NOT NULL DEFAULT '',
        sync_seq    INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        UNIQUE (owner, kind, name)
      );
      CREATE TABLE resources (
        collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        uid           TEXT NOT NULL,
        component     TEXT NOT NULL DEFAULT '',
        etag          TEXT NOT NULL,
        data          TEXT NOT NULL,
        modified_at   INTEGER NOT NULL,
        PRIMARY KEY (collection_id, name),
        UNIQUE (collection_id, uid)
      ) WITHOUT ROWID;
      CREATE TABLE changes (
        collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        seq           INTEGER NOT NULL,
        name          TEXT NOT NULL,
        deleted       INTEGER NOT NULL,
        PRIMARY KEY (collection_id, seq)
      ) WITHOUT ROWID;
      CREATE TABLE grants (
        collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        grantee       TEXT NOT NULL,
        access        TEXT NOT NULL CHECK (access IN ('read', 'read-write')),
        PRIMARY KEY (collection_id, grantee)
      ) WITHOUT ROWID;
    )sql"},
    // Instance bounds of calendar objects, so a time-range query expands recurrences only for
    // candidates (NULL: unknown or unending, always a candidate).
    {2, R"sql(
      ALTER TABLE resources ADD COLUMN range_start INTEGER;
      ALTER TABLE resources ADD COLUMN range_end INTEGER;
      CREATE INDEX resources_by_range ON resources (collection_id, range_start);
    )sql"},
    // Dead properties of collections (RFC 4918 4.2), as PROPPATCH set them.
    {3, R"sql(
      CREATE TABLE collection_properties (
        collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        ns            TEXT NOT NULL,
        name          TEXT NOT NULL,
        value         TEXT NOT NULL,
        PRIMARY KEY (collection_id, ns, name)
      ) WITHOUT ROWID;
    )sql"},
    // RFC 6638 3.2.10: the Schedule-Tag of scheduling object resources; "inbox" and "outbox"
    // are now the scheduling collections of every calendar home, so calendars of those names
    // move aside.
    {4, R"sql(
      ALTER TABLE resources ADD COLUMN schedule_tag TEXT NOT NULL DEFAULT '';
      UPDATE collections SET name = name || '-calendar' WHERE kind = 'calendar' AND name IN ('inbox', 'outbox');
    )sql"},
};

// A strong ETag from the content: equal bytes, equal tag (RFC 9110 8.8.3).
std::string strong_etag(std::string_view data) { return "\"" + sha256_hex(data).substr(0, 24) + "\""; }

Collection read_collection(sqlite::Statement& s) {
  Collection c;
  c.id = s.column_int64(0);
  c.owner = s.column_text(1);
  c.kind = s.column_text(2);
  c.name = s.column_text(3);
  c.displayname = s.column_text(4);
  c.description = s.column_text(5);
  c.color = s.column_text(6);
  c.components = s.column_text(7);
  c.sync_seq = s.column_int64(8);
  c.group = s.column_text(9);
  return c;
}

constexpr const char* kResourceColumns = "name, etag, uid, component, data, modified_at, schedule_tag";

Resource read_resource(sqlite::Statement& s, int first = 0) {
  return Resource{s.column_text(first), s.column_text(first + 1), s.column_text(first + 2), s.column_text(first + 3),
                  s.column_text(first + 4), s.column_int64(first + 5), s.column_text(first + 6)};
}

constexpr const char* kCollectionColumns =
    "id, owner, kind, name, displayname, description, color, components, sync_seq, grp";

}  // namespace

struct DavStore::Impl {
  std::mutex mutex;
  std::unique_ptr<sqlite::Database> db;

  // RFC 4791 5.3.2.1 / RFC 6352 6.3.2.1: a UID names one resource per collection. A MOVE's
  // source (`leaving`) is on its way out and does not count.
  void refuse_uid_clash(int64_t collection, const std::string& uid, const std::string& name,
                        const std::optional<std::pair<int64_t, std::string>>& leaving = std::nullopt) {
    auto& clash = db->prepare(
        "SELECT name FROM resources WHERE collection_id = ?1 AND uid = ?2 AND name != ?3 AND NOT (collection_id IS ?4 AND name IS ?5)");
    clash.bind(1, collection).bind(2, uid).bind(3, name);
    if (leaving) clash.bind(4, leaving->first).bind(5, leaving->second);
    else clash.bind_null(4).bind_null(5);
    if (clash.step()) {
      const auto other = clash.column_text(0);
      clash.reset();
      throw Error("no-uid-conflict", "UID " + uid + " is already used by " + other, 409);
    }
    clash.reset();
  }

  // Stores (or replaces) a resource and logs the change.
  void write(int64_t collection, const std::string& name, const std::string& uid, const std::string& component,
             const std::string& etag, const std::string& data, const std::optional<std::pair<int64_t, int64_t>>& bounds,
             const std::string& schedule_tag) {
    auto& insert = db->prepare(
        "INSERT OR REPLACE INTO resources (collection_id, name, uid, component, etag, data, modified_at, range_start, range_end, "
        "schedule_tag) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    insert.bind(1, collection).bind(2, name).bind(3, uid).bind(4, component).bind(5, etag).bind(6, data);
    insert.bind(7, static_cast<int64_t>(::time(nullptr)));
    if (bounds) insert.bind(8, bounds->first).bind(9, bounds->second);
    insert.bind(10, schedule_tag);
    insert.run();
    bump(collection, name, false);
  }

  int64_t bump(int64_t collection, const std::string& name, bool deleted) {
    db->prepare("UPDATE collections SET sync_seq = sync_seq + 1 WHERE id = ?1").bind(1, collection).run();
    auto& seq = db->prepare("SELECT sync_seq FROM collections WHERE id = ?1");
    seq.bind(1, collection);
    seq.step();
    const auto value = seq.column_int64(0);
    seq.reset();
    db->prepare("INSERT INTO changes (collection_id, seq, name, deleted) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, collection)
        .bind(2, value)
        .bind(3, name)
        .bind(4, deleted ? 1 : 0)
        .run();
    return value;
  }
};

DavStore::DavStore(const std::filesystem::path& file) : impl_(std::make_unique<Impl>()) {
  impl_->db = sqlite::Database::open(file);
  impl_->db->migrate(kMigrations);
}

DavStore::~DavStore() = default;

Collection DavStore::create_collection(const std::string& owner, const std::string& kind, const std::string& name,
                                       const std::string& displayname, const std::string& components,
                                       const std::string& group) {
  std::lock_guard lock(impl_->mutex);
  auto& existing = impl_->db->prepare("SELECT 1 FROM collections WHERE owner = ?1 AND kind = ?2 AND name = ?3");
  existing.bind(1, owner).bind(2, kind).bind(3, name);
  if (existing.step()) {
    existing.reset();
    throw Error(errc::kCollectionExists, owner + " already has a " + kind + " named '" + name + "'", 405);
  }
  impl_->db->prepare(
        "INSERT INTO collections (owner, kind, name, displayname, components, grp, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
      .bind(1, owner)
      .bind(2, kind)
      .bind(3, name)
      .bind(4, displayname)
      .bind(5, components)
      .bind(6, group)
      .bind(7, static_cast<int64_t>(::time(nullptr)))
      .run();
  Collection c;
  c.id = impl_->db->last_insert_rowid();
  c.owner = owner;
  c.kind = kind;
  c.name = name;
  c.displayname = displayname;
  c.components = components;
  c.group = group;
  return c;
}

std::optional<Collection> DavStore::collection(const std::string& owner, const std::string& kind, const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare(std::string("SELECT ") + kCollectionColumns +
                               " FROM collections WHERE owner = ?1 AND kind = ?2 AND name = ?3");
  s.bind(1, owner).bind(2, kind).bind(3, name);
  if (!s.step()) return std::nullopt;
  auto c = read_collection(s);
  s.reset();
  return c;
}

std::vector<Collection> DavStore::collections(const std::string& owner, const std::string& kind) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare(std::string("SELECT ") + kCollectionColumns +
                               " FROM collections WHERE owner = ?1 AND kind = ?2 ORDER BY name");
  s.bind(1, owner).bind(2, kind);
  std::vector<Collection> out;
  while (s.step()) out.push_back(read_collection(s));
  s.reset();
  return out;
}

std::vector<Collection> DavStore::all_collections(const std::string& kind) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare(std::string("SELECT ") + kCollectionColumns +
                               " FROM collections WHERE ?1 = '' OR kind = ?1 ORDER BY owner, kind, name");
  s.bind(1, kind);
  std::vector<Collection> out;
  while (s.step()) out.push_back(read_collection(s));
  s.reset();
  return out;
}

void DavStore::remove_collection(int64_t id) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("DELETE FROM collections WHERE id = ?1").bind(1, id).run();
}

void DavStore::update_collection(int64_t id, const std::optional<std::string>& displayname,
                                 const std::optional<std::string>& description, const std::optional<std::string>& color,
                                 const std::vector<std::pair<DeadProperty, bool>>& dead) {
  std::lock_guard lock(impl_->mutex);
  sqlite::Transaction tx(*impl_->db);
  if (displayname) impl_->db->prepare("UPDATE collections SET displayname = ?2 WHERE id = ?1").bind(1, id).bind(2, *displayname).run();
  if (description) impl_->db->prepare("UPDATE collections SET description = ?2 WHERE id = ?1").bind(1, id).bind(2, *description).run();
  if (color) impl_->db->prepare("UPDATE collections SET color = ?2 WHERE id = ?1").bind(1, id).bind(2, *color).run();
  for (const auto& [p, set] : dead) {
    if (set)
      impl_->db->prepare("INSERT OR REPLACE INTO collection_properties (collection_id, ns, name, value) VALUES (?1, ?2, ?3, ?4)")
          .bind(1, id).bind(2, p.ns).bind(3, p.name).bind(4, p.value).run();
    else
      impl_->db->prepare("DELETE FROM collection_properties WHERE collection_id = ?1 AND ns = ?2 AND name = ?3")
          .bind(1, id).bind(2, p.ns).bind(3, p.name).run();
  }
  impl_->db->prepare("UPDATE collections SET sync_seq = sync_seq + 1 WHERE id = ?1").bind(1, id).run();
  tx.commit();
}

std::optional<Resource> DavStore::resource(int64_t collection, const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare(std::string("SELECT ") + kResourceColumns + " FROM resources WHERE collection_id = ?1 AND name = ?2");
  s.bind(1, collection).bind(2, name);
  if (!s.step()) return std::nullopt;
  Resource r = read_resource(s);
  s.reset();
  return r;
}

std::vector<Resource> DavStore::resources(int64_t collection) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare(std::string("SELECT ") + kResourceColumns + " FROM resources WHERE collection_id = ?1 ORDER BY name");
  s.bind(1, collection);
  std::vector<Resource> out;
  while (s.step()) out.push_back(read_resource(s));
  s.reset();
  return out;
}

std::string DavStore::put_resource(int64_t collection, const std::string& name, const std::string& uid,
                                   const std::string& component, const std::string& data,
                                   std::optional<std::pair<int64_t, int64_t>> bounds,
                                   const std::optional<std::string>& schedule_tag) {
  std::lock_guard lock(impl_->mutex);
  sqlite::Transaction tx(*impl_->db);
  impl_->refuse_uid_clash(collection, uid, name);
  const auto etag = strong_etag(data);
  std::string tag = schedule_tag.value_or("");
  if (!schedule_tag) {
    auto& kept = impl_->db->prepare("SELECT schedule_tag FROM resources WHERE collection_id = ?1 AND name = ?2");
    kept.bind(1, collection).bind(2, name);
    if (kept.step()) tag = kept.column_text(0);
    kept.reset();
  }
  impl_->write(collection, name, uid, component, etag, data, bounds, tag);
  tx.commit();
  return etag;
}

std::vector<Resource> DavStore::time_range_candidates(int64_t collection, std::optional<int64_t> start,
                                                     std::optional<int64_t> end) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare(
      std::string("SELECT ") + kResourceColumns + " FROM resources WHERE collection_id = ?1 "
      "AND (range_start IS NULL OR ((?2 IS NULL OR range_end > ?2) AND (?3 IS NULL OR range_start < ?3))) ORDER BY name");
  s.bind(1, collection);
  if (start) s.bind(2, *start); else s.bind_null(2);
  if (end) s.bind(3, *end); else s.bind_null(3);
  std::vector<Resource> out;
  while (s.step()) out.push_back(read_resource(s));
  s.reset();
  return out;
}

bool DavStore::delete_resource(int64_t collection, const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  sqlite::Transaction tx(*impl_->db);
  impl_->db->prepare("DELETE FROM resources WHERE collection_id = ?1 AND name = ?2").bind(1, collection).bind(2, name).run();
  if (impl_->db->changes() == 0) return false;
  impl_->bump(collection, name, true);
  tx.commit();
  return true;
}

void DavStore::move_resource(int64_t from, const std::string& from_name, int64_t to, const std::string& to_name,
                             std::optional<std::pair<int64_t, int64_t>> bounds) {
  std::lock_guard lock(impl_->mutex);
  auto& db = *impl_->db;
  sqlite::Transaction tx(db);
  auto& read = db.prepare("SELECT uid, component, etag, data, schedule_tag FROM resources WHERE collection_id = ?1 AND name = ?2");
  read.bind(1, from).bind(2, from_name);
  if (!read.step()) throw Error(errc::kNotFound, "no resource " + from_name, 404);
  const std::string uid = read.column_text(0), component = read.column_text(1), etag = read.column_text(2), data = read.column_text(3),
                    tag = read.column_text(4);
  read.reset();
  // The UID may be the resource's own (a rename in one collection): only another clashes.
  impl_->refuse_uid_clash(to, uid, to_name, std::make_pair(from, from_name));
  db.prepare("DELETE FROM resources WHERE collection_id = ?1 AND name = ?2").bind(1, from).bind(2, from_name).run();
  impl_->bump(from, from_name, true);
  impl_->write(to, to_name, uid, component, etag, data, bounds, tag);
  tx.commit();
}

std::vector<std::pair<Collection, Resource>> DavStore::calendar_objects_with_uid(const std::string& owner, const std::string& uid) {
  std::lock_guard lock(impl_->mutex);
  std::string sql = "SELECT ";
  for (const char* column : {"c.id", "c.owner", "c.kind", "c.name", "c.displayname", "c.description", "c.color", "c.components",
                             "c.sync_seq", "c.grp"})
    sql += std::string(column) + ", ";
  sql += "r.name, r.etag, r.uid, r.component, r.data, r.modified_at, r.schedule_tag FROM resources r "
         "JOIN collections c ON c.id = r.collection_id "
         "WHERE c.owner = ?1 AND c.kind = 'calendar' AND c.name NOT IN ('inbox', 'outbox') AND r.uid = ?2 ORDER BY c.id";
  auto& s = impl_->db->prepare(sql);
  s.bind(1, owner).bind(2, uid);
  std::vector<std::pair<Collection, Resource>> out;
  while (s.step()) out.emplace_back(read_collection(s), read_resource(s, 10));
  s.reset();
  return out;
}

std::optional<std::string> DavStore::name_of_uid(int64_t collection, const std::string& uid) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare("SELECT name FROM resources WHERE collection_id = ?1 AND uid = ?2");
  s.bind(1, collection).bind(2, uid);
  std::optional<std::string> name;
  if (s.step()) name = s.column_text(0);
  s.reset();
  return name;
}

std::vector<DeadProperty> DavStore::dead_properties(int64_t collection) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare("SELECT ns, name, value FROM collection_properties WHERE collection_id = ?1 ORDER BY ns, name");
  s.bind(1, collection);
  std::vector<DeadProperty> out;
  while (s.step()) out.push_back({s.column_text(0), s.column_text(1), s.column_text(2)});
  s.reset();
  return out;
}

std::pair<std::vector<Change>, int64_t> DavStore::changes_since(int64_t collection, int64_t seq) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare(
      "SELECT name, deleted FROM changes c WHERE collection_id = ?1 AND seq > ?2 "
      "AND seq = (SELECT max(seq) FROM changes d WHERE d.collection_id = c.collection_id AND d.name = c.name) ORDER BY seq");
  s.bind(1, collection).bind(2, seq);
  std::vector<Change> out;
  while (s.step()) out.push_back({s.column_text(0), s.column_int64(1) != 0});
  s.reset();
  auto& current = impl_->db->prepare("SELECT sync_seq FROM collections WHERE id = ?1");
  current.bind(1, collection);
  const int64_t now = current.step() ? current.column_int64(0) : 0;
  current.reset();
  return {out, now};
}

void DavStore::grant(int64_t collection, const std::string& grantee, const std::string& access) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("INSERT OR REPLACE INTO grants (collection_id, grantee, access) VALUES (?1, ?2, ?3)")
      .bind(1, collection)
      .bind(2, grantee)
      .bind(3, access)
      .run();
}

void DavStore::revoke(int64_t collection, const std::string& grantee) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("DELETE FROM grants WHERE collection_id = ?1 AND grantee = ?2").bind(1, collection).bind(2, grantee).run();
  if (impl_->db->changes() == 0) throw Error(errc::kNoSuchShare, "it is not shared with " + grantee, 404);
}

std::vector<Grant> DavStore::grants(int64_t collection) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare("SELECT grantee, access FROM grants WHERE collection_id = ?1 ORDER BY grantee");
  s.bind(1, collection);
  std::vector<Grant> out;
  while (s.step()) out.push_back({s.column_text(0), s.column_text(1)});
  s.reset();
  return out;
}

std::vector<std::pair<Collection, std::string>> DavStore::shared_with(const std::string& handle,
                                                                      const std::vector<std::string>& groups,
                                                                      const std::string& kind) {
  std::vector<std::string> grantees = {"member:" + handle, "everyone"};
  for (const auto& g : groups) grantees.push_back("group:" + g);
  std::lock_guard lock(impl_->mutex);
  std::vector<std::pair<Collection, std::string>> out;
  for (const auto& grantee : grantees) {
    auto& s = impl_->db->prepare(std::string("SELECT c.id, c.owner, c.kind, c.name, c.displayname, c.description, c.color, "
                                             "c.components, c.sync_seq, c.grp, g.access FROM grants g JOIN collections c "
                                             "ON c.id = g.collection_id WHERE g.grantee = ?1 AND c.kind = ?2 AND c.owner != ?3"));
    s.bind(1, grantee).bind(2, kind).bind(3, handle);
    while (s.step()) {
      auto c = read_collection(s);
      const auto access = s.column_text(10);
      bool merged = false;
      for (auto& [have, have_access] : out)
        if (have.id == c.id) {
          if (access == "read-write") have_access = access;
          merged = true;
        }
      if (!merged) out.emplace_back(c, access);
    }
    s.reset();
  }
  return out;
}

}  // namespace coop::dav
