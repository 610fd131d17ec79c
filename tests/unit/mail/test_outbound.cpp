// The outbound queue's store, RFC 3464 reports, submission checks and DNS record decoding.
#include <catch2/catch.hpp>

#include "common/net/dns.h"
#include "tests/unit/common/temp_dir.h"
#include "workers/mail/auth/auth_results.h"
#include "workers/mail/outbound/dsn.h"
#include "workers/mail/outbound/queue_store.h"
#include "workers/mail/submission.h"

using namespace coop::mail;

TEST_CASE("the queue hands out due batches per domain and forgets finished messages") {
  coop::test::TempDir dir;
  QueueStore q(dir.path() / "queue.db");
  OutboundMessage m;
  m.blob = "abc";
  m.size = 10;
  m.sender = "alice@example.org";
  const auto id = q.enqueue(m, {"x@One.example", "y@one.example", "Y@ONE.example", "z@two.example"}, 1000);
  CHECK(q.size() == 1);
  auto due = q.due(999, 10, {});
  CHECK(due.empty());
  due = q.due(1000, 10, {});
  REQUIRE(due.size() == 2);  // one.example and two.example; Y@ONE was y@one again
  CHECK(due[0].domain == "one.example");
  CHECK(due[0].recipients.size() == 2);
  CHECK(due[0].message.sender == "alice@example.org");
  // In flight: not handed out twice.
  std::vector<int64_t> busy;
  for (const auto& r : due[0].recipients) busy.push_back(r.id);
  CHECK(q.due(1000, 10, busy).size() == 1);

  // x delivered, y deferred to 5000, z failed with a report queued in the same step.
  std::vector<DeliveryOutcome> outcomes = {
      {due[0].recipients[0].id, DeliveryOutcome::Kind::delivered, "250 ok", "mx", 0, false},
      {due[0].recipients[1].id, DeliveryOutcome::Kind::deferred, "451 later", "mx", 5000, false},
      {due[1].recipients[0].id, DeliveryOutcome::Kind::failed, "550 no", "mx2", 0, false}};
  OutboundMessage report;
  report.blob = "dsn";
  report.size = 3;
  q.record(outcomes, {{report, {"alice@example.org"}}}, 2000);
  CHECK(q.size() == 2);
  CHECK(q.next_due() == 2000);  // the report is due at once
  const auto entry = q.find(id);
  REQUIRE(entry);
  CHECK(entry->second[1].state == "queued");
  CHECK(entry->second[1].attempts == 1);
  CHECK(entry->second[1].last_error == "451 later");
  CHECK(entry->second[2].state == "failed");
  // retry makes y due now; delivering it finishes the message.
  CHECK(q.retry(id, 2500));
  due = q.due(2500, 10, {});
  REQUIRE(due.size() == 2);
  for (const auto& b : due) {
    std::vector<DeliveryOutcome> done;
    for (const auto& r : b.recipients) done.push_back({r.id, DeliveryOutcome::Kind::delivered, "250", "", 0, false});
    q.record(done, {}, 2600);
  }
  CHECK(q.size() == 0);
  CHECK_FALSE(q.find(id));
  CHECK_FALSE(q.retry(id, 1));
  CHECK_FALSE(q.remove(id));
}

TEST_CASE("a queued message survives reopening and can be deleted") {
  coop::test::TempDir dir;
  int64_t id = 0;
  {
    QueueStore q(dir.path() / "queue.db");
    OutboundMessage m;
    m.blob = "b";
    id = q.enqueue(m, {"a@b.example"}, 1);
  }
  QueueStore q(dir.path() / "queue.db");
  REQUIRE(q.list().size() == 1);
  CHECK(q.remove(id));
  CHECK(q.list().empty());
}

TEST_CASE("reports say why, in words and in RFC 3464 fields") {
  CHECK(enhanced_status("550 5.1.1 <x@y>: no such user") == "5.1.1");
  CHECK(enhanced_status("550-5.7.1 policy") == "5.7.1");
  CHECK(enhanced_status("554 no enhanced code") == "5.0.0");
  CHECK(enhanced_status("451 4.4.1 timed out") == "4.4.1");
  CHECK(enhanced_status("connection refused") == "4.0.0");
  DsnReport r;
  r.reporting_host = "coop.example";
  r.from = "postmaster@coop.example";
  r.to = "alice@coop.example";
  r.arrival = 1000;
  r.now = 2000;
  r.retry_until = 500000;
  r.recipients = {{"gone@example.net", true, "550 5.1.1 no such user", "mx.example.net[192.0.2.1]:25"},
                  {"slow@example.net", true, "451 4.4.1 timed out (gave up)", ""}};
  const auto dsn = build_dsn(r, "Subject: original\r\nFrom: alice@coop.example\r\n\r\nsecret body\r\n");
  CHECK(dsn.find("Content-Type: multipart/report; report-type=delivery-status;") != std::string::npos);
  CHECK(dsn.find("Reporting-MTA: dns; coop.example") != std::string::npos);
  CHECK(dsn.find("Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1") != std::string::npos);
  CHECK(dsn.find("Diagnostic-Code: smtp; 550 5.1.1 no such user") != std::string::npos);
  CHECK(dsn.find("Status: 5.4.7") != std::string::npos);  // gave up on a temporary failure
  CHECK(dsn.find("Subject: original") != std::string::npos);
  CHECK(dsn.find("secret body") == std::string::npos);  // headers only
  CHECK(dsn.find("Auto-Submitted: auto-replied") != std::string::npos);
  r.recipients = {{"slow@example.net", false, "451 4.4.1 timed out", ""}};
  const auto delay = build_dsn(r, "Subject: x\r\n\r\n");
  CHECK(delay.find("Action: delayed\r\nStatus: 4.4.1") != std::string::npos);
  CHECK(delay.find("Will-Retry-Until:") != std::string::npos);
}

