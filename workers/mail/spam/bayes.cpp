// See bayes.h. Gary Robinson, "A Statistical Approach to the Spam Problem" (Linux Journal,
// 2003): f(w) = (s·x + n·p(w)) / (s + n), with p(w) = b(w) / (b(w) + g(w)) from the token's
// share of spam and of ham messages, and n the messages it was seen in; the f(w) combined by
// Fisher's method: H = C⁻¹(-2 Σ ln f(w), 2N), S = C⁻¹(-2 Σ ln(1 - f(w)), 2N), indicator
// I = (1 + H - S) / 2.
#include "workers/mail/spam/bayes.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "common/sqlite.h"

namespace coop::mail::spam {

namespace {

constexpr std::size_t kMinWord = 3;
constexpr std::size_t kMaxWord = 40;
constexpr std::size_t kMaxTokensPerMessage = 5000;  // a huge message teaches no more than this

constexpr int64_t kRecentTrainings = 1000;

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      -- owner: '' for the shard's counts, a member's handle for that member's own.
      CREATE TABLE tokens (
        owner TEXT NOT NULL,
        token TEXT NOT NULL,
        spam  INTEGER NOT NULL DEFAULT 0,
        ham   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (owner, token)
      ) WITHOUT ROWID;
      -- Which messages were learnt, and as what, so that each is learnt once; unlearning
      -- takes the message's tokens again, so none are kept here.
      CREATE TABLE trained (
        owner  TEXT NOT NULL,
        key    TEXT NOT NULL,
        spam   INTEGER NOT NULL,
        PRIMARY KEY (owner, key)
      ) WITHOUT ROWID;
      CREATE TABLE totals (
        owner TEXT PRIMARY KEY,
        spam  INTEGER NOT NULL DEFAULT 0,
        ham   INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
      -- The last trainings, and whether the classifier had it right before it learnt.
      CREATE TABLE recent (
        id           INTEGER PRIMARY KEY,
        owner        TEXT NOT NULL,
        judged_right INTEGER NOT NULL
      );
      CREATE INDEX recent_by_owner ON recent (owner, id);
    )sql"},
};

bool word_byte(unsigned char c) { return std::isalnum(c) || c >= 0x80 || c == '\'' || c == '-' || c == '$' || c == '!'; }

void words(std::string_view text, const std::string& prefix, std::set<std::string>& out) {
  std::size_t i = 0;
  while (i < text.size() && out.size() < kMaxTokensPerMessage) {
    while (i < text.size() && !word_byte(static_cast<unsigned char>(text[i]))) ++i;
    const std::size_t start = i;
    while (i < text.size() && word_byte(static_cast<unsigned char>(text[i]))) ++i;
    std::string word(text.substr(start, i - start));
    while (!word.empty() && (word.back() == '\'' || word.back() == '-')) word.pop_back();
    if (word.size() < kMinWord || word.size() > kMaxWord) continue;
    for (auto& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.insert(prefix + word);
  }
}

// "http://host/..." and "https://host/...": the host, lower-cased.
void link_hosts(std::string_view text, std::set<std::string>& out) {
  for (const std::string_view scheme : {"http://", "https://"}) {
    for (std::size_t at = text.find(scheme); at != std::string_view::npos; at = text.find(scheme, at + 1)) {
      std::size_t i = at + scheme.size(), start = i;
      while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '.' || text[i] == '-')) ++i;
      if (i > start && i - start <= 253) {
        std::string host(text.substr(start, i - start));
        for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.insert("url:" + host);
      }
      if (out.size() >= kMaxTokensPerMessage) return;
    }
  }
}

}  // namespace

std::vector<std::string> tokens_of(std::string_view subject, std::string_view from, std::string_view body_text) {
  std::set<std::string> out;
  words(subject, "subject:", out);
  if (const auto at = from.rfind('@'); at != std::string_view::npos) {
    std::string domain(from.substr(at + 1));
    while (!domain.empty() && (domain.back() == '>' || std::isspace(static_cast<unsigned char>(domain.back())))) domain.pop_back();
    for (auto& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!domain.empty() && domain.size() <= 253) out.insert("from:" + domain);
  }
  link_hosts(body_text, out);
  words(body_text, "", out);
  return {out.begin(), out.end()};
}

