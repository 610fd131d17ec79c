// summarize_message: IMAP ENVELOPE and BODYSTRUCTURE from raw messages, and robustness on garbage.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "workers/mail/mime_summary.h"

using coop::mail::summarize_message;
using nlohmann::json;

namespace {

// Test messages are written with LF; stored mail uses CRLF (RFC 5322 2.1).
std::string crlf(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

json address(const char* name, const char* mailbox, const char* host) {
  return {{"name", name ? json(name) : json(nullptr)}, {"mailbox", mailbox}, {"host", host}};
}

// The encoded body a leaf node points at, to check "offset" and "size" together.
std::string_view body_of(std::string_view message, const json& node) {
  return message.substr(node.at("offset").get<size_t>(), node.at("size").get<size_t>());
}

void require_serialisable(const coop::mail::MimeSummary& summary) {
  REQUIRE_NOTHROW(summary.envelope.dump());
  REQUIRE_NOTHROW(summary.body_structure.dump());
  REQUIRE_NOTHROW(json(summary.subject).dump());
  REQUIRE_NOTHROW(json(summary.message_id).dump());
  CHECK(summary.envelope.is_object());
  CHECK(summary.body_structure.is_object());
}

int depth_of(const json& node) {
  int deepest = 0;
  if (node.contains("parts")) {
    for (const auto& child : node["parts"]) deepest = std::max(deepest, depth_of(child));
  }
  if (node.contains("body") && node["body"].is_object()) deepest = std::max(deepest, depth_of(node["body"]));
  return deepest + 1;
}

}  // namespace

TEST_CASE("a text/plain message decodes RFC 2047 encoded words in Subject and the From name") {
  // "Grüße aus Köln" and "Jürgen Müller" in UTF-8, base64-encoded.
  const std::string message = crlf(
      "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.org>\n"
      "To: Alice <alice@example.com>, bob@example.net\n"
      "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\n"
      "Date: Tue, 14 May 2024 10:30:00 +0200\n"
      "Message-ID: <abc123@example.org>\n"
      "In-Reply-To: <prev@example.com>\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "\n"
      "Hallo Alice,\n"
      "zweite Zeile.\n");
  const auto summary = summarize_message(message);

  CHECK(summary.subject == "Grüße aus Köln");
  CHECK(summary.message_id == "abc123@example.org");
  CHECK(summary.date == 1715675400);
  CHECK_FALSE(summary.has_attachments);

  const auto& envelope = summary.envelope;
  CHECK(envelope["subject"] == "Grüße aus Köln");
  CHECK(envelope["date"] == "Tue, 14 May 2024 10:30:00 +0200");
  CHECK(envelope["from"] == json::array({address("Jürgen Müller", "juergen", "example.org")}));
  CHECK(envelope["to"] ==
        json::array({address("Alice", "alice", "example.com"), address(nullptr, "bob", "example.net")}));
  CHECK(envelope["cc"] == json::array());
  CHECK(envelope["bcc"] == json::array());
  // IMAP sends these two as they stand in the header, angle brackets included.
  CHECK(envelope["message_id"] == "<abc123@example.org>");
  CHECK(envelope["in_reply_to"] == "<prev@example.com>");

  const auto& body = summary.body_structure;
  CHECK(body["type"] == "text");
  CHECK(body["subtype"] == "plain");
  CHECK(body["params"] == json{{"charset", "utf-8"}});
  CHECK(body["encoding"] == "7bit");
  CHECK(body["part"] == "1");
  CHECK(body["lines"] == 2);
  CHECK(body["disposition"].is_null());
  CHECK(body_of(message, body) == "Hallo Alice,\r\nzweite Zeile.\r\n");
  require_serialisable(summary);
}

TEST_CASE("multipart/mixed with an attachment numbers the parts 1 and 2 and reports the filename") {
  const std::string message = crlf(
      "From: alice@example.com\n"
      "Subject: report\n"
      "Content-Type: multipart/mixed; boundary=\"outer\"\n"
      "\n"
      "preamble\n"
      "--outer\n"
      "Content-Type: text/plain; charset=us-ascii\n"
      "\n"
      "See attached.\n"
      "--outer\n"
      "Content-Type: application/pdf; name=\"report.pdf\"\n"
      "Content-Disposition: attachment; filename=\"report.pdf\"\n"
      "Content-Transfer-Encoding: BASE64\n"
      "Content-ID: <part2@example.com>\n"
      "\n"
      "JVBERi0xLjQK\n"
      "--outer--\n"
      "epilogue\n");
  const auto summary = summarize_message(message);
  CHECK(summary.has_attachments);

  const auto& root = summary.body_structure;
  CHECK(root["type"] == "multipart");
  CHECK(root["subtype"] == "mixed");
  CHECK(root["params"]["boundary"] == "outer");
  CHECK(root["part"] == "");
  REQUIRE(root["parts"].size() == 2);

  const auto& text = root["parts"][0];
  CHECK(text["part"] == "1");
  CHECK(text["type"] == "text");
  // RFC 2046 5.1.1: the CRLF before the delimiter is not part of the body.
  CHECK(body_of(message, text) == "See attached.");
  CHECK(text["lines"] == 1);

  const auto& pdf = root["parts"][1];
  CHECK(pdf["part"] == "2");
  CHECK(pdf["type"] == "application");
  CHECK(pdf["subtype"] == "pdf");
  CHECK(pdf["encoding"] == "base64");
  CHECK(pdf["id"] == "<part2@example.com>");
  CHECK(pdf["disposition"]["type"] == "attachment");
  CHECK(pdf["disposition"]["params"]["filename"] == "report.pdf");
  CHECK(pdf["params"]["name"] == "report.pdf");
  CHECK(body_of(message, pdf) == "JVBERi0xLjQK");
  CHECK_FALSE(pdf.contains("lines"));
}

TEST_CASE("multipart/alternative inside multipart/mixed is numbered 1.1 and 1.2") {
  const std::string message =
      "From: carol@example.com\n"
      "Content-Type: multipart/mixed; boundary=mixed\n"
      "\n"
      "--mixed\n"
      "Content-Type: multipart/alternative; boundary=alt\n"
      "\n"
      "--alt\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "Hello =C3=A9\n"
      "--alt\n"
      "Content-Type: text/html; charset=utf-8\n"
      "\n"
      "<p>Hello</p>\n"
      "--alt--\n"
      "\n"
      "--mixed\n"
      "Content-Type: text/plain\n"
      "\n"
      "footer\n"
      "--mixed--\n";
  const auto summary = summarize_message(message);
  CHECK_FALSE(summary.has_attachments);

  const auto& root = summary.body_structure;
  REQUIRE(root["parts"].size() == 2);
  const auto& alternative = root["parts"][0];
  CHECK(alternative["subtype"] == "alternative");
  CHECK(alternative["part"] == "1");
  REQUIRE(alternative["parts"].size() == 2);
  CHECK(alternative["parts"][0]["part"] == "1.1");
  CHECK(alternative["parts"][0]["encoding"] == "quoted-printable");
  CHECK(body_of(message, alternative["parts"][0]) == "Hello =C3=A9");
  CHECK(alternative["parts"][1]["part"] == "1.2");
  CHECK(alternative["parts"][1]["subtype"] == "html");
  CHECK(root["parts"][1]["part"] == "2");
}

TEST_CASE("a message/rfc822 attachment carries its own envelope and body structure") {
  const std::string message = crlf(
      "From: erin@example.com\n"
      "Subject: Fwd: original\n"
      "Content-Type: multipart/mixed; boundary=\"b1\"\n"
      "\n"
      "--b1\n"
      "Content-Type: text/plain\n"
      "\n"
      "Forwarding this.\n"
      "--b1\n"
      "Content-Type: message/rfc822\n"
      "Content-Disposition: attachment\n"
      "\n"
      "From: Grace <grace@example.net>\n"
      "To: erin@example.com\n"
      "Subject: original\n"
      "Date: Mon, 13 May 2024 12:00:00 -0700\n"
      "Message-ID: <orig@example.net>\n"
      "Content-Type: multipart/alternative; boundary=inner\n"
      "\n"
      "--inner\n"
      "Content-Type: text/plain\n"
      "\n"
      "Original body\n"
      "--inner\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>Original body</p>\n"
      "--inner--\n"
      "--b1--\n");
  const auto summary = summarize_message(message);
  CHECK(summary.has_attachments);
  CHECK(summary.subject == "Fwd: original");

  const auto& attached = summary.body_structure["parts"][1];
  CHECK(attached["type"] == "message");
  CHECK(attached["subtype"] == "rfc822");
  CHECK(attached["part"] == "2");
  const auto& envelope = attached["envelope"];
  CHECK(envelope["subject"] == "original");
  CHECK(envelope["from"] == json::array({address("Grace", "grace", "example.net")}));
  CHECK(envelope["sender"] == envelope["from"]);
  CHECK(envelope["message_id"] == "<orig@example.net>");
  CHECK(envelope["date"] == "Mon, 13 May 2024 12:00:00 -0700");

  // RFC 3501 6.4.5: the attached message's multipart body has parts 2.1 and 2.2.
  const auto& body = attached["body"];
  CHECK(body["subtype"] == "alternative");
  REQUIRE(body["parts"].size() == 2);
  CHECK(body["parts"][0]["part"] == "2.1");
  CHECK(body["parts"][1]["part"] == "2.2");

  // The encapsulated message runs from its first header to the CRLF before "--b1--".
  const auto encapsulated = body_of(message, attached);
  CHECK(encapsulated.starts_with("From: Grace"));
  CHECK(encapsulated.ends_with("--inner--"));
  CHECK(attached["lines"] == 16);
}

TEST_CASE("a single-part message/rfc822 body is numbered N.1") {
  const std::string message =
      "Content-Type: multipart/mixed; boundary=x\n\n"
      "--x\nContent-Type: message/rfc822\n\nSubject: inner\n\nhello\n--x--\n";
  const auto summary = summarize_message(message);
  const auto& attached = summary.body_structure["parts"][0];
  CHECK(attached["part"] == "1");
  CHECK(attached["body"]["part"] == "1.1");
  CHECK(attached["envelope"]["subject"] == "inner");
  // No disposition and no filename: a forwarded message shown inline is not an attachment.
  CHECK_FALSE(summary.has_attachments);
}

TEST_CASE("missing Sender and Reply-To default to From (RFC 3501 7.4.2)") {
  const auto summary = summarize_message("From: Dana <dana@example.com>\nTo: x@example.com\n\nhi\n");
  const auto from = json::array({address("Dana", "dana", "example.com")});
  CHECK(summary.envelope["from"] == from);
  CHECK(summary.envelope["sender"] == from);
  CHECK(summary.envelope["reply_to"] == from);

  const auto explicit_reply = summarize_message(
      "From: Dana <dana@example.com>\nSender: list@example.org\nReply-To: team@example.org\n\nhi\n");
  CHECK(explicit_reply.envelope["sender"] == json::array({address(nullptr, "list", "example.org")}));
  CHECK(explicit_reply.envelope["reply_to"] == json::array({address(nullptr, "team", "example.org")}));
}

TEST_CASE("group syntax keeps its start and end markers around the group's mailboxes") {
  // RFC 3501 7.4.2: (NIL NIL "friends" NIL) starts the group, (NIL NIL NIL NIL) ends it.
  const json start = {{"name", nullptr}, {"mailbox", "friends"}, {"host", nullptr}, {"group", true}};
  const json end = {{"name", nullptr}, {"mailbox", nullptr}, {"host", nullptr}, {"group", true}};
  const auto summary = summarize_message("To: friends: a@example.com, B <b@example.com>;, c@example.com\n\nx\n");
  CHECK(summary.envelope["to"] == json::array({start, address(nullptr, "a", "example.com"), address("B", "b", "example.com"), end,
                                               address(nullptr, "c", "example.com")}));
  const auto empty = summarize_message("To: undisclosed-recipients:;\n\nx\n");
  CHECK(empty.envelope["to"].size() == 2);
  CHECK(empty.envelope["to"][0]["mailbox"] == "undisclosed-recipients");
}

TEST_CASE("an absent or unparseable Date gives 0 and a raw date string") {
  CHECK(summarize_message("Subject: x\n\nbody\n").date == 0);
  const auto bad = summarize_message("Date: not a date\n\nbody\n");
  CHECK(bad.date == 0);
  CHECK(bad.envelope["date"] == "not a date");
}

TEST_CASE("a non-text leaf with a filename counts as an attachment even when inline") {
  const auto summary = summarize_message(
      "Content-Type: multipart/related; boundary=r\n\n"
      "--r\nContent-Type: text/html\n\n<img src=cid:a>\n"
      "--r\nContent-Type: image/png; name=a.png\nContent-Disposition: inline\n\niVBORw0KGgo=\n--r--\n");
  CHECK(summary.has_attachments);
}

TEST_CASE("garbage input gives a best-effort summary that serialises") {
  SECTION("empty input") {
    const auto summary = summarize_message("");
    require_serialisable(summary);
    CHECK(summary.envelope["from"] == json::array());
    CHECK(summary.envelope["subject"].is_null());
    CHECK(summary.body_structure["part"] == "1");
    CHECK(summary.body_structure["size"] == 0);
  }
  SECTION("random bytes") {
    std::mt19937 random(42);
    for (int round = 0; round < 50; ++round) {
      std::string bytes(static_cast<size_t>(random() % 2000), '\0');
      for (char& c : bytes) c = static_cast<char>(random());
      require_serialisable(summarize_message(bytes));
    }
  }
  SECTION("headers without a body or a final line break") {
    const auto summary = summarize_message("From: a@example.com\r\nSubject: only headers");
    require_serialisable(summary);
    CHECK(summary.subject == "only headers");
    CHECK(summary.body_structure["size"] == 0);
  }
  SECTION("raw 8-bit UTF-8 headers are kept") {
    const auto summary = summarize_message("From: Zoë <zoe@example.gr>\nSubject: 日本語の件名\n\nx\n");
    require_serialisable(summary);
    CHECK(summary.subject == "日本語の件名");
    CHECK(summary.envelope["from"][0]["name"] == "Zoë");
  }
  SECTION("raw Latin-1 headers become valid UTF-8") {
    const auto summary = summarize_message("From: Jos\xe9 <jose@example.es>\nSubject: Caf\xe9\n\nx\n");
    require_serialisable(summary);
    CHECK(summary.subject == "Café");
    CHECK(summary.envelope["from"][0]["name"] == "José");
  }
  SECTION("invalid bytes in parameters and encoded words") {
    const auto summary = summarize_message(
        "Subject: =?utf-8?B?/w==?= =?x-unknown?Q?=FF?=\n"
        "Content-Type: text/plain; charset=\"\xff\xfe\"; name*=utf-8''%FF%FE.txt\n"
        "Content-Description: \xc3\x28\n\nx");
    require_serialisable(summary);
  }
  SECTION("an unterminated multipart and a truncated Content-Type") {
    require_serialisable(summarize_message("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: tex"));
    require_serialisable(summarize_message("Content-Type: multipart/mixed; boundary=\"x"));
    require_serialisable(summarize_message("Content-Type: message/rfc822\n\n"));
    require_serialisable(summarize_message("\n\n\n"));
    require_serialisable(summarize_message(std::string("\0\0\0From: \0x\n\n\0", 14)));
  }
}

TEST_CASE("nesting is cut off at kMaxMimeDepth") {
  std::string message;
  for (int level = 0; level < 200; ++level) {
    message += "Content-Type: multipart/mixed; boundary=b" + std::to_string(level) + "\n\n--b" + std::to_string(level) + "\n";
  }
  message += "Content-Type: text/plain\n\ndeep\n";
  const auto summary = summarize_message(message);
  require_serialisable(summary);
  CHECK(depth_of(summary.body_structure) <= coop::mail::kMaxMimeDepth + 1);
  CHECK(summary.body_structure.dump().find("\"truncated\":true") != std::string::npos);

  std::string messages;
  for (int level = 0; level < 200; ++level) messages += "Content-Type: message/rfc822\n\n";
  messages += "Subject: innermost\n\nx\n";
  const auto nested = summarize_message(messages);
  require_serialisable(nested);
  CHECK(depth_of(nested.body_structure) <= coop::mail::kMaxMimeDepth + 1);
}

TEST_CASE("the number of parts is cut off at kMaxMimeParts") {
  std::string message = "Content-Type: multipart/mixed; boundary=p\n\n";
  for (int part = 0; part < coop::mail::kMaxMimeParts + 50; ++part) message += "--p\nContent-Type: text/plain\n\nx\n";
  message += "--p--\n";
  const auto summary = summarize_message(message);
  require_serialisable(summary);
  // The multipart itself is one of the parts counted.
  CHECK(summary.body_structure["parts"].size() == static_cast<size_t>(coop::mail::kMaxMimeParts - 1));
  CHECK(summary.body_structure["truncated"] == true);
}

TEST_CASE("message_text: the subject decoded, the From mailbox, every text part but attachments, HTML as text with its links") {
  const std::string message =
      "From: \"Offers\" <Deals@Pharma.example>\r\n"
      "Subject: =?UTF-8?B?Q2jDqHJlIG9mZnJl?=\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
      "--outer\r\n"
      "Content-Type: multipart/alternative; boundary=alt\r\n\r\n"
      "--alt\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n"
      "QnV5IG5vdyDigJQgY2hlYXA=\r\n"
      "--alt\r\n"
      "Content-Type: text/html; charset=utf-8\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
      "<p>Click <a href=3D\"https://evil.example/win\">here</a> &amp; win</p>\r\n"
      "--alt--\r\n"
      "--outer\r\n"
      "Content-Type: text/plain\r\n"
      "Content-Disposition: attachment; filename=notes.txt\r\n\r\n"
      "attached words stay out\r\n"
      "--outer--\r\n";
  const auto text = coop::mail::message_text(message);
  CHECK(text.subject == "Chère offre");
  CHECK(text.from == "Deals@Pharma.example");
  CHECK(text.body.find("Buy now — cheap") != std::string::npos);
  CHECK(text.body.find("Click here & win") != std::string::npos);
  CHECK(text.body.find("https://evil.example/win") != std::string::npos);
  CHECK(text.body.find("<p>") == std::string::npos);
  CHECK(text.body.find("attached") == std::string::npos);
  // A cap on the text, and bytes that are no message at all.
  CHECK(coop::mail::message_text(message, 10).body.size() <= 10);
  const auto garbage = coop::mail::message_text(std::string("\xff\xfe\x00 not mail", 14));
  CHECK(garbage.subject.empty());
  CHECK(garbage.from.empty());
}
