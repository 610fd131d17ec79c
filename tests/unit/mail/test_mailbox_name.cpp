// Mailbox name rules and their file-name forms (common/mail/mailbox_name.h).
#include <catch2/catch.hpp>

#include "common/mail/mailbox_name.h"

using namespace coop::mail;

TEST_CASE("names that could climb out of a folder or hide a level are refused") {
  for (const char* bad : {"", "..", ".", "../../victim.txt", "../alice/INBOX2", "a/../b", "a/./b", "/a", "a/", "a//b",
                          "tab\there", "nul\x01", "del\x7f", "\xff\xfe"}) {
    INFO(bad);
    CHECK_FALSE(mailbox_name_problem(bad).empty());
  }
  CHECK_FALSE(mailbox_name_problem(std::string(256, 'a')).empty());
  for (const char* good : {"INBOX", "Projects/2026", "v1.2", "..a", "a..", "Entwürfe", "日本語/メモ", "50%off", "~x"}) {
    INFO(good);
    CHECK(mailbox_name_problem(good).empty());
  }
}

TEST_CASE("Maildir++ folders nest with dots and reverse exactly") {
  CHECK(maildir_folder("INBOX").empty());
  CHECK(maildir_folder("Projects/2026") == ".Projects.2026");
  CHECK(maildir_folder("v1.2/50%off") == ".v1%2E2.50%25off");
  for (const char* name : {"Projects", "Projects/2026", "v1.2/50%off", "Entwürfe/a b", "..a/b.."}) {
    INFO(name);
    const auto back = mailbox_from_maildir_folder(maildir_folder(name));
    REQUIRE(back);
    CHECK(*back == name);
  }
  CHECK_FALSE(mailbox_from_maildir_folder("."));
  CHECK_FALSE(mailbox_from_maildir_folder(".."));
  CHECK_FALSE(mailbox_from_maildir_folder(".a..b"));
  CHECK_FALSE(mailbox_from_maildir_folder(".%2E%2E"));
  CHECK_FALSE(mailbox_from_maildir_folder(".bad%zz"));
  CHECK_FALSE(mailbox_from_maildir_folder("noleadingdot"));
}

TEST_CASE("a level as a file name is never . or .. and never holds a slash") {
  CHECK(file_name_for_level("..") == "%2E%2E");
  CHECK(file_name_for_level("a/b") == "a%2Fb");
  CHECK(file_name_for_level(std::string("n\0l", 3)) == "n%00l");
  CHECK(*level_from_file_name("a%2Fb") == "a/b");
  CHECK(*level_from_file_name("Entwürfe") == "Entwürfe");
  CHECK_FALSE(level_from_file_name("%2E%2E"));
  CHECK_FALSE(level_from_file_name(".."));
  CHECK_FALSE(level_from_file_name("%"));
}