double chi2_tail(double chi2, int half_degrees) {
  // P(X >= chi2) for X ~ chi-square with 2k degrees of freedom: e^(-m) Σ_{i<k} m^i / i!,
  // m = chi2 / 2, summed term by term (no factorials, no overflow).
  const double m = chi2 / 2.0;
  double term = std::exp(-m), sum = term;
  for (int i = 1; i < half_degrees; ++i) {
    term *= m / i;
    sum += term;
  }
  return std::min(sum, 1.0);
}

struct BayesStore::Impl {
  BayesSettings settings;
  std::unique_ptr<sqlite::Database> db;
  std::mutex mutex;  // one writer and reader: the classifier's own file

  // Whether a message was learnt as spam; nullopt when it was not learnt.
  std::optional<bool> learnt(std::string_view owner, const std::string& key) {
    auto& stmt = db->prepare("SELECT spam FROM trained WHERE owner = ?1 AND key = ?2");
    stmt.bind(1, owner).bind(2, key);
    std::optional<bool> found;
    if (stmt.step()) found = stmt.column_int64(0) != 0;
    stmt.reset();
    return found;
  }
  std::pair<int64_t, int64_t> totals(std::string_view owner) {
    auto& stmt = db->prepare("SELECT spam, ham FROM totals WHERE owner = ?1");
    stmt.bind(1, owner);
    std::pair<int64_t, int64_t> n{0, 0};
    if (stmt.step()) n = {stmt.column_int64(0), stmt.column_int64(1)};
    stmt.reset();
    return n;
  }
  void count(std::string_view owner, const std::vector<std::string>& tokens, bool spam, int delta) {
    const char* sql = spam ? "INSERT INTO tokens (owner, token, spam) VALUES (?1, ?2, max(?3, 0)) "
                             "ON CONFLICT (owner, token) DO UPDATE SET spam = max(spam + ?3, 0)"
                           : "INSERT INTO tokens (owner, token, ham) VALUES (?1, ?2, max(?3, 0)) "
                             "ON CONFLICT (owner, token) DO UPDATE SET ham = max(ham + ?3, 0)";
    for (std::size_t i = 0; i < tokens.size() && i < kMaxTokensPerMessage; ++i) {
      const auto& token = tokens[i];
      if (token.empty()) continue;
      db->prepare(sql).bind(1, owner).bind(2, token).bind(3, delta).run();
      if (delta < 0)
        db->prepare("DELETE FROM tokens WHERE owner = ?1 AND token = ?2 AND spam = 0 AND ham = 0").bind(1, owner).bind(2, token).run();
    }
    db->prepare(spam ? "INSERT INTO totals (owner, spam) VALUES (?1, max(?2, 0)) "
                       "ON CONFLICT (owner) DO UPDATE SET spam = max(spam + ?2, 0)"
                     : "INSERT INTO totals (owner, ham) VALUES (?1, max(?2, 0)) "
                       "ON CONFLICT (owner) DO UPDATE SET ham = max(ham + ?2, 0)")
        .bind(1, owner)
        .bind(2, delta)
        .run();
  }

  Verdict classify(std::string_view owner, const std::vector<std::string>& tokens) {
    const auto& s = settings;
    const auto [spam_messages, ham_messages] = totals(owner);
    const double nspam = static_cast<double>(spam_messages), nham = static_cast<double>(ham_messages);
    Verdict verdict;
    if (nspam == 0 || nham == 0) return verdict;  // nothing to compare with yet
    std::vector<std::pair<std::string, double>> scored;
    auto& stmt = db->prepare("SELECT spam, ham FROM tokens WHERE owner = ?1 AND token = ?2");
    for (const auto& token : tokens) {
      stmt.bind(1, owner).bind(2, token);
      double b = 0, g = 0, n = 0;
      if (stmt.step()) {
        n = static_cast<double>(stmt.column_int64(0) + stmt.column_int64(1));
        b = static_cast<double>(stmt.column_int64(0)) / nspam;
        g = static_cast<double>(stmt.column_int64(1)) / nham;
      }
      stmt.reset();
      if (n == 0 || b + g == 0) continue;  // unknown: no evidence either way
      const double p = b / (b + g);
      const double f = (s.s * s.x + n * p) / (s.s + n);
      if (std::abs(f - 0.5) >= s.min_dev) scored.emplace_back(token, f);
    }
    if (scored.empty()) return verdict;
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return std::abs(a.second - 0.5) > std::abs(b.second - 0.5); });
    if (scored.size() > s.max_tokens) scored.resize(s.max_tokens);
    double ln_f = 0, ln_not_f = 0;
    for (const auto& [token, f] : scored) {
      const double clamped = std::clamp(f, 1e-6, 1 - 1e-6);
      ln_f += std::log(clamped);
      ln_not_f += std::log(1 - clamped);
    }
    const int k = static_cast<int>(scored.size());
    // H is near 1 when the tokens lean to spam (their f near 1), S when they lean to ham.
    const double h = chi2_tail(-2 * ln_f, k), s_ = chi2_tail(-2 * ln_not_f, k);
    verdict.probability = (1 + h - s_) / 2;
    verdict.strongest.assign(scored.begin(), scored.begin() + std::min<std::size_t>(scored.size(), 10));
    return verdict;
  }
};

