// The registry's store: members, groups, app passwords, the change feed; bad input changes nothing.
#include <catch2/catch.hpp>

#include "../common/temp_dir.h"
#include "common/error.h"
#include "workers/member/store/member_store.h"

using namespace coop::member;

namespace {
NewMember new_member(const std::string& handle, std::vector<std::string> emails = {}, std::vector<std::string> groups = {}) {
  NewMember m;
  m.handle = handle;
  m.emails = std::move(emails);
  m.groups = std::move(groups);
  return m;
}

std::string error_code(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const coop::Error& e) {
    return e.code();
  }
  return "";
}
}  // namespace

TEST_CASE("a member is stored with addresses and groups and found by either") {
  coop::test::TempDir dir;
  MemberStore store(dir.path() / "member.db");
  store.add_group("ops", "", "");
  auto alice = store.add_member(new_member("alice", {"Alice@Example.org"}, {"ops"}));
  CHECK(alice.emails == std::vector<std::string>{"alice@example.org"});
  CHECK(alice.groups == std::vector<std::string>{"ops"});
  CHECK(store.find_login("alice@example.org")->handle == "alice");
  CHECK(store.find_login("ALICE")->handle == "alice");
  CHECK_FALSE(store.find_login("nobody"));
}

TEST_CASE("duplicates, unknown groups, taken addresses and retired handles change nothing") {
  coop::test::TempDir dir;
  MemberStore store(dir.path() / "member.db");
  store.add_member(new_member("alice", {"alice@example.org"}));
  const auto before = store.last_event_seq();
  CHECK(error_code([&] { store.add_member(new_member("alice")); }) == "member_exists");
  CHECK(error_code([&] { store.add_member(new_member("bob", {}, {"nosuch"})); }) == "unknown_group");
  CHECK(error_code([&] { store.add_member(new_member("carol", {"alice@example.org"})); }) == "email_taken");
  CHECK(error_code([&] { store.add_member(new_member("Dave")); }) == "invalid_handle");
  CHECK(error_code([&] { store.add_member(new_member("postmaster")); }) == "invalid_handle");
  CHECK_FALSE(store.find_member("bob"));
  CHECK_FALSE(store.find_member("carol"));
  store.remove_member("alice", false);
  CHECK(error_code([&] { store.add_member(new_member("alice")); }) == "handle_retired");
  CHECK(store.last_event_seq() == before + 1);  // only the removal
}

TEST_CASE("an import with one bad row writes nothing and names the row") {
  coop::test::TempDir dir;
  MemberStore store(dir.path() / "member.db");
  store.add_member(new_member("taken"));
  std::vector<std::pair<NewMember, int>> rows = {{new_member("a1"), 2}, {new_member("a2"), 3}, {new_member("taken"), 4}};
  try {
    store.add_members(rows);
    FAIL("imported a duplicate");
  } catch (const coop::Error& e) {
    CHECK(std::string(e.what()).rfind("line 4: ", 0) == 0);
  }
  CHECK(store.list_members("", "").size() == 1);
  rows.pop_back();
  CHECK(store.add_members(rows) == 2);
  CHECK(store.list_members("active", "").size() == 3);
}

TEST_CASE("groups nest: a subgroup's members belong to the parent too") {
  coop::test::TempDir dir;
  MemberStore store(dir.path() / "member.db");
  store.add_group("ops", "", "operations");
  store.add_group("kitchen", "ops", "");
  store.add_group("night", "kitchen", "");
  store.add_member(new_member("alice", {}, {"ops"}));
  store.add_member(new_member("bob", {}, {"night"}));
  CHECK(store.group_members("ops", false).size() == 2);
  CHECK(store.group_members("ops", true).size() == 1);
  CHECK(store.list_members("", "kitchen").size() == 1);
  CHECK(store.effective_groups("bob") == std::vector<std::string>{"kitchen", "night", "ops"});
  CHECK(error_code([&] { store.remove_group("kitchen"); }) == "group_not_empty");
  CHECK(error_code([&] { store.add_group("ops", "", ""); }) == "group_exists");
  CHECK(error_code([&] { store.add_group("x", "nosuch", ""); }) == "unknown_group");
  store.remove_group("night");
  CHECK(store.get_member("bob").groups.empty());
}

TEST_CASE("suspension, reinstatement and removal are feed events") {
  coop::test::TempDir dir;
  MemberStore store(dir.path() / "member.db");
  int notified = 0;
  store.on_events([&] { ++notified; });
  store.add_member(new_member("alice", {"alice@example.org"}));
  store.set_status("alice", "suspended", "unpaid dues");
  CHECK(store.get_member("alice").status_reason == "unpaid dues");
  CHECK(error_code([&] { store.set_status("alice", "suspended", ""); }) == "no_change");
  store.set_status("alice", "active", "");
  store.remove_member("alice", true);
  const auto purged = store.get_member("alice");
  CHECK(purged.status == "removed");
  CHECK(purged.emails.empty());
  CHECK(error_code([&] { store.set_status("alice", "active", ""); }) == "member_removed");
  const auto events = store.events_since(0, 100);
  std::vector<std::string> kinds;
  for (const auto& e : events) kinds.push_back(e.kind);
  CHECK(kinds == std::vector<std::string>{"member.added", "member.suspended", "member.reinstated", "member.removed"});
  CHECK(notified == 4);
  CHECK(store.events_since(events[1].seq, 100).size() == 2);
}

TEST_CASE("app passwords: labelled, unique per member, revoked by label") {
  coop::test::TempDir dir;
  MemberStore store(dir.path() / "member.db");
  store.add_member(new_member("alice"));
  store.add_app_password("alice", "phone", "digest1", {"mail"});
  CHECK(error_code([&] { store.add_app_password("alice", "phone", "digest2", {"dav"}); }) == "app_password_exists");
  CHECK(store.find_login("alice")->app_passwords.size() == 1);
  CHECK(store.list_app_passwords("alice").at(0).scopes == std::vector<std::string>{"mail"});
  store.revoke_app_password("alice", "phone");
  CHECK(error_code([&] { store.revoke_app_password("alice", "phone"); }) == "no_such_app_password");
  CHECK(store.list_app_passwords("alice").empty());
}

TEST_CASE("the store survives a reopen with everything committed") {
  coop::test::TempDir dir;
  {
    MemberStore store(dir.path() / "member.db");
    store.add_member(new_member("alice", {"alice@example.org"}));
    store.set_password("alice", "$argon2id$hash");
  }
  MemberStore store(dir.path() / "member.db");
  CHECK(store.schema_version() == 3);
  CHECK(store.find_login("alice")->password_hash == "$argon2id$hash");
  CHECK(store.get_member("alice").has_password);
}
