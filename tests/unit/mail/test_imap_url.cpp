// RFC 5092 IMAP URLs as CATENATE (RFC 4469) uses them.
#include <catch2/catch.hpp>

#include "workers/mail/imap_url.h"

using coop::mail::imap::parse_message_url;

TEST_CASE("message URLs of RFC 5092 and RFC 4469's examples", "[imap_url]") {
  const auto a = parse_message_url("/Drafts;UIDVALIDITY=385759043/;UID=20/;SECTION=HEADER");
  REQUIRE(a);
  CHECK(a->mailbox == "Drafts");
  CHECK(a->uidvalidity == 385759043);
  CHECK(a->uid == 20);
  CHECK(a->section == "HEADER");
  CHECK_FALSE(a->partial);

  const auto b = parse_message_url("imap://alice@example.org/Drafts;UIDVALIDITY=385759043/;UID=30/;SECTION=1.MIME/;PARTIAL=0.1024");
  REQUIRE(b);
  CHECK(b->section == "1.MIME");
  REQUIRE(b->partial);
  CHECK(b->partial->first == 0);
  CHECK(b->partial->second == 1024);

  const auto c = parse_message_url("/Entw%C3%BCrfe/;uid=7/;partial=10");
  REQUIRE(c);
  CHECK(c->mailbox == "Entwürfe");
  CHECK_FALSE(c->uidvalidity);
  CHECK(c->partial->first == 10);
  CHECK_FALSE(c->partial->second);

  const auto d = parse_message_url("/INBOX/;UID=5/;SECTION=HEADER.FIELDS%20(FROM%20TO)");
  REQUIRE(d);
  CHECK(d->section == "HEADER.FIELDS (FROM TO)");
}

TEST_CASE("what is not a message URL", "[imap_url]") {
  for (const char* bad : {"", "INBOX/;UID=1", "/INBOX", "/INBOX/;UID=0", "/INBOX/;UID=x", "/;UID=1", "/INBOX;UIDVALIDITY=0/;UID=1",
                          "/INBOX/;UID=1/;URLAUTH=anonymous", "/INBOX/;SECTION=1/;UID=2", "/INBOX?SUBJECT%20x",
                          "/INBOX/;UID=1/;PARTIAL=.5", "/INBOX/;UID=1/;PARTIAL=1.0", "/IN%ffBOX/;UID=1", "/INBOX/;UID=1/;UID=2",
                          "/INBOX/;UID=99999999999999999999", "imap://host"})
    CHECK_FALSE(parse_message_url(bad));
}
