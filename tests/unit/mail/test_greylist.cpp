// Greylisting (workers/mail/spam/greylist, RFC 6647): a first attempt waits, a retry after the
// delay passes, a passed triplet passes at once later, an attempt never retried is forgotten.
#include <catch2/catch.hpp>

#include "tests/unit/common/temp_dir.h"
#include "workers/mail/spam/greylist.h"

using namespace coop::mail::spam;

TEST_CASE("greylisting: wait, retry, pass, remember") {
  coop::test::TempDir dir;
  Greylist grey(dir.path() / "greylist.db", GreylistSettings{std::chrono::seconds(300), std::chrono::seconds(3600), 35});
  const int64_t t = 1796000000;
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "bob@coop.example", t) == 300);
  // Too early a retry still waits, the clock not restarted.
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "bob@coop.example", t + 100) == 200);
  // Another recipient, sender or network is another triplet; case does not matter.
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "carol@coop.example", t + 100) == 300);
  CHECK(grey.check("198.51.100.0/24", "a@x.example", "bob@coop.example", t + 100) == 300);
  CHECK(grey.check("192.0.2.0/24", "A@X.example", "Bob@coop.example", t + 299) == 1);
  // The retry after the delay passes, and later mail passes at once.
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "bob@coop.example", t + 300) == 0);
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "bob@coop.example", t + 86400) == 0);
  // Passes are kept for pass_days after the last one.
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "bob@coop.example", t + 86400 + 34 * 86400) == 0);
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "bob@coop.example", t + 86400 + 34 * 86400 + 36 * 86400) == 300);
  // A network of endless new senders gets no more than 2,000 waiting triplets recorded: the
  // later ones are deferred every time and never pass.
  for (int i = 0; i < 2000; ++i) grey.check("233.252.0.0/24", "s" + std::to_string(i) + "@spam.example", "bob@coop.example", t);
  CHECK(grey.check("233.252.0.0/24", "late@spam.example", "bob@coop.example", t) == 300);
  CHECK(grey.check("233.252.0.0/24", "late@spam.example", "bob@coop.example", t + 600) == 300);
  CHECK(grey.check("233.252.0.0/24", "s1@spam.example", "bob@coop.example", t + 600) == 0);
  // A first attempt not retried within `forget` starts over.
  CHECK(grey.check("203.0.113.0/24", "z@y.example", "bob@coop.example", t) == 300);
  CHECK(grey.check("203.0.113.0/24", "z@y.example", "bob@coop.example", t + 7200) == 300);
  CHECK(grey.check("203.0.113.0/24", "z@y.example", "bob@coop.example", t + 7200 + 300) == 0);
}

TEST_CASE("greylisting with no delay passes everything") {
  coop::test::TempDir dir;
  Greylist grey(dir.path() / "greylist.db", GreylistSettings{std::chrono::seconds(0), std::chrono::seconds(3600), 35});
  CHECK(grey.check("192.0.2.0/24", "a@x.example", "b@y.example", 1000) == 0);
}
