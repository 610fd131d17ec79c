// MailboxStore's shared per-mailbox cache (what IMAP sessions read instead of SQLite), the
// ENVELOPEs rendered at delivery and the header sections kept for SEARCH; and FETCH part
// sections (.MIME, .HEADER, .TEXT of parts) found through the stored structure.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/sqlite.h"
#include "common/mail/mailbox_formats.h"
#include "tests/unit/common/temp_dir.h"
#include "workers/mail/imap_fetch.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/store/mailbox_store.h"

using namespace coop::mail;

namespace {

MessageMeta meta(const std::string& blob, const std::string& subject, bool rendered = true) {
  MessageMeta m;
  m.blob = blob;
  m.size = 100;
  m.internal_date = 1700000000;
  m.subject = subject;
  m.envelope = R"({"subject":")" + subject + R"("})";
  if (rendered) {
    m.imap_envelope = "(NIL \"" + subject + "\" NIL NIL NIL NIL NIL NIL NIL NIL)";
    m.header = "Subject: " + subject + "\r\n\r\n";
    m.sent_date = 1700000000 + static_cast<int64_t>(subject.size());
    m.from_mailbox = subject + "-sender";
  }
  return m;
}

std::vector<int64_t> uids_of(MailboxStore& store, const std::string& mailbox) {
  std::vector<int64_t> uids;
  store.with_cache("alice", mailbox, [&](const MailboxCache& cache) {
    for (const auto& m : cache.messages) uids.push_back(m.uid);
  });
  return uids;
}

}  // namespace

TEST_CASE("mailbox store: a held mailbox's cache follows every change", "[mail][store]") {
  coop::test::TempDir dir;
  MailboxStore store(dir.path());
  store.append("alice", "INBOX", meta("b1", "one"), 0);
  const auto id = store.hold("alice", "INBOX");
  REQUIRE(id);
  CHECK_FALSE(store.hold("alice", "Nowhere"));
  store.append("alice", "INBOX", meta("b2", "two"), 0);
  store.append("alice", "INBOX", meta("b3", "three"), 0);
  CHECK(uids_of(store, "INBOX") == std::vector<int64_t>{1, 2, 3});

  const auto changed = store.change_flags("alice", "INBOX", {2, 3}, MailboxStore::FlagChange::add, kDeleted | kSeen);
  REQUIRE(changed.size() == 2);
  store.with_cache("alice", "INBOX", [&](const MailboxCache& cache) {
    CHECK(cache.find(2)->flags == (kDeleted | kSeen));
    CHECK(cache.find(2)->modseq == changed[0].modseq);
    CHECK(cache.find(1)->flags == 0);
    CHECK(cache.highest_modseq == changed[0].modseq);
    CHECK(cache.find(2)->subject == "two");
    CHECK(cache.find(3)->blob == "b3");
  });

  const auto copied = store.copy("alice", "INBOX", "Archive", {1, 3});
  REQUIRE(copied.size() == 2);
  CHECK(store.expunge("alice", "INBOX", std::vector<int64_t>{3}) == std::vector<int64_t>{3});
  CHECK(uids_of(store, "INBOX") == std::vector<int64_t>{1, 2});
  CHECK(uids_of(store, "Archive") == std::vector<int64_t>{1, 2});  // loaded for the call

  // A refused append (over quota) leaves the cache as it was.
  CHECK_THROWS_AS(store.append("alice", "INBOX", meta("b4", "four"), 150), coop::Error);
  store.with_cache("alice", "INBOX", [&](const MailboxCache& cache) {
    CHECK(cache.messages.size() == 2);
    CHECK(cache.uidnext == 4);
  });

  // The cache agrees with what a fresh load from SQLite says.
  store.release("alice", *id);
  CHECK(uids_of(store, "INBOX") == std::vector<int64_t>{1, 2});
  store.with_cache("alice", "INBOX", [&](const MailboxCache& cache) { CHECK(cache.find(2)->flags == (kDeleted | kSeen)); });
}

