// The spam filter's rules (workers/mail/spam/filter): each with a message that trips it and
// one that does not; the authentication results as points; the X-Spam-* fields written and
// the ones from outside stripped.
#include <catch2/catch.hpp>

#include <string>

#include "tests/unit/common/temp_dir.h"
#include "workers/mail/auth/auth_results.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/spam/bayes.h"
#include "workers/mail/spam/filter.h"

using namespace coop::mail;
using namespace coop::mail::spam;

namespace {

constexpr int64_t kNow = 1796000000;  // 2026-11-29

// A plain, well-formed message; `headers` replace or add fields, `body` the text part.
std::string message(const std::string& extra_headers = "", const std::string& body = "Hello, see you on Tuesday.\r\n",
                    const std::string& subject = "Allotment rota", bool standard = true) {
  std::string m;
  if (standard) {
    m += "From: Alice <alice@coop.example>\r\n";
    m += "To: bob@coop.example\r\n";
    m += "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n";
    m += "Message-ID: <1@coop.example>\r\n";
    m += "Subject: " + subject + "\r\n";
  }
  m += extra_headers;
  if (extra_headers.find("Content-Type") == std::string::npos) m += "Content-Type: text/plain; charset=utf-8\r\n";
  return m + "\r\n" + body;
}

bool trips(const std::string& bytes, const std::string& rule) {
  for (const auto& h : rule_hits(message_text(bytes), kNow))
    if (h.name == rule) return true;
  return false;
}

std::string html_message(const std::string& html) {
  return message("MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n", html);
}

std::string alternative(const std::string& html) {
  return message("MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n",
                 "--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--b\r\nContent-Type: text/html\r\n\r\n" + html +
                     "\r\n--b--\r\n");
}

std::string with_attachment(const std::string& name) {
  return message("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n",
                 "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\n"
                 "Content-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                 "TVqQAAMAAAAEAAAA\r\n--b--\r\n");
}

}  // namespace

TEST_CASE("a well-formed plain message trips no rule") {
  CHECK(rule_hits(message_text(message()), kNow).empty());
}

TEST_CASE("missing From, Date and Message-ID") {
  const std::string bare = "To: bob@coop.example\r\nSubject: hi\r\n\r\nhello\r\n";
  CHECK(trips(bare, "MISSING_FROM"));
  CHECK(trips(bare, "MISSING_DATE"));
  CHECK(trips(bare, "MISSING_MESSAGE_ID"));
  CHECK_FALSE(trips(message(), "MISSING_FROM"));
  CHECK_FALSE(trips(message(), "MISSING_DATE"));
  CHECK_FALSE(trips(message(), "MISSING_MESSAGE_ID"));
}

TEST_CASE("a Date from the future; a Date of today or the past is fine") {
  const std::string future = "From: a@x.example\r\nMessage-ID: <2@x>\r\nDate: Fri, 01 Jan 2100 00:00:00 +0000\r\nSubject: s\r\n";
  CHECK(trips(message(future, "x", "", false), "DATE_IN_FUTURE"));
  const std::string past = "From: a@x.example\r\nMessage-ID: <2@x>\r\nDate: Thu, 22 Aug 2002 12:00:00 +0000\r\nSubject: s\r\n";
  CHECK_FALSE(trips(message(past, "x", "", false), "DATE_IN_FUTURE"));
}

TEST_CASE("a From name showing another address") {
  const std::string forged = "From: \"service@bank.example\" <x@phish.example>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <3@x>\r\nSubject: s\r\n";
  CHECK(trips(message(forged, "x", "", false), "FROM_NAME_OTHER_ADDRESS"));
  const std::string same = "From: \"alice@coop.example\" <Alice@coop.example>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <3@x>\r\nSubject: s\r\n";
  CHECK_FALSE(trips(message(same, "x", "", false), "FROM_NAME_OTHER_ADDRESS"));
  CHECK_FALSE(trips(message(), "FROM_NAME_OTHER_ADDRESS"));
}

TEST_CASE("HTML with no plain-text version") {
  CHECK(trips(html_message("<p>Buy</p>"), "HTML_ONLY"));
  CHECK_FALSE(trips(alternative("<p>Buy</p>"), "HTML_ONLY"));
  CHECK_FALSE(trips(message(), "HTML_ONLY"));
}

TEST_CASE("a link that shows one site and leads to another") {
  CHECK(trips(alternative("<a href=\"http://evil.example/login\">https://www.bank.example/login</a>"), "LINK_MISMATCH"));
  CHECK(trips(alternative("<a href='https://evil.example/'>www.Bank.example</a>"), "LINK_MISMATCH"));
  // The same organisation under another name, words, and a shown subdomain all pass.
  CHECK_FALSE(trips(alternative("<a href=\"https://login.bank.example/x\">www.bank.example</a>"), "LINK_MISMATCH"));
  CHECK_FALSE(trips(alternative("<a href=\"https://evil.example/\">click here</a>"), "LINK_MISMATCH"));
  CHECK_FALSE(trips(alternative("<a href=\"https://x.example/\">version 1.5</a>"), "LINK_MISMATCH"));
}

TEST_CASE("a link to a bare address") {
  CHECK(trips(alternative("<a href=\"http://192.0.2.7/pay\">pay here</a>"), "LINK_TO_ADDRESS"));
  CHECK_FALSE(trips(alternative("<a href=\"http://pay.example/\">pay here</a>"), "LINK_TO_ADDRESS"));
}

TEST_CASE("attachments that run when opened") {
  CHECK(trips(with_attachment("invoice.pdf.exe"), "DANGEROUS_ATTACHMENT"));
  CHECK(trips(with_attachment("PHOTO.JS"), "DANGEROUS_ATTACHMENT"));
  CHECK(trips(with_attachment("run.scr. "), "DANGEROUS_ATTACHMENT"));  // Windows drops trailing dots and blanks
  CHECK_FALSE(trips(with_attachment("minutes.pdf"), "DANGEROUS_ATTACHMENT"));
  CHECK_FALSE(trips(with_attachment("exe"), "DANGEROUS_ATTACHMENT"));
}

TEST_CASE("encoding tricks: ASCII in base64, needlessly encoded subjects, invisible characters") {
  CHECK(trips(message("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n", "QnV5IGNoZWFwIHBpbGxzIG5vdw==\r\n"),
              "BASE64_TEXT"));
  // UTF-8 text in base64 is what base64 is for.
  CHECK_FALSE(trips(message("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
                            "Q2Fmw6kgw6AgbWlkaQ==\r\n"), "BASE64_TEXT"));
  CHECK(trips(message("", "x", "=?utf-8?B?RlJFRSBNT05FWQ==?="), "SUBJECT_ENCODED_ASCII"));
  CHECK_FALSE(trips(message("", "x", "=?utf-8?Q?Caf=C3=A9?="), "SUBJECT_ENCODED_ASCII"));
  const std::string zw = "\xE2\x80\x8B";
  CHECK(trips(message("", "v" + zw + "i" + zw + "a" + zw + "gra\r\n"), "INVISIBLE_CHARACTERS"));
  CHECK_FALSE(trips(message("", "one" + zw + "break only\r\n"), "INVISIBLE_CHARACTERS"));
}

TEST_CASE("suspicious subjects") {
  CHECK(trips(message("", "x", "FREE MONEY FOR YOU NOW"), "SUBJECT_ALL_CAPS"));
  CHECK_FALSE(trips(message("", "x", "AGM on FRIDAY"), "SUBJECT_ALL_CAPS"));
  CHECK_FALSE(trips(message("", "x", "NASA"), "SUBJECT_ALL_CAPS"));
  CHECK(trips(message("", "x", "Act now!!"), "SUBJECT_EXCLAIMS"));
  CHECK(trips(message("", "x", "Yes! Yes! Yes!"), "SUBJECT_EXCLAIMS"));
  CHECK_FALSE(trips(message("", "x", "Thanks!"), "SUBJECT_EXCLAIMS"));
  CHECK(trips(message("", "x", "Earn $5000 a week"), "SUBJECT_DOLLARS"));
  CHECK(trips(message("", "x", "$$ cash $$"), "SUBJECT_DOLLARS"));
  CHECK_FALSE(trips(message("", "x", "Budget in $ and EUR"), "SUBJECT_DOLLARS"));
}

TEST_CASE("authentication results as points") {
  InboundAuth pass;
  pass.dmarc.result = "pass";
  pass.spf.result = spf::Result::pass;
  pass.dkim.push_back({"pass", "coop.example", "s", "rsa-sha256", "", ""});
  auto hits = auth_hits(pass);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].name == "DMARC_PASS");
  CHECK(hits[0].points < 0);

  InboundAuth bad;
  bad.dmarc.result = "fail";
  bad.spf.result = spf::Result::fail;
  bad.dkim.push_back({"fail", "x.example", "s", "rsa-sha256", "", "body hash"});
  std::vector<std::string> names;
  for (const auto& h : auth_hits(bad)) names.push_back(h.name);
  CHECK(names == std::vector<std::string>{"DMARC_FAIL", "SPF_FAIL", "DKIM_INVALID"});

  InboundAuth soft;
  soft.spf.result = spf::Result::softfail;
  soft.dkim.push_back({"fail", "x.example", "s", "rsa-sha256", "", ""});
  soft.dkim.push_back({"pass", "y.example", "s", "rsa-sha256", "", ""});  // one good signature is enough
  names.clear();
  for (const auto& h : auth_hits(soft)) names.push_back(h.name);
  CHECK(names == std::vector<std::string>{"SPF_SOFTFAIL"});
  CHECK(auth_hits(InboundAuth{}).empty());
}

