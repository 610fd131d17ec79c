// The statistical part of coop's spam filter (issue 25): a token store trained by members and
// admins, and Gary Robinson's method of scoring a message from it, as bogofilter and
// SpamAssassin's Bayes do: each token's spamminess f(w) with Robinson's correction for rare
// tokens, combined with Fisher's chi-square method into one indicator between 0 (ham) and 1
// (spam). Everything stays on the shard, in one SQLite file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail::spam {

// The tokens of a message as the classifier counts them, each once: words of 3 to 40 bytes of
// the body text (lower-cased ASCII, other UTF-8 kept), the subject's words as "subject:word",
// the sender's domain as "from:domain", and the hosts of links as "url:host".
std::vector<std::string> tokens_of(std::string_view subject, std::string_view from, std::string_view body_text);

struct Verdict {
  double probability = 0.5;  // Fisher's indicator: 0 ham, 1 spam, 0.5 no opinion
  std::vector<std::pair<std::string, double>> strongest;  // the tokens that decided it, with f(w)
};

// Robinson's parameters, as bogofilter's defaults: the strength s given to the background
// probability x for a token seen rarely, and the distance from 0.5 under which a token is
// left out of the combination.
struct BayesSettings {
  double s = 1.0;
  double x = 0.52;
  double min_dev = 0.1;
  std::size_t max_tokens = 150;  // the strongest tokens combined, as SpamAssassin's 150
};

// The counts are kept per owner: "" is the shard's, shared by everyone; a member's handle is
// that member's own part (`[workers.mail.spam] per_member`).
class BayesStore {
 public:
  explicit BayesStore(const std::filesystem::path& file, BayesSettings settings = {});
  ~BayesStore();
  BayesStore(const BayesStore&) = delete;
  BayesStore& operator=(const BayesStore&) = delete;

  // Learns a message as spam or ham, once per owner and message key: learning it again as
  // the same changes nothing; as the other first unlearns the earlier verdict (a member
  // moving a message out of Junk), with these tokens, which must be the message's own, as
  // its key promises. Whether the classifier had judged it right just before is kept for
  // counts(). False when nothing changed.
  bool train(std::string_view owner, const std::string& key, const std::vector<std::string>& tokens, bool spam);
  // Forgets what a message (with these tokens) taught; false when it taught nothing.
  bool forget(std::string_view owner, const std::string& key, const std::vector<std::string>& tokens);
  Verdict classify(std::string_view owner, const std::vector<std::string>& tokens);

  struct Counts {
    int64_t spam_messages = 0, ham_messages = 0, tokens = 0;
    // Of the last (at most 1000) trainings, how many the classifier had already judged
    // right (spam above 0.5, ham below), before it learnt them.
    int64_t recent = 0, recent_right = 0;
  };
  Counts counts(std::string_view owner);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The probability that a chi-square variable with 2·half_degrees degrees of freedom is at
// least chi2 (the inverse chi-square function Fisher's method uses), by its closed series.
double chi2_tail(double chi2, int half_degrees);

}  // namespace coop::mail::spam
