// SMTP command and path parsing (RFC 5321 4.1, RFC 1870, 3030, 6152, 6531).
#include <catch2/catch.hpp>

#include "workers/mail/smtp_parser.h"

using namespace coop::mail;

TEST_CASE("verbs are case-insensitive and keep their argument") {
  auto c = parse_command("ehlo client.example.org");
  CHECK(c.verb == SmtpVerb::ehlo);
  CHECK(c.argument == "client.example.org");
  CHECK(parse_command("QUIT").verb == SmtpVerb::quit);
  CHECK(parse_command("StartTLS").verb == SmtpVerb::starttls);
  CHECK(parse_command("FROB x").verb == SmtpVerb::unknown);
  CHECK(parse_command("").verb == SmtpVerb::unknown);
}

TEST_CASE("MAIL FROM takes SIZE, BODY and SMTPUTF8 and the null path") {
  auto m = parse_mail_from("FROM:<alice@example.org> SIZE=1234 BODY=8BITMIME");
  CHECK(m.error.empty());
  CHECK(m.address == "alice@example.org");
  CHECK(m.size == 1234u);
  CHECK(m.eight_bit);
  CHECK(parse_mail_from("FROM:<>").address.empty());
  CHECK(parse_mail_from("FROM:<>").error.empty());
  CHECK(parse_mail_from("from: <a@b.example>").error.empty());  // a space some clients send
  auto utf8 = parse_mail_from("FROM:<rené@exämple.org> SMTPUTF8");
  CHECK(utf8.error.empty());
  CHECK(utf8.smtputf8);
  CHECK(parse_mail_from("FROM:<rené@exämple.org>").error.rfind("553 5.6.7", 0) == 0);
}

TEST_CASE("bad MAIL FROM arguments get the right reply codes") {
  CHECK(parse_mail_from("alice@example.org").error.rfind("501", 0) == 0);
  CHECK(parse_mail_from("FROM:alice@example.org").error.rfind("501", 0) == 0);
  CHECK(parse_mail_from("FROM:<alice@example.org").error.rfind("501", 0) == 0);
  CHECK(parse_mail_from("FROM:<a@b.example> SIZE=x").error.rfind("501", 0) == 0);
  CHECK(parse_mail_from("FROM:<a@b.example> SIZE=99999999999999999999999").error.rfind("501", 0) == 0);
  CHECK(parse_mail_from("FROM:<a@b.example> BODY=9BIT").error.rfind("501", 0) == 0);
  CHECK(parse_mail_from("FROM:<a@b.example> AUTH=<>").error.rfind("555", 0) == 0);
  CHECK(parse_mail_from("FROM:<a..b@example.org>").error.rfind("501", 0) == 0);
}

TEST_CASE("RCPT TO accepts source routes, quoted local parts, literals and bare Postmaster") {
  CHECK(parse_rcpt_to("TO:<@relay.example:bob@example.org>", false).address == "bob@example.org");
  CHECK(parse_rcpt_to("TO:<\"john doe\"@example.org>", false).address == "\"john doe\"@example.org");
  CHECK(parse_rcpt_to("TO:<bob@[192.0.2.1]>", false).error.empty());
  CHECK(parse_rcpt_to("TO:<Postmaster>", false).address == "postmaster");
  CHECK(parse_rcpt_to("TO:<>", false).error.rfind("501", 0) == 0);
  CHECK(parse_rcpt_to("TO:<bob@example.org> NOTIFY=NEVER", false).error.rfind("555", 0) == 0);
  CHECK(parse_rcpt_to("TO:<josé@example.org>", true).error.empty());
  CHECK_FALSE(parse_rcpt_to("TO:<josé@example.org>", false).error.empty());
}

TEST_CASE("BDAT takes a size and an optional LAST") {
  auto b = parse_bdat("1000 LAST");
  CHECK(b.error.empty());
  CHECK(b.size == 1000u);
  CHECK(b.last);
  CHECK_FALSE(parse_bdat("0").last);
  CHECK_FALSE(parse_bdat("x").error.empty());
  CHECK_FALSE(parse_bdat("10 FIRST").error.empty());
  CHECK_FALSE(parse_bdat("").error.empty());
}

TEST_CASE("mailboxes follow RFC 5321 4.1.2") {
  CHECK(is_valid_mailbox("a.b+c@example.org", false));
  CHECK_FALSE(is_valid_mailbox(".a@example.org", false));
  CHECK_FALSE(is_valid_mailbox("a@", false));
  CHECK_FALSE(is_valid_mailbox("a@-", false));
  CHECK_FALSE(is_valid_mailbox("@example.org", false));
  CHECK(split_address("Bob@Example.ORG") == std::pair<std::string, std::string>{"Bob", "example.org"});
}