TEST_CASE("the classifier's opinion as points") {
  CHECK(bayes_hit(0.5).points == 0);
  CHECK(bayes_hit(1.0).points == Approx(kBayesPoints));
  CHECK(bayes_hit(0.0).points == Approx(-kBayesPoints));
  CHECK(bayes_hit(0.75).points == Approx(kBayesPoints / 2));
}

TEST_CASE("X-Spam fields: written with the reasons, and the sender's own stripped") {
  Score score;
  score.bayes = 0.99;
  score.add(bayes_hit(0.99));
  score.add(Hit{"HTML_ONLY", 1.0});
  const auto fields = spam_headers(score, 5.0);
  CHECK(fields.starts_with("X-Spam-Score: 6.9\r\nX-Spam-Status: Yes, score=6.9 required=5.0\r\n\ttests=BAYES(0.990)=5.9,\r\n\tHTML_ONLY=1.0\r\n"));
  CHECK(spam_headers(Score{}, 5.0) == "X-Spam-Score: 0.0\r\nX-Spam-Status: No, score=0.0 required=5.0\r\n");
  const std::string forged = "X-Spam-Status: No, score=-100\r\nFrom: a@x\r\nx-spam-score:\r\n -100\r\nX-Spamcop: kept\r\n"
                             "Subject: s\r\n\r\nX-Spam-Status: in the body stays\r\n";
  CHECK(strip_spam_headers(forged) == "From: a@x\r\nX-Spamcop: kept\r\nSubject: s\r\n\r\nX-Spam-Status: in the body stays\r\n");
}