BayesStore::BayesStore(const std::filesystem::path& file, BayesSettings settings) : impl_(std::make_unique<Impl>()) {
  impl_->settings = settings;
  impl_->db = sqlite::Database::open(file);
  impl_->db->migrate(kMigrations);
}

BayesStore::~BayesStore() = default;

bool BayesStore::train(std::string_view owner, const std::string& key, const std::vector<std::string>& tokens, bool spam) {
  std::lock_guard lock(impl_->mutex);
  auto& db = *impl_->db;
  sqlite::Transaction tx(db);
  const auto before = impl_->learnt(owner, key);
  if (before && *before == spam) return false;
  // Was it already judged right? Only a message new to the classifier says so fairly, and
  // "no opinion" (0.5) is right for neither kind.
  if (!before) {
    const double p = impl_->classify(owner, tokens).probability;
    const bool right = p != 0.5 && (p > 0.5) == spam;
    db.prepare("INSERT INTO recent (owner, judged_right) VALUES (?1, ?2)").bind(1, owner).bind(2, right ? 1 : 0).run();
    db.prepare("DELETE FROM recent WHERE owner = ?1 AND id <= (SELECT id FROM recent WHERE owner = ?1 "
               "ORDER BY id DESC LIMIT 1 OFFSET ?2)")
        .bind(1, owner)
        .bind(2, kRecentTrainings)
        .run();
  }
  if (before) impl_->count(owner, tokens, *before, -1);  // the same message: the same tokens
  impl_->count(owner, tokens, spam, 1);
  db.prepare("INSERT OR REPLACE INTO trained (owner, key, spam) VALUES (?1, ?2, ?3)")
      .bind(1, owner)
      .bind(2, key)
      .bind(3, spam ? 1 : 0)
      .run();
  tx.commit();
  return true;
}

bool BayesStore::forget(std::string_view owner, const std::string& key, const std::vector<std::string>& tokens) {
  std::lock_guard lock(impl_->mutex);
  auto& db = *impl_->db;
  sqlite::Transaction tx(db);
  const auto before = impl_->learnt(owner, key);
  if (!before) return false;
  impl_->count(owner, tokens, *before, -1);
  db.prepare("DELETE FROM trained WHERE owner = ?1 AND key = ?2").bind(1, owner).bind(2, key).run();
  tx.commit();
  return true;
}

Verdict BayesStore::classify(std::string_view owner, const std::vector<std::string>& tokens) {
  std::lock_guard lock(impl_->mutex);
  return impl_->classify(owner, tokens);
}

BayesStore::Counts BayesStore::counts(std::string_view owner) {
  std::lock_guard lock(impl_->mutex);
  Counts c;
  std::tie(c.spam_messages, c.ham_messages) = impl_->totals(owner);
  auto& tokens = impl_->db->prepare("SELECT count(*) FROM tokens WHERE owner = ?1");
  tokens.bind(1, owner);
  if (tokens.step()) c.tokens = tokens.column_int64(0);
  tokens.reset();
  auto& recent = impl_->db->prepare("SELECT count(*), coalesce(sum(judged_right), 0) FROM recent WHERE owner = ?1");
  recent.bind(1, owner);
  if (recent.step()) {
    c.recent = recent.column_int64(0);
    c.recent_right = recent.column_int64(1);
  }
  recent.reset();
  return c;
}

}  // namespace coop::mail::spam
