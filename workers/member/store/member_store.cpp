// member.db schema and queries.
#include "workers/member/store/member_store.h"

#include "common/auth/app_password.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <set>

#include "common/error.h"
#include "common/text.h"
#include "common/sqlite.h"
#include "workers/member/member_rules.h"

namespace coop::member {

namespace {

// Numbered, append-only: a migration that shipped is never edited, a new one is added.
constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE members (
        id           INTEGER PRIMARY KEY,
        handle       TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL DEFAULT '',
        status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'removed')),
        role         TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member', 'guest')),
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
      );
    )sql"},
    {2, R"sql(
      ALTER TABLE members ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
      ALTER TABLE members ADD COLUMN quota_bytes INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE members ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';
      CREATE TABLE member_emails (
        address   TEXT PRIMARY KEY,
        member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
        position  INTEGER NOT NULL
      );
      CREATE INDEX member_emails_by_member ON member_emails (member_id);
      CREATE TABLE groups (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        parent_id   INTEGER REFERENCES groups (id),
        created_at  INTEGER NOT NULL
      );
      CREATE TABLE group_members (
        group_id  INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, member_id)
      ) WITHOUT ROWID;
      CREATE INDEX group_members_by_member ON group_members (member_id);
      CREATE TABLE app_passwords (
        id           INTEGER PRIMARY KEY,
        member_id    INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
        label        TEXT NOT NULL,
        digest       TEXT NOT NULL,
        scopes       TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        UNIQUE (member_id, label)
      );
      CREATE TABLE events (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        kind   TEXT NOT NULL,
        handle TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}'
      );
      CREATE TABLE audit (
        id         INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
        handle     TEXT NOT NULL,
        protocol   TEXT NOT NULL,
        source     TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        credential TEXT NOT NULL DEFAULT ''
      );
      CREATE INDEX audit_by_handle ON audit (handle, id);
    )sql"},
    // SCRAM-SHA-256 (RFC 5802, RFC 7677) secrets of the account password, derived when the
    // password is set or next used, so IMAP can offer SCRAM next to PLAIN.
    {3, R"sql(
      CREATE TABLE scram_secrets (
        handle     TEXT PRIMARY KEY,
        iterations INTEGER NOT NULL,
        salt       TEXT NOT NULL,
        stored_key TEXT NOT NULL,
        server_key TEXT NOT NULL
      ) WITHOUT ROWID;
    )sql"},
};

int64_t now() { return static_cast<int64_t>(::time(nullptr)); }