TEST_CASE("mailbox store: ENVELOPEs and header sections in batches, old rows fall back", "[mail][store]") {
  coop::test::TempDir dir;
  MailboxStore store(dir.path());
  store.append("alice", "INBOX", meta("b1", "one"), 0);
  store.append("alice", "INBOX", meta("b2", "two", false), 0);  // as stored before schema 3
  store.append("alice", "INBOX", meta("b3", "three"), 0);
  const auto envelopes = store.envelopes("alice", "INBOX", {1, 2, 3, 9});
  REQUIRE(envelopes.size() == 3);
  CHECK(envelopes[0].imap == "(NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL)");
  CHECK(envelopes[0].json.empty());
  CHECK(envelopes[1].imap.empty());
  CHECK(envelopes[1].json == R"({"subject":"two"})");
  CHECK(store.envelopes("alice", "INBOX", {3}).size() == 1);

  const auto headers = store.headers("alice", "INBOX", 1, 3);
  REQUIRE(headers.size() == 2);
  CHECK(headers[0] == std::pair<int64_t, std::string>{1, "Subject: one\r\n\r\n"});
  CHECK(headers[1].first == 3);
  const auto sorts = store.sort_rows("alice", "INBOX", 1, 3);
  REQUIRE(sorts.size() == 2);  // the message from before schema 3 sorts by its envelope JSON
  CHECK(sorts[0].uid == 1);
  CHECK(sorts[0].sent_date == 1700000003);
  CHECK(sorts[1].from_mailbox == "three-sender");
  // COPY brings the header along; EXPUNGE and DELETE take it away.
  store.ensure_mailbox("alice", "Kept");
  store.copy("alice", "INBOX", "Kept", {3});
  CHECK(store.headers("alice", "Kept", 1, 1).size() == 1);
  CHECK(store.sort_rows("alice", "Kept", 1, 1).size() == 1);
  CHECK(store.summaries("alice", "Kept", 1).first == R"({"subject":"three"})");
  store.change_flags("alice", "INBOX", {3}, MailboxStore::FlagChange::add, kDeleted);
  store.expunge("alice", "INBOX", std::nullopt);
  CHECK(store.headers("alice", "INBOX", 1, 3).size() == 1);
  CHECK(store.sort_rows("alice", "INBOX", 1, 3).size() == 1);
  store.delete_mailbox("alice", "Kept");
  store.ensure_mailbox("alice", "Kept");
  CHECK(store.headers("alice", "Kept", 1, 100).empty());
}

TEST_CASE("imap fetch: MIME, HEADER and TEXT of parts", "[imap]") {
  const std::string message =
      "From: a@example.org\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
      "preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
      "--b1\r\nContent-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"
      "From: b@example.org\r\nSubject: inner\r\n\r\ninner body\r\n"
      "--b1--\r\n";
  const auto structure = summarize_message(message).body_structure.dump();
  auto section = [&](const std::string& spec, std::vector<std::string> fields = {}) {
    imap::FetchItem item;
    item.kind = imap::FetchItem::Kind::section;
    item.spec = spec;
    item.fields = std::move(fields);
    return imap::message_section(message, item, structure);
  };
  CHECK(section("1") == std::optional<std::string>("first part"));
  CHECK(section("1.MIME") == std::optional<std::string>("Content-Type: text/plain\r\n\r\n"));
  CHECK(section("2.MIME") ==
        std::optional<std::string>("Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"));
  CHECK(section("2.HEADER") == std::optional<std::string>("From: b@example.org\r\nSubject: inner\r\n\r\n"));
  CHECK(section("2.TEXT") == std::optional<std::string>("inner body"));
  CHECK(section("2.HEADER.FIELDS", {"SUBJECT"}) == std::optional<std::string>("Subject: inner\r\n\r\n"));
  CHECK_FALSE(section("1.HEADER"));  // a text part has no message header of its own
  CHECK_FALSE(section("3.MIME"));
  // The one body of the attached message has the message's header as its MIME header.
  CHECK(section("2.1.MIME") == std::optional<std::string>("From: b@example.org\r\nSubject: inner\r\n\r\n"));

  // A part that is itself a multipart has a MIME header too.
  const std::string nested =
      "Subject: nested\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n"
      "--o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\nContent-ID: <alt>\r\n\r\n"
      "preamble\r\n--i\r\nContent-Type: text/plain\r\n\r\nplain\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--i--\r\n"
      "--o\r\nContent-Type: text/plain\r\n\r\nlast\r\n--o--\r\n";
  imap::FetchItem part_mime;
  part_mime.kind = imap::FetchItem::Kind::section;
  part_mime.spec = "1.MIME";
  const auto nested_structure = summarize_message(nested).body_structure.dump();
  CHECK(imap::message_section(nested, part_mime, nested_structure) ==
        std::optional<std::string>("Content-Type: multipart/alternative; boundary=\"i\"\r\nContent-ID: <alt>\r\n\r\n"));
  part_mime.spec = "1.2.MIME";
  CHECK(imap::message_section(nested, part_mime, nested_structure) == std::optional<std::string>("Content-Type: text/html\r\n\r\n"));

  const std::string single = "Subject: plain\r\nContent-Type: text/plain\r\n\r\nbody\r\n";
  imap::FetchItem mime;
  mime.kind = imap::FetchItem::Kind::section;
  mime.spec = "1.MIME";
  CHECK(imap::message_section(single, mime, summarize_message(single).body_structure.dump()) ==
        std::optional<std::string>("Subject: plain\r\nContent-Type: text/plain\r\n\r\n"));
}

