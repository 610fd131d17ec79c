// coop's spam filter (issue 25): the score of an inbound message from its authentication
// results, rules over its headers and form, and the Bayesian classifier; what the score
// decides; and the training members give it. Nothing leaves the shard unless an admin names
// blocklists in coop.toml.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coop {
class Config;
namespace net {
class DnsResolver;
}
}  // namespace coop

namespace coop::mail {
struct InboundAuth;
struct MessageText;
}  // namespace coop::mail

namespace coop::mail::spam {

class BayesStore;

// [workers.mail.spam]
struct SpamSettings {
  bool enabled = true;
  double junk = 5.0;     // at or above: filed in the recipient's Junk
  double reject = 15.0;  // at or above: refused with 550 at the end of DATA
  // A member's own classifier decides for them once they have taught it this many messages
  // of each kind; before that the shard's does.
  bool per_member = false;
  int64_t per_member_min = 20;
  // RFC 6647: a first attempt from an unknown (network, sender, recipient) triplet gets 451;
  // a retry after greylist_delay passes, and the triplet then passes for greylist_pass_days.
  bool greylist = false;
  std::chrono::seconds greylist_delay{300};
  std::chrono::seconds greylist_forget{36 * 3600};  // an attempt never retried is forgotten
  int64_t greylist_pass_days = 35;
  // DNS blocklists of the client's address, and URI blocklists of the hosts in links
  // ("zen.example.org"); none by default, so that nothing leaves the shard.
  std::vector<std::string> dnsbl, uribl;
  double dnsbl_points = 3.0, uribl_points = 3.0;
};
SpamSettings spam_settings(const Config& config);

// A rule: its name in X-Spam-Status, its points, and what it looks for.
struct Rule {
  const char* name;
  double points;
  const char* description;
};
std::span<const Rule> rules();

struct Hit {
  std::string name;
  double points = 0;
};

// The header and form rules that a message trips; `now` for dates from the future.
std::vector<Hit> rule_hits(const MessageText& facts, int64_t now);
// What DKIM, SPF and DMARC said, as points (a DMARC pass counts for the message).
std::vector<Hit> auth_hits(const InboundAuth& auth);
// The classifier's probability as points: 0 at 0.5, up to +bayes_points at 1 and down to
// -bayes_points at 0.
Hit bayes_hit(double probability);
inline constexpr double kBayesPoints = 6.0;

// RFC 5782: the client's address looked up in each DNS blocklist, and the registrable domains
// of the message's links (at most 20) in each URI blocklist; a hit per list that names one
// ("DNSBL_ZEN_EXAMPLE_ORG"). Blocks the calling thread until every answer or the resolver's
// timeout: call it on the blocking pool. An unanswered question is no hit.
std::vector<Hit> blocklist_hits(net::DnsResolver& dns, const SpamSettings& settings, const std::string& client_address,
                                const MessageText& facts);

// The classifier's tokens of a message: tokens_of its text, and a few of its form (mailer,
// charsets, attachment types).
std::vector<std::string> classifier_tokens(const MessageText& facts);

struct Score {
  double total = 0;
  double bayes = 0.5;  // the classifier's probability
  std::vector<Hit> hits;
  void add(Hit hit);
};

// "X-Spam-Score: 6.3\r\nX-Spam-Status: Yes, score=6.3 required=5.0 tests=...\r\n"
std::string spam_headers(const Score& score, double junk);
// The message without X-Spam-* fields in its header: what a sender says of its own mail
// means nothing here.
std::string strip_spam_headers(std::string_view message);

class SpamFilter {
 public:
  SpamFilter(const std::filesystem::path& file, SpamSettings settings);
  ~SpamFilter();
  const SpamSettings& settings() const { return settings_; }

  // The rules, the authentication results (null: not checked) and the shard's classifier.
  Score score(const MessageText& facts, const InboundAuth* auth, int64_t now);
  // The score for one recipient: with per_member, their own classifier in place of the
  // shard's once it has learnt enough.
  Score for_member(const Score& shard, const MessageText& facts, const std::string& handle);

  // A member (or an admin, handle "") teaching it one message; `key` names the message so
  // that it is learnt once. The shard's classifier always learns; the member's own too with
  // per_member. True when something changed.
  bool train(const std::string& handle, const std::string& key, std::string_view bytes, bool spam);
  BayesStore& bayes() { return *bayes_; }

 private:
  SpamSettings settings_;
  std::unique_ptr<BayesStore> bayes_;
};

}  // namespace coop::mail::spam