TEST_CASE("the filter: rules and classifier together, and a member's own part once it has learnt enough") {
  coop::test::TempDir dir;
  SpamSettings settings;
  settings.per_member = true;
  settings.per_member_min = 3;
  SpamFilter filter(dir.path() / "spam.db", settings);
  auto spammy = [](int i) {
    return message("", "Cheap pills and discount watches, order " + std::to_string(i) + " today\r\n", "Offer " + std::to_string(i));
  };
  auto hammy = [](int i) {
    return message("", "The seedlings need water; minutes of meeting " + std::to_string(i) + "\r\n", "Rota " + std::to_string(i));
  };
  // An admin teaches the shard that offers are spam.
  for (int i = 0; i < 3; ++i) {
    CHECK(filter.train("", "s" + std::to_string(i), spammy(i), true));
    CHECK(filter.train("", "h" + std::to_string(i), hammy(i), false));
  }
  CHECK(filter.bayes().counts("").spam_messages == 3);
  CHECK(filter.bayes().counts("alice").spam_messages == 0);  // nobody's own part
  const auto facts = message_text(spammy(9));
  const auto shard = filter.score(facts, nullptr, kNow);
  CHECK(shard.bayes > 0.9);
  CHECK(shard.total >= settings.junk);
  // Alice, who likes these offers, teaches her own part (and the shard) the other way with
  // her own messages: her part now decides for her, and differently.
  for (int i = 10; i < 13; ++i) {
    CHECK(filter.train("alice", "a" + std::to_string(i), spammy(i), false));
    CHECK(filter.train("alice", "b" + std::to_string(i), hammy(i), true));
  }
  CHECK(filter.bayes().counts("alice").ham_messages == 3);
  const auto now_shard = filter.score(facts, nullptr, kNow);
  const auto alice = filter.for_member(now_shard, facts, "alice");
  CHECK(alice.bayes < 0.1);
  CHECK(alice.total < settings.junk);
  // Bob taught nothing of his own: the shard's opinion is his.
  CHECK(filter.for_member(now_shard, facts, "bob").total == now_shard.total);
  // Without per_member nobody has a part of their own.
  SpamSettings shared = settings;
  shared.per_member = false;
  SpamFilter plain_filter(dir.path() / "spam.db", shared);
  CHECK(plain_filter.for_member(now_shard, facts, "alice").total == now_shard.total);
}
