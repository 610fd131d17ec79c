// Domains and aliases in mail.db.
#include "workers/mail/store/mail_directory.h"

#include <algorithm>
#include <ctime>

#include "common/config.h"
#include "common/error.h"
#include "common/text.h"
#include "common/sqlite.h"

namespace coop::mail {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE domains (
        name       TEXT PRIMARY KEY,
        catch_all  TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
      );
      CREATE TABLE aliases (
        address    TEXT PRIMARY KEY,
        targets    TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    )sql"},
    {2, R"sql(
      CREATE TABLE member_settings (
        handle     TEXT PRIMARY KEY,
        save_sent  INTEGER NOT NULL DEFAULT 1
      );
    )sql"},
    {3, R"sql(
      CREATE TABLE vacation (
        handle     TEXT PRIMARY KEY,
        enabled    INTEGER NOT NULL,
        from_date  INTEGER,
        to_date    INTEGER,
        subject    TEXT,
        text_body  TEXT,
        html_body  TEXT
      );
      CREATE TABLE vacation_replies (
        handle     TEXT NOT NULL,
        sender     TEXT NOT NULL,
        sent_at    INTEGER NOT NULL,
        PRIMARY KEY (handle, sender)
      );
      CREATE TABLE submissions (
        id          INTEGER PRIMARY KEY,
        handle      TEXT NOT NULL,
        identity_id TEXT NOT NULL,
        email_id    TEXT NOT NULL,
        thread_id   TEXT NOT NULL,
        envelope    TEXT NOT NULL,
        status      TEXT NOT NULL,
        queue_id    INTEGER NOT NULL,
        send_at     INTEGER NOT NULL
      );
      CREATE INDEX submissions_by_member ON submissions (handle, id);
    )sql"},
};