TEST_CASE("imap fetch: BODY has no extension data, BODYSTRUCTURE has it, subtypes as written", "[imap]") {
  const std::string message =
      "Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/Mixed; boundary=b\r\nContent-Language: fr\r\n\r\n"
      "--b\r\nContent-Type: text/X-MyOwn; charset=utf-8\r\nContent-Language: en, de\r\n"
      "Content-Location: http://example.org/a\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\r\none\r\n"
      "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n";
  const auto structure = summarize_message(message).body_structure.dump();
  // RFC 9051 7.5.2: body-type-1part then body-ext-1part (md5, disposition, language, location);
  // multipart: the parts, the subtype, then body-ext-mpart (parameters, disposition, language, location).
  CHECK(imap::bodystructure_text(structure, false) ==
        "((\"text\" \"X-MyOwn\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 3 1)"
        "(\"application\" \"pdf\" NIL NIL NIL \"BASE64\" 4) \"Mixed\")");
  CHECK(imap::bodystructure_text(structure, true) ==
        "((\"text\" \"X-MyOwn\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 3 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" NIL (\"en\" \"de\") "
        "\"http://example.org/a\")"
        "(\"application\" \"pdf\" NIL NIL NIL \"BASE64\" 4 NIL (\"attachment\" (\"FILENAME\" \"a.pdf\")) NIL NIL) \"Mixed\" "
        "(\"BOUNDARY\" \"b\") NIL (\"fr\") NIL)");
  const auto items = imap::parse_fetch_items("FULL");
  REQUIRE(items);
  CHECK(items->back().kind == imap::FetchItem::Kind::body);
  CHECK(items->back().response_name() == "BODY");
  CHECK(imap::parse_fetch_items("BODY")->front().kind == imap::FetchItem::Kind::body);
}

TEST_CASE("imap fetch: BINARY of quoted-printable drops transport whitespace and soft line breaks", "[imap]") {
  // RFC 2045 6.7 rule 3: "=" then blanks then the line break is a soft break; blanks at the
  // end of a line were added in transport. "=3D" is "=", and a lone "=" stays.
  const std::string message =
      "Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
      "soft= \t\r\nbreak and=\r\n join\r\n"
      "trailing   \r\n"
      "tab\t\r\n"
      "a =3D b, c=d, =C3=A9\r\n";
  const auto structure = summarize_message(message).body_structure.dump();
  imap::FetchItem binary;
  binary.kind = imap::FetchItem::Kind::section;
  binary.binary = true;
  binary.spec = "1";
  const auto decoded = imap::binary_section(message, binary, structure);
  REQUIRE(decoded);
  CHECK(*decoded == "softbreak and join\r\ntrailing\r\ntab\r\na = b, c=d, \xc3\xa9\r\n");
  // BINARY.SIZE is the decoded size (RFC 3516 4.2), from the same bytes.
  binary.binary_size = true;
  CHECK(imap::binary_section(message, binary, structure)->size() == decoded->size());
}

TEST_CASE("mailbox store: an index of schema 2 moves its summaries aside and keeps every message", "[mail][store]") {
  coop::test::TempDir dir;
  {
    // mail/alice.db as the store wrote it before schema 3.
    auto db = coop::sqlite::Database::open(dir.path() / "alice.db");
    db->exec(R"sql(
      CREATE TABLE mailboxes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, special_use TEXT NOT NULL DEFAULT '',
        uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL DEFAULT 1, highest_modseq INTEGER NOT NULL DEFAULT 1,
        subscribed INTEGER NOT NULL DEFAULT 1);
      CREATE TABLE messages (mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id), uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL, internal_date INTEGER NOT NULL,
        flags INTEGER NOT NULL DEFAULT 0, keywords TEXT NOT NULL DEFAULT '', message_id TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '', envelope TEXT NOT NULL DEFAULT '{}', body_structure TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;
      CREATE INDEX messages_by_blob ON messages (mailbox_id, blob);
      CREATE TABLE expunged (mailbox_id INTEGER NOT NULL, uid INTEGER NOT NULL, modseq INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;
      INSERT INTO mailboxes (id, name, uidvalidity, uidnext, highest_modseq) VALUES (1, 'INBOX', 1700000000, 3, 5);
      INSERT INTO messages VALUES (1, 1, 4, 'b1', 10, 1700000000, 1, '', 'm1', 'first', '{"subject":"first"}', '{"type":"text"}');
      INSERT INTO messages VALUES (1, 2, 5, 'b2', 20, 1700000001, 0, '', 'm2', 'second', '{"subject":"second"}', '{}');
      PRAGMA user_version = 2;
    )sql");
  }
  MailboxStore store(dir.path());
  store.with_cache("alice", "INBOX", [](const MailboxCache& cache) {
    REQUIRE(cache.messages.size() == 2);
    CHECK(cache.messages[0].subject == "first");
    CHECK(cache.messages[0].flags == kSeen);
    CHECK(cache.messages[1].blob == "b2");
    CHECK(cache.uidvalidity == 1700000000);
  });
  CHECK(store.summaries("alice", "INBOX", 1) == std::pair<std::string, std::string>{R"({"subject":"first"})", R"({"type":"text"})"});
  const auto envelopes = store.envelopes("alice", "INBOX", {1, 2});
  REQUIRE(envelopes.size() == 2);
  CHECK(envelopes[1].json == R"({"subject":"second"})");
  CHECK(store.headers("alice", "INBOX", 1, 2).empty());
  CHECK(store.find_blob("alice", "INBOX", "b2") == std::optional<int64_t>(2));
  CHECK(store.append("alice", "INBOX", meta("b3", "third"), 0).uid == 3);
}

TEST_CASE("mailbox store: a hold hears of every committed change until it is released", "[mail][store]") {
  coop::test::TempDir dir;
  MailboxStore store(dir.path());
  int heard = 0, other = 0;
  const auto hold = store.hold("alice", "INBOX", [&] { ++heard; });
  const auto second = store.hold("alice", "INBOX", [&] { ++other; });
  REQUIRE(hold);
  REQUIRE(second);
  store.append("alice", "INBOX", meta("b1", "one"), 0);
  store.change_flags("alice", "INBOX", {1}, MailboxStore::FlagChange::add, kDeleted);
  store.change_flags("alice", "INBOX", {1}, MailboxStore::FlagChange::add, kDeleted);  // no change: no news
  store.expunge("alice", "INBOX", std::nullopt);
  CHECK_THROWS_AS(store.append("alice", "INBOX", meta("b2", "big"), 50), coop::Error);  // refused: no news
  store.append("alice", "Archive", meta("b3", "elsewhere"), 0);
  CHECK(heard == 3);
  store.release("alice", *hold);
  store.append("alice", "INBOX", meta("b4", "after"), 0);
  CHECK(heard == 3);
  CHECK(other == 4);  // the other hold still hears, and keeps the cache
  store.with_cache("alice", "INBOX", [](const MailboxCache& cache) { CHECK(cache.messages.size() == 1); });
  store.release("alice", *second);
}