TEST_CASE("submission checks From: and adds Date and Message-ID") {
  const std::vector<std::string> allowed = {"alice@example.org", "info@example.org"};
  auto p = prepare_submission("To: x@y\r\nSubject: none\r\n\r\nbody\r\n", allowed, 0);
  CHECK(p.code == 550);
  p = prepare_submission("From: a@example.org\r\nFrom: alice@example.org\r\n\r\nbody\r\n", allowed, 0);
  CHECK(p.code == 550);
  p = prepare_submission("From: Bob <bob@example.org>\r\n\r\nbody\r\n", allowed, 0);
  CHECK(p.code == 553);
  CHECK(p.reply.find("bob@example.org") != std::string::npos);
  p = prepare_submission("From: Alice <alice@example.org>\r\nSender: bob@example.org\r\n\r\nbody\r\n", allowed, 0);
  CHECK(p.code == 553);
  p = prepare_submission("From: \"Info Desk\" <INFO@Example.ORG>\r\nSubject: hi\r\n\r\nbody\r\n", allowed, 1528637909);
  REQUIRE(p.code == 250);
  CHECK(p.from_domain == "example.org");
  CHECK(p.message.rfind("Date: Sun, 10 Jun 2018 13:38:29 +0000\r\nMessage-ID: <", 0) == 0);
  CHECK(p.message.find("@example.org>\r\nFrom: \"Info Desk\"") != std::string::npos);
  p = prepare_submission("Date: x\r\nMessage-ID: <a@b>\r\nFrom: alice@example.org\r\n\r\nbody\r\n", allowed, 0);
  CHECK(p.message == "Date: x\r\nMessage-ID: <a@b>\r\nFrom: alice@example.org\r\n\r\nbody\r\n");
  // Bcc: leaves what is sent (folded too), and stays in the Sent copy; a body line is no field.
  p = prepare_submission("Date: x\r\nMessage-ID: <a@b>\r\nFrom: alice@example.org\r\nBcc: secret@example.net,\r\n"
                         " other@example.net\r\nTo: bob@example.net\r\nBCC: third@example.net\r\n\r\nBcc: in the body\r\n",
                         allowed, 0);
  CHECK(p.message == "Date: x\r\nMessage-ID: <a@b>\r\nFrom: alice@example.org\r\nTo: bob@example.net\r\n\r\n"
                     "Bcc: in the body\r\n");
  CHECK(p.sent_copy.find("Bcc: secret@example.net,\r\n other@example.net\r\n") != std::string::npos);
}

TEST_CASE("MX, TXT and address records decode from their wire form") {
  coop::net::DnsAnswer a;
  a.rdata = {std::string("\x00\x14\x03mx2\x07" "example\x03net\x00", 19), std::string("\x00\x0a\x03mx1\x07" "example\x03net\x00", 19),
             std::string("\x00\x00\x00", 3), std::string("\x00\x05\x09truncated", 12)};
  const auto mx = coop::net::parse_mx(a);
  REQUIRE(mx.size() == 3);
  CHECK(mx[0].preference == 0);
  CHECK(mx[0].exchange.empty());  // the null MX's "."
  CHECK(mx[1].exchange == "mx1.example.net");
  CHECK(mx[2].preference == 20);
  a.rdata = {std::string("\x05hello\x06 world", 13), std::string("\x09short", 6)};
  const auto txt = coop::net::parse_txt(a);
  REQUIRE(txt.size() == 1);
  CHECK(txt[0] == "hello world");
  a.rdata = {std::string("\x7f\x00\x00\x01", 4), std::string(16, '\0'), "abc"};
  CHECK(coop::net::parse_addresses(a) == std::vector<std::string>{"127.0.0.1", "::"});
}

TEST_CASE("only Authentication-Results claiming our name are removed") {
  const std::string message =
      "Authentication-Results: MAIL.test; dkim=pass\r\n"
      "Subject: hi\r\n"
      "Authentication-Results: other.example; spf=pass\r\n"
      "Authentication-Results:\r\n\tmail.test (forged); dmarc=pass\r\n"
      "\r\n"
      "Authentication-Results: mail.test; in the body stays\r\n";
  const auto out = coop::mail::strip_our_results(message, "mail.test");
  CHECK(out == "Subject: hi\r\nAuthentication-Results: other.example; spf=pass\r\n\r\n"
               "Authentication-Results: mail.test; in the body stays\r\n");
}
