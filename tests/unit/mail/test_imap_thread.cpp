// RFC 5256: base subjects, sent dates and the THREAD algorithms on keys given directly.
#include <catch2/catch.hpp>

#include "workers/mail/imap_thread.h"

using namespace coop::mail::imap;

namespace {

SortKeys message(const std::string& subject, int64_t date, const std::string& id = {}, std::vector<std::string> refs = {}) {
  SortKeys k;
  k.subject = base_subject(subject, &k.reply);
  k.date = date;
  k.message_id = id;
  k.references = std::move(refs);
  return k;
}

std::string number(std::size_t i) { return std::to_string(i + 1); }

}  // namespace

TEST_CASE("imap thread: base subjects and reply markers (RFC 5256 2.1)", "[imap]") {
  bool reply = true;
  CHECK(base_subject("Budget", &reply) == "budget");
  CHECK_FALSE(reply);
  CHECK(base_subject("Re: RE: [coop]  Fwd:   Budget (fwd)", &reply) == "budget");
  CHECK(reply);
  CHECK(base_subject("[Fwd: Cake]", &reply) == "cake");
  CHECK(reply);
  CHECK(base_subject("[coop] Cake", &reply) == "cake");
  CHECK_FALSE(reply);  // a [blob] alone is no reply
  CHECK(base_subject("[only a blob]") == "[only a blob]");
  CHECK(sent_date("Tue, 1 Jul 2003 10:52:37 +0200") == std::optional<int64_t>(1057049557));
  CHECK(sent_date("1 Jul 03 10:52 GMT") == std::optional<int64_t>(1057056720));
  CHECK(sent_date("Tue, 1 Jul 2003 10:52 +0200") == std::optional<int64_t>(1057049520));  // no seconds, zone kept
  CHECK_FALSE(sent_date("yesterday"));
  CHECK(message_ids("<a@x> junk <b@y>") == std::vector<std::string>{"a@x", "b@y"});
}

TEST_CASE("imap thread: ORDEREDSUBJECT and REFERENCES", "[imap]") {
  const std::vector<SortKeys> ordered = {message("Budget", 20), message("Re: Budget", 30), message("Picnic", 10),
                                         message("Fwd: budget", 40)};
  CHECK(thread_ordered_subject(ordered, number) == "(3)(1 (2)(4))");

  // References: a chain, a missing parent pruned, a cycle refused.
  const std::vector<SortKeys> linked = {message("Plan", 1, "a"), message("Re: Plan", 2, "b", {"a"}),
                                        message("Re: Plan", 3, "c", {"a", "b"}), message("Re: Plan", 4, "d", {"a"}),
                                        message("Orphan", 5, "e", {"gone", "lost"}), message("Other", 6, "f", {"f"})};
  CHECK(thread_references(linked, number) == "(1 (2 3)(4))(5)(6)");

  // Step 5: by subject when no references say more.
  const std::vector<SortKeys> by_subject = {message("Party", 1, "g"), message("Re: Party", 2, "h"), message("Cake", 3, "i"),
                                            message("Cake", 4, "j"), message("[Fwd: Cake]", 5, "k"),
                                            message("Tea", 6, "m", {"missing"}), message("Re: Tea", 7, "n", {"missing"}),
                                            message("Re: Tea", 8, "o")};
  CHECK(thread_references(by_subject, number) == "(1 2)((3)(4)(5))((6)(7)(8))");
  // Messages without ids and with repeated ones still each appear once.
  const std::vector<SortKeys> no_ids = {message("x", 2), message("y", 1, "same"), message("z", 3, "same")};
  CHECK(thread_references(no_ids, number) == "(2)(1)(3)");
}

TEST_CASE("imap thread: references that loop never make a loop, and the last reference wins", "[imap]") {
  // a says its parent is b, b says its parent is a: the second link would close a loop.
  const std::vector<SortKeys> mutual = {message("x", 1, "a", {"b"}), message("x", 2, "b", {"a"})};
  CHECK(thread_references(mutual, number) == "(2 1)");
  // A message whose References name itself, or name it again after others, is no child of itself.
  const std::vector<SortKeys> self = {message("y", 1, "s", {"s"}), message("y", 2, "t", {"s", "t", "s"})};
  CHECK(thread_references(self, number) == "(1 2)");
  // Step 1B: a parent an earlier message's References gave is replaced by the message's own last reference.
  const std::vector<SortKeys> moved = {message("z", 1, "p"), message("z", 2, "q"), message("z", 3, "r", {"p", "c"}),
                                       message("z", 4, "c", {"q"})};
  CHECK(thread_references(moved, number) == "((1)(2 4 3))");  // one subject: step 5 gathers the two roots
}

TEST_CASE("imap sort: text keys in i;ascii-casemap order (RFC 4790 9.2)", "[imap]") {
  CHECK(casemap_compare("abc", "ABC") == 0);
  CHECK(casemap_compare("a_", "ab") > 0);  // '_' (0x5F) after 'B' (0x42), though before 'b'
  CHECK(casemap_compare("_x", "ax") > 0);
  CHECK(casemap_compare("ab", "abc") < 0);
  CHECK(casemap_compare("\xc3\xa9", "z") > 0);  // other octets as they are
}
