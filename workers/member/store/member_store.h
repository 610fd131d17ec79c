// member.db: members, groups, app passwords, the change feed and the audit log. The only
// code that touches these tables; every change and its feed event commit together.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::sqlite {
class Database;
}

namespace coop::member {

struct Member {
  int64_t id = 0;
  std::string handle;
  std::string display_name;
  std::vector<std::string> emails;
  std::vector<std::string> groups;  // direct memberships
  std::string role = "member";
  std::string status = "active";
  std::string status_reason;
  int64_t quota_bytes = 0;  // 0: no quota
  bool has_password = false;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct NewMember {
  std::string handle;
  std::string display_name;
  std::vector<std::string> emails;
  std::vector<std::string> groups;
  std::string role = "member";
  std::string status = "active";
  int64_t quota_bytes = 0;
  std::optional<std::string> password_hash;
};

struct MemberChanges {
  std::optional<std::string> display_name;
  std::optional<std::vector<std::string>> emails;  // replaces all
  std::vector<std::string> add_emails, remove_emails;
  std::optional<std::string> role;
  std::optional<int64_t> quota_bytes;
  std::vector<std::string> add_groups, remove_groups;
};

struct Group {
  std::string name;
  std::string description;
  std::string parent;  // empty: top level
  int64_t direct_members = 0;
  int64_t created_at = 0;
};

struct AppPassword {
  int64_t id = 0;
  std::string label;
  std::string digest;
  std::vector<std::string> scopes;
  int64_t created_at = 0;
  std::optional<int64_t> last_used_at;
};

// What verifying a login needs, read in one go.
// RFC 5802 3: what a server keeps to check a SCRAM login without the password.
struct ScramSecrets {
  int iterations = 0;
  std::string salt;        // base64
  std::string stored_key;  // base64, as libgsasl reads it
  std::string server_key;  // base64
};

struct LoginRecord {
  int64_t id = 0;
  std::string handle;
  std::string display_name;
  std::string role;
  std::string status;
  std::string password_hash;  // empty: no password set
  std::vector<AppPassword> app_passwords;
};

struct Event {
  int64_t seq = 0;
  int64_t at = 0;
  std::string kind;    // member.added, member.suspended, group.changed...
  std::string handle;  // empty for group events
  std::string detail;  // JSON object
};

struct AuditEntry {
  int64_t at = 0;
  std::string handle;
  std::string protocol;
  std::string source;
  std::string outcome;     // ok, bad_credentials, suspended, out_of_scope, throttled...
  std::string credential;  // password, app:<label>, or empty
};

class MemberStore {
 public:
  // Opens member.db and brings its schema up to date.
  explicit MemberStore(const std::filesystem::path& file);
  ~MemberStore();

  // Called after a commit that wrote feed events (from the writing thread).
  void on_events(std::function<void()> callback);

  // create_groups: groups the member is put in that do not exist yet are made (top-level).
  Member add_member(const NewMember& member, bool create_groups = false);
  // All or none: the first bad row throws coop::Error whose message starts "line N: ".
  // rows[i].second is the row's line number in the source file. A row may be "removed"
  // (what `export` writes for one): its handle stays retired.
  int64_t add_members(const std::vector<std::pair<NewMember, int>>& rows, bool create_groups = false);
  std::optional<Member> find_member(const std::string& handle);
  Member get_member(const std::string& handle);  // coop::Error(errc::kNoSuchMember, 404)
  // status, group: empty means any; the group filter includes its subgroups' members.
  std::vector<Member> list_members(const std::string& status, const std::string& group);
  Member update_member(const std::string& handle, const MemberChanges& changes);
  void set_password(const std::string& handle, const std::string& password_hash);
  Member set_status(const std::string& handle, const std::string& status, const std::string& reason);
  // Removed members keep their handle forever (a Matrix user ID must never be reused);
  // purge also erases their name, addresses and memberships.
  Member remove_member(const std::string& handle, bool purge);

  Group add_group(const std::string& name, const std::string& parent, const std::string& description);
  void remove_group(const std::string& name);
  std::vector<Group> list_groups();
  // Members of the group and, unless direct, of its subgroups, at any depth.
  std::vector<Member> group_members(const std::string& name, bool direct);

  AppPassword add_app_password(const std::string& handle, const std::string& label, const std::string& digest,
                               const std::vector<std::string>& scopes);
  std::vector<AppPassword> list_app_passwords(const std::string& handle);
  void revoke_app_password(const std::string& handle, const std::string& label);

  // The member's groups and every group those belong to, at any depth.
  std::vector<std::string> effective_groups(const std::string& handle);

  // Who mail for an address reaches, the domain being one the shard hosts: the member with
  // that address, else the member whose handle is the local part, else the active members
  // of the group of that name (and its subgroups). kind: "member", "group" or "none".
  std::pair<std::string, std::vector<Member>> resolve_address(const std::string& address, const std::string& local);

  // By handle, or by any of the member's email addresses.
  std::optional<LoginRecord> find_login(const std::string& user);
  // The member one of whose app passwords has this digest (a Bearer token), or nullopt.
  std::optional<LoginRecord> find_login_by_app_password(const std::string& digest);
  void touch_app_password(int64_t id);
  // SCRAM-SHA-256 secrets of the account password (set_password removes them).
  void set_scram(const std::string& handle, const ScramSecrets& secrets);
  std::optional<ScramSecrets> scram(const std::string& handle);
  void record_audit(const AuditEntry& entry);
  std::vector<AuditEntry> audit(const std::string& handle, int limit);

  std::vector<Event> events_since(int64_t seq, int limit);
  int64_t last_event_seq();

  int schema_version();
  int64_t count(const std::string& status);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::member