std::vector<std::string> split_targets(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

MailDirectory::MailDirectory(const std::filesystem::path& file) : db_(sqlite::Database::open(file)) {
  db_->migrate(kMigrations);
}

MailDirectory::~MailDirectory() = default;

Domain MailDirectory::add_domain(const std::string& name_in, const std::string& catch_all, bool* created) {
  const auto name = ascii_lower(name_in);
  if (!is_valid_domain(name)) throw Error(errc::kInvalidDomain, "'" + name_in + "' is not a valid domain name", 400);
  std::lock_guard lock(mutex_);
  auto& existing = db_->prepare("SELECT catch_all, created_at FROM domains WHERE name = ?1");
  existing.bind(1, name);
  if (existing.step()) {
    const Domain found{name, existing.column_text(0), existing.column_int64(1)};
    existing.reset();
    if (found.catch_all != catch_all)
      throw Error(errc::kDomainExists, "the shard already hosts " + name + " with another catch-all; remove it first", 409);
    if (created) *created = false;
    return found;
  }
  if (created) *created = true;
  const auto now = static_cast<int64_t>(::time(nullptr));
  db_->prepare("INSERT INTO domains (name, catch_all, created_at) VALUES (?1, ?2, ?3)")
      .bind(1, name)
      .bind(2, catch_all)
      .bind(3, now)
      .run();
  return Domain{name, catch_all, now};
}

void MailDirectory::remove_domain(const std::string& name) {
  std::lock_guard lock(mutex_);
  db_->prepare("DELETE FROM domains WHERE name = ?1").bind(1, ascii_lower(name)).run();
  if (db_->changes() == 0) throw Error(errc::kNoSuchDomain, "the shard does not host " + name, 404);
}

std::vector<Domain> MailDirectory::domains() {
  std::lock_guard lock(mutex_);
  auto& stmt = db_->prepare("SELECT name, catch_all, created_at FROM domains ORDER BY name");
  std::vector<Domain> out;
  while (stmt.step()) out.push_back({stmt.column_text(0), stmt.column_text(1), stmt.column_int64(2)});
  stmt.reset();
  return out;
}

std::optional<Domain> MailDirectory::find_domain(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto& stmt = db_->prepare("SELECT name, catch_all, created_at FROM domains WHERE name = ?1");
  stmt.bind(1, ascii_lower(name));
  if (!stmt.step()) return std::nullopt;
  Domain d{stmt.column_text(0), stmt.column_text(1), stmt.column_int64(2)};
  stmt.reset();
  return d;
}

Alias MailDirectory::add_alias(const std::string& address_in, const std::vector<std::string>& targets) {
  const auto address = ascii_lower(address_in);
  const auto at = address.rfind('@');
  if (at == std::string::npos || at == 0) throw Error(errc::kInvalidAddress, "'" + address_in + "' is not an address", 400);
  if (!find_domain(address.substr(at + 1)))
    throw Error(errc::kNoSuchDomain, "the shard does not host " + address.substr(at + 1) + " (coop mail domain add)", 404);
  if (targets.empty()) throw Error(errc::kUsage, "an alias needs at least one target", 400);
  std::string joined;
  for (const auto& t : targets) {
    if (t.empty() || t.find('\n') != std::string::npos) throw Error(errc::kInvalidAddress, "bad alias target", 400);
    joined += ascii_lower(t) + "\n";
  }
  std::lock_guard lock(mutex_);
  auto& existing = db_->prepare("SELECT 1 FROM aliases WHERE address = ?1");
  existing.bind(1, address);
  if (existing.step()) {
    existing.reset();
    throw Error(errc::kAliasExists, "alias " + address + " already exists", 409);
  }
  const auto now = static_cast<int64_t>(::time(nullptr));
  db_->prepare("INSERT INTO aliases (address, targets, created_at) VALUES (?1, ?2, ?3)")
      .bind(1, address)
      .bind(2, joined)
      .bind(3, now)
      .run();
  return Alias{address, split_targets(joined), now};
}

void MailDirectory::remove_alias(const std::string& address) {
  std::lock_guard lock(mutex_);
  db_->prepare("DELETE FROM aliases WHERE address = ?1").bind(1, ascii_lower(address)).run();
  if (db_->changes() == 0) throw Error(errc::kNoSuchAlias, "no alias " + address, 404);
}

std::vector<Alias> MailDirectory::aliases() {
  std::lock_guard lock(mutex_);
  auto& stmt = db_->prepare("SELECT address, targets, created_at FROM aliases ORDER BY address");
  std::vector<Alias> out;
  while (stmt.step()) out.push_back({stmt.column_text(0), split_targets(stmt.column_text(1)), stmt.column_int64(2)});
  stmt.reset();
  return out;
}

std::optional<Alias> MailDirectory::find_alias(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto& stmt = db_->prepare("SELECT address, targets, created_at FROM aliases WHERE address = ?1");
  stmt.bind(1, ascii_lower(address));
  if (!stmt.step()) return std::nullopt;
  Alias a{stmt.column_text(0), split_targets(stmt.column_text(1)), stmt.column_int64(2)};
  stmt.reset();
  return a;
}

MemberMailSettings MailDirectory::settings(const std::string& handle) {
  std::lock_guard lock(mutex_);
  MemberMailSettings out;
  auto& q = db_->prepare("SELECT save_sent FROM member_settings WHERE handle = ?1");
  q.bind(1, handle);
  if (q.step()) out.save_sent = q.column_int64(0) != 0;
  q.reset();
  return out;
}

void MailDirectory::set_settings(const std::string& handle, const MemberMailSettings& settings) {
  std::lock_guard lock(mutex_);
  db_->prepare("INSERT INTO member_settings (handle, save_sent) VALUES (?1, ?2)"
               " ON CONFLICT(handle) DO UPDATE SET save_sent = excluded.save_sent")
      .bind(1, handle)
      .bind(2, settings.save_sent ? 1 : 0)
      .run();
}

namespace {
void bind_optional(sqlite::Statement& q, int index, const std::optional<int64_t>& value) {
  if (value) q.bind(index, *value);
  else q.bind_null(index);
}
void bind_optional(sqlite::Statement& q, int index, const std::optional<std::string>& value) {
  if (value) q.bind(index, *value);
  else q.bind_null(index);
}
}  // namespace

VacationSettings MailDirectory::vacation(const std::string& handle) {
  std::lock_guard lock(mutex_);
  VacationSettings out;
  auto& q = db_->prepare("SELECT enabled, from_date, to_date, subject, text_body, html_body FROM vacation WHERE handle = ?1");
  q.bind(1, handle);
  if (q.step()) {
    out.enabled = q.column_int64(0) != 0;
    if (!q.column_is_null(1)) out.from = q.column_int64(1);
    if (!q.column_is_null(2)) out.to = q.column_int64(2);
    out.subject = q.column_optional_text(3);
    out.text = q.column_optional_text(4);
    out.html = q.column_optional_text(5);
  }
  q.reset();
  return out;
}

void MailDirectory::set_vacation(const std::string& handle, const VacationSettings& v) {
  std::lock_guard lock(mutex_);
  sqlite::Transaction t(*db_);
  auto& q = db_->prepare("INSERT OR REPLACE INTO vacation (handle, enabled, from_date, to_date, subject, text_body, html_body)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  q.bind(1, handle).bind(2, v.enabled ? 1 : 0);
  bind_optional(q, 3, v.from);
  bind_optional(q, 4, v.to);
  bind_optional(q, 5, v.subject);
  bind_optional(q, 6, v.text);
  bind_optional(q, 7, v.html);
  q.run();
  // A new absence answers everyone afresh.
  db_->prepare("DELETE FROM vacation_replies WHERE handle = ?1").bind(1, handle).run();
  t.commit();
}

bool MailDirectory::claim_vacation_reply(const std::string& handle, const std::string& sender, int64_t now, int64_t period_s) {
  std::lock_guard lock(mutex_);
  sqlite::Transaction t(*db_);
  db_->prepare("DELETE FROM vacation_replies WHERE handle = ?1 AND sent_at <= ?2").bind(1, handle).bind(2, now - period_s).run();
  auto& q = db_->prepare("SELECT 1 FROM vacation_replies WHERE handle = ?1 AND sender = ?2");
  q.bind(1, handle).bind(2, ascii_lower(sender));
  const bool replied = q.step();
  q.reset();
  if (replied) return false;
  db_->prepare("INSERT INTO vacation_replies (handle, sender, sent_at) VALUES (?1, ?2, ?3)")
      .bind(1, handle)
      .bind(2, ascii_lower(sender))
      .bind(3, now)
      .run();
  t.commit();
  return true;
}

int64_t MailDirectory::add_submission(const EmailSubmissionRecord& r) {
  std::lock_guard lock(mutex_);
  db_->prepare("INSERT INTO submissions (handle, identity_id, email_id, thread_id, envelope, status, queue_id, send_at)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
      .bind(1, r.handle)
      .bind(2, r.identity_id)
      .bind(3, r.email_id)
      .bind(4, r.thread_id)
      .bind(5, r.envelope)
      .bind(6, r.status)
      .bind(7, r.queue_id)
      .bind(8, r.send_at)
      .run();
  return db_->last_insert_rowid();
}

std::vector<EmailSubmissionRecord> MailDirectory::submissions(const std::string& handle) {
  std::lock_guard lock(mutex_);
  auto& q = db_->prepare("SELECT id, identity_id, email_id, thread_id, envelope, status, queue_id, send_at FROM submissions"
                         " WHERE handle = ?1 ORDER BY id");
  q.bind(1, handle);
  std::vector<EmailSubmissionRecord> out;
  while (q.step())
    out.push_back({q.column_int64(0), handle, q.column_text(1), q.column_text(2), q.column_text(3), q.column_text(4),
                   q.column_text(5), q.column_int64(6), q.column_int64(7)});
  q.reset();
  return out;
}

void MailDirectory::set_submission_status(int64_t id, const std::string& status) {
  std::lock_guard lock(mutex_);
  db_->prepare("UPDATE submissions SET status = ?2 WHERE id = ?1").bind(1, id).bind(2, status).run();
}

bool MailDirectory::remove_submission(const std::string& handle, int64_t id) {
  std::lock_guard lock(mutex_);
  db_->prepare("DELETE FROM submissions WHERE handle = ?1 AND id = ?2").bind(1, handle).bind(2, id).run();
  return db_->changes() > 0;
}

}  // namespace coop::mail