std::string join(const std::vector<std::string>& items, char separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    const auto end = text.find(separator, start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

[[noreturn]] void no_such_member(const std::string& handle) {
  throw Error(errc::kNoSuchMember, "no member '" + handle + "'", 404);
}

[[noreturn]] void no_such_group(const std::string& name) {
  throw Error(errc::kUnknownGroup, "no group '" + name + "'", 404);
}

}  // namespace

struct MemberStore::Impl {
  std::mutex mutex;  // one connection, shared by the io threads in turn
  std::unique_ptr<sqlite::Database> db;
  std::function<void()> on_events;
  bool wrote_events = false;

  void emit(const std::string& kind, const std::string& handle, const nlohmann::json& detail = nlohmann::json::object()) {
    db->prepare("INSERT INTO events (at, kind, handle, detail) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, now())
        .bind(2, kind)
        .bind(3, handle)
        .bind(4, detail.dump())
        .run();
    wrote_events = true;
  }

  // Runs fn in a write transaction; feed listeners hear of it only after the commit.
  template <typename Fn>
  auto write(Fn&& fn) {
    std::unique_lock lock(mutex);
    wrote_events = false;
    sqlite::Transaction tx(*db);
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      tx.commit();
      notify(lock);
    } else {
      auto result = fn();
      tx.commit();
      notify(lock);
      return result;
    }
  }

  void notify(std::unique_lock<std::mutex>& lock) {
    if (!wrote_events || !on_events) return;
    auto callback = on_events;
    lock.unlock();
    callback();
  }

  std::optional<int64_t> member_id(const std::string& handle) {
    auto& stmt = db->prepare("SELECT id FROM members WHERE handle = ?1");
    stmt.bind(1, handle);
    if (!stmt.step()) return std::nullopt;
    const auto id = stmt.column_int64(0);
    stmt.reset();
    return id;
  }

  int64_t require_member(const std::string& handle) {
    auto id = member_id(handle);
    if (!id) no_such_member(handle);
    return *id;
  }

  std::optional<int64_t> group_id(const std::string& name) {
    auto& stmt = db->prepare("SELECT id FROM groups WHERE name = ?1");
    stmt.bind(1, name);
    if (!stmt.step()) return std::nullopt;
    const auto id = stmt.column_int64(0);
    stmt.reset();
    return id;
  }

  int64_t require_group(const std::string& name) {
    auto id = group_id(name);
    if (!id) no_such_group(name);
    return *id;
  }

  void add_email(int64_t member, const std::string& raw, int position) {
    const auto address = normalize_email(raw);
    auto& owner = db->prepare("SELECT m.handle FROM member_emails e JOIN members m ON m.id = e.member_id WHERE e.address = ?1");
    owner.bind(1, address);
    if (owner.step()) {
      const auto handle = owner.column_text(0);
      owner.reset();
      throw Error(errc::kEmailTaken, "email address " + address + " already belongs to " + handle, 409);
    }
    db->prepare("INSERT INTO member_emails (address, member_id, position) VALUES (?1, ?2, ?3)")
        .bind(1, address)
        .bind(2, member)
        .bind(3, position)
        .run();
  }

  void join_group(int64_t member, const std::string& group) {
    check_group_name(group);
    db->prepare("INSERT OR IGNORE INTO group_members (group_id, member_id) VALUES (?1, ?2)")
        .bind(1, require_group(group))
        .bind(2, member)
        .run();
  }

  Member load(int64_t id) {
    Member m;
    auto& row = db->prepare(
        "SELECT id, handle, display_name, role, status, status_reason, quota_bytes, password_hash != '', "
        "created_at, updated_at FROM members WHERE id = ?1");
    row.bind(1, id);
    if (!row.step()) throw Error(errc::kInternal, "member row vanished", 500);
    m.id = row.column_int64(0);
    m.handle = row.column_text(1);
    m.display_name = row.column_text(2);
    m.role = row.column_text(3);
    m.status = row.column_text(4);
    m.status_reason = row.column_text(5);
    m.quota_bytes = row.column_int64(6);
    m.has_password = row.column_int64(7) != 0;
    m.created_at = row.column_int64(8);
    m.updated_at = row.column_int64(9);
    row.reset();
    auto& emails = db->prepare("SELECT address FROM member_emails WHERE member_id = ?1 ORDER BY position, address");
    emails.bind(1, id);
    while (emails.step()) m.emails.push_back(emails.column_text(0));
    emails.reset();
    auto& groups = db->prepare(
        "SELECT g.name FROM group_members gm JOIN groups g ON g.id = gm.group_id WHERE gm.member_id = ?1 ORDER BY g.name");
    groups.bind(1, id);
    while (groups.step()) m.groups.push_back(groups.column_text(0));
    groups.reset();
    return m;
  }

  std::vector<Member> load_all(sqlite::Statement& ids) {
    std::vector<int64_t> list;
    while (ids.step()) list.push_back(ids.column_int64(0));
    ids.reset();
    std::vector<Member> out;
    out.reserve(list.size());
    for (auto id : list) out.push_back(load(id));
    return out;
  }

  // restoring: a row of `coop member export` going back in, where "removed" keeps the
  // handle retired (as it was on the shard it came from).
  int64_t insert(const NewMember& m, bool create_groups, bool restoring = false) {
    check_handle(m.handle);
    check_role(m.role);
    if (m.status != "active" && m.status != "suspended" && !(restoring && m.status == "removed"))
      throw Error(errc::kInvalidStatus,
                  std::string("a new member is active or suspended") + (restoring ? " (or removed, in an import)" : "") +
                      ", not '" + m.status + "'",
                  400);
    if (!is_valid_utf8(m.display_name)) throw Error(errc::kInvalidName, "display name is not valid UTF-8", 400);
    if (m.quota_bytes < 0) throw Error(errc::kInvalidQuota, "quota must not be negative", 400);
    auto& existing = db->prepare("SELECT status FROM members WHERE handle = ?1");
    existing.bind(1, m.handle);
    if (existing.step()) {
      const bool removed = existing.column_text(0) == "removed";
      existing.reset();
      if (removed)
        throw Error(errc::kHandleRetired, "handle '" + m.handle + "' belonged to a removed member and is never reused", 409);
      throw Error(errc::kMemberExists, "member '" + m.handle + "' already exists", 409);
    }
    if (is_reserved_handle(m.handle))
      throw Error(errc::kInvalidHandle, "handle '" + m.handle + "' is reserved for the shard's operators", 400);
    const auto t = now();
    db->prepare(
          "INSERT INTO members (handle, display_name, role, status, quota_bytes, password_hash, created_at, updated_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)")
        .bind(1, m.handle)
        .bind(2, m.display_name)
        .bind(3, m.role)
        .bind(4, m.status)
        .bind(5, m.quota_bytes)
        .bind(6, m.password_hash.value_or(""))
        .bind(7, t)
        .run();
    const auto id = db->last_insert_rowid();
    int position = 0;
    for (const auto& e : m.emails) add_email(id, e, position++);
    for (const auto& g : m.groups) {
      check_group_name(g);
      if (create_groups && !group_id(g)) {
        db->prepare("INSERT INTO groups (name, description, created_at) VALUES (?1, '', ?2)").bind(1, g).bind(2, t).run();
        emit("group.added", "", {{"group", g}, {"parent", ""}});
      }
      join_group(id, g);
    }
    emit("member.added", m.handle, {{"status", m.status}, {"role", m.role}});
    return id;
  }
};

MemberStore::MemberStore(const std::filesystem::path& file) : impl_(std::make_unique<Impl>()) {
  impl_->db = sqlite::Database::open(file);
  impl_->db->migrate(kMigrations);
}

MemberStore::~MemberStore() = default;

void MemberStore::on_events(std::function<void()> callback) {
  std::lock_guard lock(impl_->mutex);
  impl_->on_events = std::move(callback);
}

Member MemberStore::add_member(const NewMember& member, bool create_groups) {
  return impl_->write([&] { return impl_->load(impl_->insert(member, create_groups)); });
}

int64_t MemberStore::add_members(const std::vector<std::pair<NewMember, int>>& rows, bool create_groups) {
  return impl_->write([&] {
    for (const auto& [member, line] : rows) {
      try {
        impl_->insert(member, create_groups, /*restoring=*/true);
      } catch (const Error& e) {
        throw Error(e.code(), "line " + std::to_string(line) + ": " + e.what(), e.status());
      }
    }
    return static_cast<int64_t>(rows.size());
  });
}

std::optional<Member> MemberStore::find_member(const std::string& handle) {
  std::lock_guard lock(impl_->mutex);
  auto id = impl_->member_id(handle);
  if (!id) return std::nullopt;
  return impl_->load(*id);
}

Member MemberStore::get_member(const std::string& handle) {
  auto member = find_member(handle);
  if (!member) no_such_member(handle);
  return *member;
}

std::vector<Member> MemberStore::list_members(const std::string& status, const std::string& group) {
  std::lock_guard lock(impl_->mutex);
  if (!status.empty()) check_status(status);
  if (group.empty()) {
    auto& ids = impl_->db->prepare("SELECT id FROM members WHERE (?1 = '' OR status = ?1) ORDER BY handle");
    ids.bind(1, status);
    return impl_->load_all(ids);
  }
  const auto gid = impl_->require_group(group);
  auto& ids = impl_->db->prepare(
      "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION SELECT g.id FROM groups g JOIN sub ON g.parent_id = sub.id) "
      "SELECT DISTINCT m.id FROM members m JOIN group_members gm ON gm.member_id = m.id "
      "WHERE gm.group_id IN (SELECT id FROM sub) AND (?2 = '' OR m.status = ?2) ORDER BY m.handle");
  ids.bind(1, gid).bind(2, status);
  return impl_->load_all(ids);
}

Member MemberStore::update_member(const std::string& handle, const MemberChanges& changes) {
  return impl_->write([&] {
    const auto id = impl_->require_member(handle);
    auto& db = *impl_->db;
    nlohmann::json changed = nlohmann::json::array();
    if (changes.display_name) {
      if (!is_valid_utf8(*changes.display_name)) throw Error(errc::kInvalidName, "display name is not valid UTF-8", 400);
      db.prepare("UPDATE members SET display_name = ?2 WHERE id = ?1").bind(1, id).bind(2, *changes.display_name).run();
      changed.push_back("display_name");
    }
    if (changes.role) {
      check_role(*changes.role);
      db.prepare("UPDATE members SET role = ?2 WHERE id = ?1").bind(1, id).bind(2, *changes.role).run();
      changed.push_back("role");
    }
    if (changes.quota_bytes) {
      if (*changes.quota_bytes < 0) throw Error(errc::kInvalidQuota, "quota must not be negative", 400);
      db.prepare("UPDATE members SET quota_bytes = ?2 WHERE id = ?1").bind(1, id).bind(2, *changes.quota_bytes).run();
      changed.push_back("quota_bytes");
    }
    if (changes.emails || !changes.add_emails.empty() || !changes.remove_emails.empty()) {
      std::vector<std::string> emails = impl_->load(id).emails;
      if (changes.emails) emails.clear();
      for (const auto& e : changes.remove_emails) {
        const auto address = normalize_email(e);
        auto it = std::find(emails.begin(), emails.end(), address);
        if (it == emails.end()) throw Error(errc::kNoSuchEmail, handle + " has no address " + address, 404);
        emails.erase(it);
      }
      if (changes.emails)
        for (const auto& e : *changes.emails) emails.push_back(e);
      for (const auto& e : changes.add_emails) emails.push_back(e);
      db.prepare("DELETE FROM member_emails WHERE member_id = ?1").bind(1, id).run();
      int position = 0;
      std::set<std::string> seen;
      for (const auto& e : emails)
        if (seen.insert(normalize_email(e)).second) impl_->add_email(id, e, position++);
      changed.push_back("emails");
    }
    for (const auto& g : changes.add_groups) impl_->join_group(id, g);
    for (const auto& g : changes.remove_groups) {
      db.prepare("DELETE FROM group_members WHERE group_id = ?1 AND member_id = ?2")
          .bind(1, impl_->require_group(g))
          .bind(2, id)
          .run();
    }
    if (!changes.add_groups.empty() || !changes.remove_groups.empty()) {
      changed.push_back("groups");
      impl_->emit("group.changed", handle, {{"added", changes.add_groups}, {"removed", changes.remove_groups}});
    }
    db.prepare("UPDATE members SET updated_at = ?2 WHERE id = ?1").bind(1, id).bind(2, now()).run();
    impl_->emit("member.updated", handle, {{"changed", changed}});
    return impl_->load(id);
  });
}

void MemberStore::set_password(const std::string& handle, const std::string& password_hash) {
  impl_->write([&] {
    const auto id = impl_->require_member(handle);
    if (impl_->load(id).status == "removed") throw Error(errc::kMemberRemoved, "member '" + handle + "' was removed", 409);
    impl_->db->prepare("UPDATE members SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")
        .bind(1, id)
        .bind(2, password_hash)
        .bind(3, now())
        .run();
    // The old password's SCRAM secrets would still open IMAP: they go with it.
    impl_->db->prepare("DELETE FROM scram_secrets WHERE handle = ?1").bind(1, handle).run();
    // Sessions opened with the old password end, as with a suspension.
    impl_->emit("member.password_changed", handle);
  });
}

Member MemberStore::set_status(const std::string& handle, const std::string& status, const std::string& reason) {
  return impl_->write([&] {
    check_status(status);
    const auto id = impl_->require_member(handle);
    const auto current = impl_->load(id).status;
    if (current == "removed") throw Error(errc::kMemberRemoved, "member '" + handle + "' was removed", 409);
    if (current == status) throw Error(errc::kNoChange, "member '" + handle + "' is already " + status, 409);
    impl_->db->prepare("UPDATE members SET status = ?2, status_reason = ?3, updated_at = ?4 WHERE id = ?1")
        .bind(1, id)
        .bind(2, status)
        .bind(3, reason)
        .bind(4, now())
        .run();
    impl_->emit(status == "suspended" ? "member.suspended" : "member.reinstated", handle, {{"reason", reason}});
    return impl_->load(id);
  });
}

Member MemberStore::remove_member(const std::string& handle, bool purge) {
  return impl_->write([&] {
    const auto id = impl_->require_member(handle);
    auto& db = *impl_->db;
    if (impl_->load(id).status == "removed" && !purge)
      throw Error(errc::kNoChange, "member '" + handle + "' is already removed", 409);
    db.prepare("UPDATE members SET status = 'removed', password_hash = '', updated_at = ?2 WHERE id = ?1")
        .bind(1, id)
        .bind(2, now())
        .run();
    db.prepare("DELETE FROM app_passwords WHERE member_id = ?1").bind(1, id).run();
    if (purge) {
      db.prepare("UPDATE members SET display_name = '', status_reason = '', quota_bytes = 0 WHERE id = ?1").bind(1, id).run();
      db.prepare("DELETE FROM member_emails WHERE member_id = ?1").bind(1, id).run();
      db.prepare("DELETE FROM group_members WHERE member_id = ?1").bind(1, id).run();
    }
    impl_->emit("member.removed", handle, {{"purged", purge}});
    return impl_->load(id);
  });
}

Group MemberStore::add_group(const std::string& name, const std::string& parent, const std::string& description) {
  return impl_->write([&] {
    check_group_name(name);
    if (impl_->group_id(name)) throw Error(errc::kGroupExists, "group '" + name + "' already exists", 409);
    auto& stmt = impl_->db->prepare(
        "INSERT INTO groups (name, description, parent_id, created_at) VALUES (?1, ?2, ?3, ?4)");
    stmt.bind(1, name).bind(2, description).bind(4, now());
    if (parent.empty())
      stmt.bind_null(3);
    else
      stmt.bind(3, impl_->require_group(parent));
    stmt.run();
    impl_->emit("group.added", "", {{"group", name}, {"parent", parent}});
    return Group{name, description, parent, 0, now()};
  });
}

void MemberStore::remove_group(const std::string& name) {
  impl_->write([&] {
    const auto id = impl_->require_group(name);
    auto& sub = impl_->db->prepare("SELECT name FROM groups WHERE parent_id = ?1 ORDER BY name LIMIT 1");
    sub.bind(1, id);
    if (sub.step()) {
      const auto child = sub.column_text(0);
      sub.reset();
      throw Error(errc::kGroupNotEmpty, "group '" + name + "' has subgroups (" + child + "); remove them first", 409);
    }
    impl_->db->prepare("DELETE FROM groups WHERE id = ?1").bind(1, id).run();
    impl_->emit("group.removed", "", {{"group", name}});
  });
}

std::vector<Group> MemberStore::list_groups() {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare(
      "SELECT g.name, g.description, coalesce(p.name, ''), "
      "(SELECT count(*) FROM group_members gm WHERE gm.group_id = g.id), g.created_at "
      "FROM groups g LEFT JOIN groups p ON p.id = g.parent_id ORDER BY g.name");
  std::vector<Group> out;
  while (stmt.step())
    out.push_back({stmt.column_text(0), stmt.column_text(1), stmt.column_text(2), stmt.column_int64(3), stmt.column_int64(4)});
  stmt.reset();
  return out;
}

std::vector<Member> MemberStore::group_members(const std::string& name, bool direct) {
  if (!direct) return list_members("", name);
  std::lock_guard lock(impl_->mutex);
  auto& ids = impl_->db->prepare(
      "SELECT m.id FROM members m JOIN group_members gm ON gm.member_id = m.id WHERE gm.group_id = ?1 ORDER BY m.handle");
  ids.bind(1, impl_->require_group(name));
  return impl_->load_all(ids);
}

AppPassword MemberStore::add_app_password(const std::string& handle, const std::string& label, const std::string& digest,
                                          const std::vector<std::string>& scopes) {
  return impl_->write([&] {
    const auto id = impl_->require_member(handle);
    if (impl_->load(id).status != "active")
      throw Error(errc::kMemberNotActive, "member '" + handle + "' is not active", 409);
    if (label.empty() || label.size() > 64 || !is_valid_utf8(label))
      throw Error(errc::kInvalidLabel, "an app password label is 1-64 characters of UTF-8", 400);
    auto& existing = impl_->db->prepare("SELECT 1 FROM app_passwords WHERE member_id = ?1 AND label = ?2");
    existing.bind(1, id).bind(2, label);
    if (existing.step()) {
      existing.reset();
      throw Error(errc::kAppPasswordExists, handle + " already has an app password labelled '" + label + "'", 409);
    }
    const auto t = now();
    impl_->db->prepare(
          "INSERT INTO app_passwords (member_id, label, digest, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(1, id)
        .bind(2, label)
        .bind(3, digest)
        .bind(4, join(scopes, ','))
        .bind(5, t)
        .run();
    impl_->emit("app_password.added", handle, {{"label", label}, {"scopes", scopes}});
    return AppPassword{impl_->db->last_insert_rowid(), label, digest, scopes, t, std::nullopt};
  });
}

std::vector<AppPassword> MemberStore::list_app_passwords(const std::string& handle) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare(
      "SELECT id, label, digest, scopes, created_at, last_used_at FROM app_passwords WHERE member_id = ?1 ORDER BY label");
  stmt.bind(1, impl_->require_member(handle));
  std::vector<AppPassword> out;
  while (stmt.step()) {
    AppPassword p{stmt.column_int64(0), stmt.column_text(1), stmt.column_text(2), split(stmt.column_text(3), ','),
                  stmt.column_int64(4), std::nullopt};
    if (!stmt.column_is_null(5)) p.last_used_at = stmt.column_int64(5);
    out.push_back(std::move(p));
  }
  stmt.reset();
  return out;
}

void MemberStore::revoke_app_password(const std::string& handle, const std::string& label) {
  impl_->write([&] {
    const auto id = impl_->require_member(handle);
    impl_->db->prepare("DELETE FROM app_passwords WHERE member_id = ?1 AND label = ?2").bind(1, id).bind(2, label).run();
    if (impl_->db->changes() == 0)
      throw Error(errc::kNoSuchAppPassword, handle + " has no app password labelled '" + label + "'", 404);
    impl_->emit("app_password.revoked", handle, {{"label", label}});
  });
}

std::pair<std::string, std::vector<Member>> MemberStore::resolve_address(const std::string& address_in,
                                                                          const std::string& local_in) {
  const auto address = ascii_lower(address_in);
  const auto local = ascii_lower(local_in);
  {
    std::lock_guard lock(impl_->mutex);
    auto& by_address = impl_->db->prepare("SELECT member_id FROM member_emails WHERE address = ?1");
    by_address.bind(1, address);
    if (by_address.step()) {
      const auto id = by_address.column_int64(0);
      by_address.reset();
      return {"member", {impl_->load(id)}};
    }
    if (auto id = impl_->member_id(local)) return {"member", {impl_->load(*id)}};
    if (!impl_->group_id(local)) return {"none", {}};
  }
  return {"group", list_members("active", local)};
}

std::vector<std::string> MemberStore::effective_groups(const std::string& handle) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare(
      "WITH RECURSIVE up(id) AS (SELECT gm.group_id FROM group_members gm JOIN members m ON m.id = gm.member_id "
      "WHERE m.handle = ?1 UNION SELECT g.parent_id FROM groups g JOIN up ON g.id = up.id WHERE g.parent_id IS NOT NULL) "
      "SELECT name FROM groups WHERE id IN (SELECT id FROM up) ORDER BY name");
  stmt.bind(1, handle);
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  stmt.reset();
  return out;
}

