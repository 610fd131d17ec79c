// IMAP command gathering and tokens (RFC 9051 4, 9; RFC 7888 LITERAL+).
#include <catch2/catch.hpp>

#include "common/mail/mailbox_formats.h"
#include "workers/mail/imap_parser.h"
#include "workers/mail/imap_search.h"

using namespace coop::mail::imap;
using Status = CommandReader::Status;

TEST_CASE("imap: commands come whole, in any split, with literals after a continuation", "[imap]") {
  const std::string bytes = "a1 LOGIN {5}\r\nalice \"pass word\"\r\na2 NOOP\r\n";
  for (std::size_t step : {bytes.size(), std::size_t{1}, std::size_t{7}}) {
    CommandReader reader;
    std::vector<RawCommand> commands;
    int continuations = 0;
    for (std::size_t at = 0; at < bytes.size(); at += step) {
      reader.feed(bytes.substr(at, step));
      for (auto status = reader.next(); status != Status::need_more; status = reader.next()) {
        if (status == Status::need_continuation) ++continuations;
        if (status == Status::command) commands.push_back(reader.take());
        REQUIRE(status != Status::refused);
        REQUIRE(status != Status::fatal);
      }
    }
    REQUIRE(commands.size() == 2);
    CHECK(continuations == 1);
    Cursor c(commands[0]);
    CHECK(c.tag() == std::optional<std::string>("a1"));
    CHECK(c.space());
    CHECK(c.atom() == std::optional<std::string>("LOGIN"));
    CHECK(c.space());
    CHECK(c.astring() == std::optional<std::string>("alice"));
    CHECK(c.space());
    CHECK(c.astring() == std::optional<std::string>("pass word"));
    CHECK(c.at_end());
    CHECK(tag_of(commands[1]) == "a2");
  }
}

TEST_CASE("imap: LITERAL+ needs no continuation; limits refuse before reading", "[imap]") {
  CommandReader reader(ReaderLimits{100, 10, 1000});
  reader.feed("a1 APPEND INBOX {3+}\r\nabc\r\n");
  CHECK(reader.next() == Status::command);
  auto command = reader.take();
  REQUIRE(command.literals.size() == 1);
  CHECK(command.literals[0] == "abc");
  // A synchronizing literal over the limit: NO [TOOBIG], the session goes on.
  reader.feed("a2 APPEND INBOX {11}\r\na3 NOOP\r\n");
  CHECK(reader.next() == Status::refused);
  CHECK(reader.reply().rfind("a2 NO [TOOBIG]", 0) == 0);
  CHECK(reader.next() == Status::command);
  CHECK(tag_of(reader.take()) == "a3");
  // A non-synchronizing one over the limit ends the connection (RFC 7888 4).
  reader.feed("a4 APPEND INBOX {11+}\r\n");
  CHECK(reader.next() == Status::fatal);
  // A line over the limit: BAD, then the next command.
  CommandReader lines(ReaderLimits{100, 10, 1000});
  lines.feed("a5 " + std::string(200, 'x'));
  CHECK(lines.next() == Status::refused);
  CHECK(lines.reply().rfind("a5 BAD", 0) == 0);
  lines.feed(std::string(50, 'x') + "\r\na6 NOOP\r\n");
  CHECK(lines.next() == Status::command);
  CHECK(tag_of(lines.take()) == "a6");
}

