// The spam classifier (workers/mail/spam/bayes): tokens, Robinson's f(w), Fisher's method, and
// training that counts each message once.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "tests/unit/common/temp_dir.h"
#include "workers/mail/spam/bayes.h"

using namespace coop::mail::spam;

namespace {

bool has(const std::vector<std::string>& tokens, const std::string& token) {
  return std::find(tokens.begin(), tokens.end(), token) != tokens.end();
}

std::vector<std::string> spam_like(int i) {
  return tokens_of("CHEAP pills " + std::to_string(i), "Offers <deals@pharma.example>",
                   "Buy cheap pills now! Visit https://PHARMA.example/buy?id=" + std::to_string(i) + " viagra discount");
}

std::vector<std::string> ham_like(int i) {
  return tokens_of("Allotment rota " + std::to_string(i), "Alice <alice@coop.example>",
                   "The seedlings are in; who waters them on Tuesday? Minutes of meeting " + std::to_string(i));
}

}  // namespace

TEST_CASE("tokens: words of 3 to 40 bytes once each, subject and sender marked, link hosts") {
  const auto tokens = tokens_of("Hello World", "Bob <bob@Example.ORG>",
                                "an ok word, WORD again; see http://Files.example.net/x and " + std::string(41, 'z') + " café");
  CHECK(has(tokens, "subject:hello"));
  CHECK(has(tokens, "subject:world"));
  CHECK(has(tokens, "from:example.org"));
  CHECK(has(tokens, "url:files.example.net"));
  CHECK(has(tokens, "word"));
  CHECK(has(tokens, "café"));
  CHECK_FALSE(has(tokens, "an"));                    // too short
  CHECK_FALSE(has(tokens, std::string(41, 'z')));    // too long
  CHECK(std::count(tokens.begin(), tokens.end(), "word") == 1);
  CHECK(tokens_of("", "", "").empty());
}

TEST_CASE("the inverse chi-square tail of Fisher's method") {
  CHECK(chi2_tail(0, 3) == Approx(1.0));
  // 2 degrees of freedom: e^(-x/2).
  CHECK(chi2_tail(2.0, 1) == Approx(std::exp(-1.0)));
  // 4 degrees of freedom at 4: e^-2 (1 + 2).
  CHECK(chi2_tail(4.0, 2) == Approx(3 * std::exp(-2.0)));
  CHECK(chi2_tail(1e6, 150) == Approx(0.0).margin(1e-12));
}

TEST_CASE("with nothing learnt there is no opinion; trained, spam and ham separate") {
  coop::test::TempDir dir;
  BayesStore store(dir.path() / "bayes.db");
  CHECK(store.classify("", spam_like(0)).probability == 0.5);
  for (int i = 0; i < 20; ++i) {
    CHECK(store.train("", "<spam" + std::to_string(i) + "@x>", spam_like(i), true));
    CHECK(store.train("", "<ham" + std::to_string(i) + "@x>", ham_like(i), false));
  }
  const auto spam = store.classify("", spam_like(100)), ham = store.classify("", ham_like(100));
  CHECK(spam.probability > 0.9);
  CHECK(ham.probability < 0.1);
  CHECK_FALSE(spam.strongest.empty());
  // Words never seen say nothing.
  CHECK(store.classify("", tokens_of("zzqx", "", "qqzz wwxx")).probability == 0.5);
  const auto counts = store.counts("");
  CHECK(counts.spam_messages == 20);
  CHECK(counts.ham_messages == 20);
  CHECK(counts.tokens > 10);
}

TEST_CASE("a message teaches once; moved the other way it is unlearnt first; forgotten, it teaches nothing") {
  coop::test::TempDir dir;
  BayesStore store(dir.path() / "bayes.db");
  for (int i = 0; i < 5; ++i) store.train("", "<h" + std::to_string(i) + "@x>", ham_like(i), false);
  store.train("", "<s0@x>", spam_like(0), true);
  const auto once = store.classify("", spam_like(7)).probability;
  // The same message as spam again (a second move into Junk): nothing changes.
  CHECK_FALSE(store.train("", "<s0@x>", spam_like(0), true));
  CHECK(store.classify("", spam_like(7)).probability == once);
  CHECK(store.counts("").spam_messages == 1);
  // Moved out of Junk: now ham, and it counts as ham only.
  CHECK(store.train("", "<s0@x>", spam_like(0), false));
  CHECK(store.counts("").spam_messages == 0);
  CHECK(store.counts("").ham_messages == 6);
  CHECK(store.forget("", "<s0@x>", spam_like(0)));
  CHECK_FALSE(store.forget("", "<s0@x>", spam_like(0)));
  CHECK(store.counts("").ham_messages == 5);
  // Nothing of the spam message's own words is left.
  CHECK(store.classify("", tokens_of("", "", "viagra discount")).probability == 0.5);
}

TEST_CASE("a member's part is separate from the shard's; accuracy counts what was judged right before learning") {
  coop::test::TempDir dir;
  BayesStore store(dir.path() / "bayes.db");
  for (int i = 0; i < 10; ++i) {
    store.train("alice", "<s" + std::to_string(i) + "@x>", spam_like(i), true);
    store.train("alice", "<h" + std::to_string(i) + "@x>", ham_like(i), false);
  }
  CHECK(store.classify("alice", spam_like(50)).probability > 0.9);
  CHECK(store.classify("", spam_like(50)).probability == 0.5);  // the shard learnt nothing
  CHECK(store.classify("bob", spam_like(50)).probability == 0.5);
  CHECK(store.counts("").spam_messages == 0);
  const auto alice = store.counts("alice");
  CHECK(alice.spam_messages == 10);
  CHECK(alice.recent == 20);
  // The first spam and the first ham found no opinion (0.5 is right for neither); once both
  // kinds were known the others were judged right.
  CHECK(alice.recent_right >= 16);
  CHECK(alice.recent_right <= 18);
  // Relearning the same message as the other kind is not a new judgement.
  store.train("alice", "<s0@x>", spam_like(0), false);
  CHECK(store.counts("alice").recent == 20);
}
