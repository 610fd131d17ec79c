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

namespace {
// Feeds DATA bytes in pieces of the given size; returns the content and what was left over.
struct DataResult {
  bool done = false;
  std::string content, rest;
};
DataResult read_data(std::string_view bytes, std::size_t piece) {
  DataReader reader;
  DataResult result;
  std::string in;
  for (std::size_t at = 0; at < bytes.size() && !result.done; at += piece) {
    in.append(bytes.substr(at, piece));
    result.done = reader.consume(in, result.content);
  }
  result.rest = in;
  return result;
}
}  // namespace

TEST_CASE("DATA ends only at CRLF dot CRLF, whatever the read sizes") {
  for (std::size_t piece : {1, 2, 3, 7, 1000}) {
    const auto r = read_data("Subject: a\r\n\r\nbody\r\n..stuffed\r\n.\r\nQUIT\r\n", piece);
    CHECK(r.done);
    CHECK(r.content == "Subject: a\r\n\r\nbody\r\n.stuffed\r\n");
    if (piece == 1000) CHECK(r.rest == "QUIT\r\n");
  }
  CHECK(read_data(".\r\n", 1).content.empty());
}

TEST_CASE("smuggling terminators are content, not the end of DATA") {
  // CVE-2023-51764 and kin: <CRLF>.<LF>, <LF>.<CRLF>, <LF>.<LF> and <CR>.<CR> end nothing.
  for (std::string_view trick : {"\r\n.\n", "\n.\r\n", "\n.\n", "\r.\r"}) {
    for (std::size_t piece : {1, 4, 1000}) {
      std::string bytes = "Subject: first\r\n\r\nhello";
      bytes += trick;
      bytes += "MAIL FROM:<forged@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n";
      const auto r = read_data(bytes, piece);
      INFO("piece " << piece);
      CHECK_FALSE(r.done);
      CHECK(r.content.find("MAIL FROM:<forged@example.org>") != std::string::npos);
    }
  }
  const auto r = read_data("a\n.\nMAIL FROM:<x@y>\r\n.\r\n", 1000);
  CHECK(r.done);
  CHECK(r.content == "a\r\n.\r\nMAIL FROM:<x@y>\r\n");
}

TEST_CASE("bare LF line ends are stored as CRLF and counted") {
  DataReader reader;
  std::string in = "To: a\nSubject: b\n\nline\r\n.\r\n", out;
  CHECK(reader.consume(in, out));
  CHECK(out == "To: a\r\nSubject: b\r\n\r\nline\r\n");
  CHECK(reader.bare_line_feeds() == 3);
}

TEST_CASE("BDAT chunks get CRLF line ends, also across chunk boundaries") {
  std::string out;
  char previous = '\n';
  append_crlf_normalised("a\nb\r", previous, out);
  append_crlf_normalised("\nc\n", previous, out);
  append_crlf_normalised("\n", previous, out);
  CHECK(out == "a\r\nb\r\nc\r\n\r\n");
}