std::optional<LoginRecord> MemberStore::find_login(const std::string& user) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare(
      "SELECT id, handle, display_name, role, status, password_hash FROM members WHERE handle = ?1 "
      "UNION ALL SELECT m.id, m.handle, m.display_name, m.role, m.status, m.password_hash "
      "FROM member_emails e JOIN members m ON m.id = e.member_id WHERE e.address = ?1 LIMIT 1");
  stmt.bind(1, ascii_lower(user));
  if (!stmt.step()) return std::nullopt;
  LoginRecord r{stmt.column_int64(0), stmt.column_text(1), stmt.column_text(2), stmt.column_text(3),
                stmt.column_text(4), stmt.column_text(5), {}};
  stmt.reset();
  auto& apps = impl_->db->prepare("SELECT id, label, digest, scopes, created_at FROM app_passwords WHERE member_id = ?1");
  apps.bind(1, r.id);
  while (apps.step())
    r.app_passwords.push_back({apps.column_int64(0), apps.column_text(1), apps.column_text(2),
                               split(apps.column_text(3), ','), apps.column_int64(4), std::nullopt});
  apps.reset();
  return r;
}

std::optional<LoginRecord> MemberStore::find_login_by_app_password(const std::string& digest) {
  std::string handle;
  {
    std::lock_guard lock(impl_->mutex);
    // Few rows (a member has a handful): compared in constant time, one by one.
    auto& stmt = impl_->db->prepare("SELECT a.digest, m.handle FROM app_passwords a JOIN members m ON m.id = a.member_id");
    while (stmt.step())
      if (auth::digest_equals(stmt.column_text(0), digest)) handle = stmt.column_text(1);
    stmt.reset();
  }
  if (handle.empty()) return std::nullopt;
  return find_login(handle);
}