TEST_CASE("imap: tokens, quoting and sequence sets", "[imap]") {
  RawCommand command{{R"(t LIST "" "Arch\"ive/*" NIL inbox 4294967295 4294967296)"}, {}};
  Cursor c(command);
  CHECK(c.tag() == std::optional<std::string>("t"));
  c.space();
  CHECK(c.atom() == std::optional<std::string>("LIST"));
  c.space();
  CHECK(c.string() == std::optional<std::string>(""));
  c.space();
  CHECK(c.list_mailbox() == std::optional<std::string>("Arch\"ive/*"));
  c.space();
  CHECK(c.nstring() == std::optional<std::string>(""));
  c.space();
  CHECK(c.mailbox() == std::optional<std::string>("INBOX"));
  c.space();
  CHECK(c.number() == std::optional<uint32_t>(4294967295u));
  c.space();
  CHECK_FALSE(c.number());
  RawCommand bad{{R"(t "unterminated)"}, {}};
  Cursor b(bad);
  b.tag();
  b.space();
  CHECK_FALSE(b.string());
  CHECK(quote("plain") == "\"plain\"");
  CHECK(quote("say \"hi\"") == R"("say \"hi\"")");
  CHECK(quote("two\r\nlines") == "{10}\r\ntwo\r\nlines");
  auto set = parse_sequence_set("1:3,7,9:*", 12);
  REQUIRE(set);
  CHECK(set->contains(2));
  CHECK_FALSE(set->contains(5));
  CHECK(set->contains(12));
  CHECK(parse_sequence_set("*:4", 10)->contains(7));
  for (const char* bad_set : {"", "0", "1,", "a", "1::2", "1:2:3", "99999999999"}) CHECK_FALSE(parse_sequence_set(bad_set, 10));
  CHECK(tag_of(RawCommand{{"+bad NOOP"}, {}}) == "*");
  RawCommand fetch{{"f FETCH 1:*,4 (FLAGS)"}, {}};
  Cursor f(fetch);
  f.tag();
  f.space();
  f.atom();
  f.space();
  CHECK(f.sequence_set() == std::optional<std::string>("1:*,4"));
}

TEST_CASE("imap: modified UTF-7 mailbox names both ways (RFC 3501 5.1.3)", "[imap]") {
  // The RFC's own example, and the shapes that need care: "&", runs, astral planes.
  CHECK(to_modified_utf7("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  CHECK(from_modified_utf7("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == std::optional<std::string>("~peter/mail/台北/日本語"));
  CHECK(to_modified_utf7("Café & Co") == "Caf&AOk- &- Co");
  CHECK(from_modified_utf7("Caf&AOk- &- Co") == std::optional<std::string>("Café & Co"));
  CHECK(to_modified_utf7("plain ASCII") == "plain ASCII");
  for (const std::string name : {"Ünïcödé/📬 post", "a\tb", "&&&", "日本語&日本語", "€"})
    CHECK(from_modified_utf7(to_modified_utf7(name)) == std::optional<std::string>(name));
  // Not modified UTF-7: an unterminated run, "/" from plain base64, ASCII hidden in a run,
  // a lone surrogate, leftover bits, 8-bit bytes.
  for (const std::string bad : {"&AOk", "&AO/-", "&AGEAYgBj-", "&2D0-", "&AOkA-", "Caf\xc3\xa9"})
    CHECK_FALSE(from_modified_utf7(bad));
}

TEST_CASE("STORE flag lists: system flags as bits, keywords in order, anything else refused") {
  const auto list = parse_flag_list("(\\Seen $Junk \\FLAGGED Later)");
  REQUIRE(list.ok);
  CHECK(list.system == (coop::mail::kSeen | coop::mail::kFlagged));
  CHECK(list.keywords == std::vector<std::string>{"$Junk", "Later"});
  CHECK(parse_flag_list("\\Draft").system == coop::mail::kDraft);
  CHECK(parse_flag_list("()").ok);
  CHECK_FALSE(parse_flag_list("(\\Bogus)").ok);
  CHECK(parse_flag_list("(a{b)").bad_word == "a{b");
  CHECK_FALSE(parse_flag_list("(\\Seen").ok);
}

TEST_CASE("AUTHENTICATE PLAIN responses decode to authzid, authcid and password") {
  const auto plain = decode_sasl_plain("AGFsaWNlAHNlY3JldA==");  // "\0alice\0secret"
  REQUIRE(plain);
  CHECK(plain->authzid.empty());
  CHECK(plain->authcid == "alice");
  CHECK(plain->password == "secret");
  CHECK(decode_sasl_plain("YQBiAGM=")->authzid == "a");  // "a\0b\0c"
  CHECK_FALSE(decode_sasl_plain("YWxpY2U="));            // no NULs
  CHECK_FALSE(decode_sasl_plain("!!"));
}

TEST_CASE("SEARCH criteria parse into a tree, and nesting is bounded") {
  auto words = search_words(R"(OR (SEEN FROM "ann smith") NOT 1:3 HEADER X-Tag "" SUBJECT Lunch)");
  auto key = parse_search_key(words);
  REQUIRE(key);
  CHECK(key->kind == SearchKey::Kind::or_);
  REQUIRE(key->children.size() == 2);
  CHECK(key->children[0].kind == SearchKey::Kind::and_);
  CHECK(key->children[0].children[1].field == "from");
  CHECK(key->children[0].children[1].text == "ann smith");
  CHECK(key->children[1].kind == SearchKey::Kind::not_);
  CHECK(key->children[1].children[0].text == "1:3");
  key = parse_search_key(words);
  REQUIRE(key);
  CHECK(key->field == "x-tag");
  CHECK(key->text.empty());
  CHECK(parse_search_key(words)->text == "lunch");
  CHECK(words.done());

  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "NOT ";
  auto many = search_words(deep + "ALL");
  CHECK_FALSE(parse_search_key(many));
  auto parens = search_words(std::string(50000, '(') + "ALL" + std::string(50000, ')'));
  CHECK_FALSE(parse_search_key(parens));
  auto shallow = search_words("NOT NOT NOT ALL");
  CHECK(parse_search_key(shallow));
  // RFC 5032 WITHIN, and RECENT/NEW/OLD as \Recent tests.
  auto within = search_words("OLDER 3600 YOUNGER 60 NEW OLD");
  CHECK(parse_search_key(within)->kind == SearchKey::Kind::older);
  CHECK(parse_search_key(within)->number == 60);
  const auto fresh = parse_search_key(within);
  REQUIRE(fresh);
  CHECK(fresh->kind == SearchKey::Kind::and_);
  CHECK(fresh->children.at(0).flag == coop::mail::imap::kRecent);
  const auto old = parse_search_key(within);
  CHECK((old->flag == coop::mail::imap::kRecent && !old->set));
  for (const char* bad : {"LARGER x", "SINCE 32-Foo-2020", "(ALL", ")", "", "SENTON", "SENTBEFORE yesterday", "OLDER", "YOUNGER -5"}) {
    auto w = search_words(bad);
    CHECK_FALSE(parse_search_key(w));
  }
  // SENTBEFORE, SENTON, SENTSINCE: RFC 3501 and RFC 9051 base keys, a day like SINCE's.
  auto sent = search_words("SENTSINCE 1-Feb-2027 SENTON 2-Feb-2027 SENTBEFORE 3-Feb-2027");
  const auto since = parse_search_key(sent), on = parse_search_key(sent), before = parse_search_key(sent);
  REQUIRE((since && on && before));
  CHECK(since->kind == SearchKey::Kind::sent_since);
  CHECK(on->kind == SearchKey::Kind::sent_on);
  CHECK(before->kind == SearchKey::Kind::sent_before);
  CHECK(on->number - since->number == 86400);
}
