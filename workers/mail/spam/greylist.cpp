// See greylist.h.
#include "workers/mail/spam/greylist.h"

#include <mutex>
#include <string>

#include "common/sqlite.h"
#include "common/text.h"

namespace coop::mail::spam {

namespace {

constexpr int64_t kMaxWaitingPerNetwork = 2000;

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE triplets (
        triplet    TEXT PRIMARY KEY,  -- network NUL sender NUL recipient, lower-cased
        first_seen INTEGER NOT NULL,  -- the first deferred attempt
        passed     INTEGER            -- when a retry passed; NULL while waiting
      ) WITHOUT ROWID;
    )sql"},
};

}  // namespace

struct Greylist::Impl {
  GreylistSettings settings;
  std::unique_ptr<sqlite::Database> db;
  std::mutex mutex;
  int64_t last_sweep = 0;
};

Greylist::Greylist(const std::filesystem::path& file, GreylistSettings settings) : impl_(std::make_unique<Impl>()) {
  impl_->settings = settings;
  impl_->db = sqlite::Database::open(file);
  impl_->db->migrate(kMigrations);
}

Greylist::~Greylist() = default;

int64_t Greylist::check(std::string_view network, std::string_view sender, std::string_view recipient, int64_t now) {
  std::string triplet = ascii_lower(network);
  triplet += '\0';
  triplet += ascii_lower(sender);
  triplet += '\0';
  triplet += ascii_lower(recipient);
  const auto& s = impl_->settings;
  const int64_t delay = s.delay.count(), forget = s.forget.count(), keep = s.pass_days * 86400;
  std::lock_guard lock(impl_->mutex);
  auto& db = *impl_->db;
  sqlite::Transaction tx(db);
  // Old entries go once an hour: unretried attempts after `forget`, passes after `keep`.
  if (now - impl_->last_sweep >= 3600 || now < impl_->last_sweep) {
    db.prepare("DELETE FROM triplets WHERE (passed IS NULL AND first_seen < ?1) OR passed < ?2")
        .bind(1, now - forget)
        .bind(2, now - keep)
        .run();
    impl_->last_sweep = now;
  }
  auto& find = db.prepare("SELECT first_seen, passed FROM triplets WHERE triplet = ?1");
  find.bind(1, triplet);
  int64_t wait = delay;
  if (find.step()) {
    const int64_t first_seen = find.column_int64(0);
    const bool passed = !find.column_is_null(1);
    const int64_t passed_at = passed ? find.column_int64(1) : 0;
    find.reset();
    if ((!passed && now - first_seen > forget) || (passed && now - passed_at > keep)) {
      // Too late a retry, or a pass long unused: a new first attempt.
      db.prepare("UPDATE triplets SET first_seen = ?2, passed = NULL WHERE triplet = ?1").bind(1, triplet).bind(2, now).run();
    } else if (passed || now - first_seen >= delay) {
      db.prepare("UPDATE triplets SET passed = ?2 WHERE triplet = ?1").bind(1, triplet).bind(2, now).run();
      wait = 0;
    } else {
      wait = delay - (now - first_seen);
    }
  } else {
    find.reset();
    if (delay == 0) {
      wait = 0;
    } else {
      // A network sending from endless new senders cannot fill the disk: past
      // kMaxWaitingPerNetwork unretried triplets its new ones are deferred unrecorded, and so
      // never pass until older ones are retried or forgotten.
      std::string low = ascii_lower(network), high = low;
      low += '\0';
      high += '\1';
      auto& waiting = db.prepare("SELECT count(*) FROM triplets WHERE triplet >= ?1 AND triplet < ?2 AND passed IS NULL");
      waiting.bind(1, low).bind(2, high);
      const int64_t n = waiting.step() ? waiting.column_int64(0) : 0;
      waiting.reset();
      if (n < kMaxWaitingPerNetwork)
        db.prepare("INSERT INTO triplets (triplet, first_seen) VALUES (?1, ?2)").bind(1, triplet).bind(2, now).run();
    }
  }
  tx.commit();
  return wait;
}

}  // namespace coop::mail::spam