void MemberStore::set_scram(const std::string& handle, const ScramSecrets& secrets) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("INSERT OR REPLACE INTO scram_secrets (handle, iterations, salt, stored_key, server_key) VALUES (?1, ?2, ?3, ?4, ?5)")
      .bind(1, handle)
      .bind(2, int64_t{secrets.iterations})
      .bind(3, secrets.salt)
      .bind(4, secrets.stored_key)
      .bind(5, secrets.server_key)
      .run();
}

std::optional<ScramSecrets> MemberStore::scram(const std::string& handle) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare("SELECT iterations, salt, stored_key, server_key FROM scram_secrets WHERE handle = ?1");
  s.bind(1, handle);
  std::optional<ScramSecrets> out;
  if (s.step()) out = ScramSecrets{static_cast<int>(s.column_int64(0)), s.column_text(1), s.column_text(2), s.column_text(3)};
  s.reset();
  return out;
}

void MemberStore::touch_app_password(int64_t id) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("UPDATE app_passwords SET last_used_at = ?2 WHERE id = ?1").bind(1, id).bind(2, now()).run();
}

void MemberStore::record_audit(const AuditEntry& e) {
  std::lock_guard lock(impl_->mutex);
  // A login acknowledges nothing a member stored, so its audit row is not worth an fsync of
  // its own (which made logins wait on the disk one at a time: 0.56x libsodium's speed on two
  // cores). In WAL mode, synchronous=NORMAL keeps the row across a crash of the process; only
  // a power loss before the next synced commit or checkpoint can lose the newest rows.
  impl_->db->exec("PRAGMA synchronous=NORMAL");
  struct Restore {
    sqlite::Database& db;
    ~Restore() { db.exec("PRAGMA synchronous=FULL"); }
  } restore{*impl_->db};
  impl_->db->prepare(
        "INSERT INTO audit (at, handle, protocol, source, outcome, credential) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
      .bind(1, e.at ? e.at : now())
      .bind(2, e.handle)
      .bind(3, e.protocol)
      .bind(4, e.source)
      .bind(5, e.outcome)
      .bind(6, e.credential)
      .run();
}

std::vector<AuditEntry> MemberStore::audit(const std::string& handle, int limit) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare(
      "SELECT at, handle, protocol, source, outcome, credential FROM audit WHERE (?1 = '' OR handle = ?1) "
      "ORDER BY id DESC LIMIT ?2");
  stmt.bind(1, handle).bind(2, limit);
  std::vector<AuditEntry> out;
  while (stmt.step())
    out.push_back({stmt.column_int64(0), stmt.column_text(1), stmt.column_text(2), stmt.column_text(3),
                   stmt.column_text(4), stmt.column_text(5)});
  stmt.reset();
  return out;
}

std::vector<Event> MemberStore::events_since(int64_t seq, int limit) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare("SELECT seq, at, kind, handle, detail FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
  stmt.bind(1, seq).bind(2, limit);
  std::vector<Event> out;
  while (stmt.step())
    out.push_back({stmt.column_int64(0), stmt.column_int64(1), stmt.column_text(2), stmt.column_text(3), stmt.column_text(4)});
  stmt.reset();
  return out;
}

int64_t MemberStore::last_event_seq() {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare("SELECT coalesce(max(seq), 0) FROM events");
  stmt.step();
  const auto seq = stmt.column_int64(0);
  stmt.reset();
  return seq;
}

int MemberStore::schema_version() {
  std::lock_guard lock(impl_->mutex);
  return impl_->db->schema_version();
}

int64_t MemberStore::count(const std::string& status) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare("SELECT count(*) FROM members WHERE status = ?1");
  stmt.bind(1, status);
  stmt.step();
  const auto n = stmt.column_int64(0);
  stmt.reset();
  return n;
}

}  // namespace coop::member
