// Recipient resolution against the registry and mail.db, and durable delivery.
#include "workers/mail/mail_service.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/control/client.h"
#include "common/error.h"
#include "common/text.h"
#include "workers/mail/imap_fetch.h"
#include "workers/mail/imap_parser.h"
#include "workers/mail/imap_thread.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/smtp_parser.h"

namespace coop::mail {

namespace {

}  // namespace

MailService::MailService(const Home& home)
    : home_(home),
      directory_(home.database("mail")),
      mailboxes_(home.root() / "mail"),
      blobs_(home.root() / "blobs" / "mail") {}

RecipientCheck MailService::check_recipient(const std::string& address_in, uint64_t declared_size) {
  RecipientCheck check;
  auto [local, domain] = split_address(address_in);
  if (domain.empty()) {
    // "<postmaster>" without a domain (RFC 5321 4.5.1): the shard's first hosted domain.
    auto domains = directory_.domains();
    if (domains.empty()) {
      check.reply = "550 5.1.1 No such user here";
      return check;
    }
    domain = domains.front().name;
  }
  const auto hosted = directory_.find_domain(domain);
  if (!hosted) {
    check.reply = "554 5.7.1 Relay access denied: this server does not accept mail for " + domain;
    return check;
  }
  const std::string address = ascii_lower(local) + "@" + domain;

  // Expands one address to active members; aliases may point at addresses or handles.
  std::set<std::string> seen;
  control::Client member(home_.socket("member"));
  auto resolve = [&](const std::string& target_address, const std::string& target_local) {
    const auto response = member.request("GET", "/v1/resolve?address=" + percent_encode(target_address) +
                                                    "&local=" + percent_encode(target_local));
    response.throw_if_error();
    const auto j = response.json();
    for (const auto& m : j.value("members", nlohmann::json::array())) {
      if (m.value("status", "") != "active") continue;
      const auto handle = m.value("handle", "");
      if (seen.insert(handle).second) check.recipients.push_back({handle, m.value("quota_bytes", int64_t{0})});
    }
    return j.value("kind", "none") != "none";
  };

  bool known = false;
  if (const auto alias = directory_.find_alias(address)) {
    known = true;
    for (const auto& target : alias->targets) {
      const auto [t_local, t_domain] = split_address(target);
      resolve(t_domain.empty() ? target + "@" + domain : target, t_local);
    }
  } else {
    known = resolve(address, ascii_lower(local));
  }
  // RFC 5321 4.5.1 (postmaster, case-insensitive) and RFC 2142 (abuse): every hosted domain
  // has them; unless an alias or a member holds the address, they reach the shard's admins.
  const std::string lower_local = ascii_lower(local);
  if (!known && (lower_local == "postmaster" || lower_local == "abuse")) {
    const auto response = member.request("GET", "/v1/members?status=active");
    response.throw_if_error();
    for (const auto& m : response.json()) {
      if (m.value("role", "") != "admin") continue;
      const auto handle = m.value("handle", "");
      if (seen.insert(handle).second) check.recipients.push_back({handle, m.value("quota_bytes", int64_t{0})});
      known = true;
    }
  }
  if (!known && !hosted->catch_all.empty()) known = resolve(hosted->catch_all + "@" + domain, hosted->catch_all);

  if (check.recipients.empty()) {
    check.reply = known ? "550 5.2.1 Mailbox disabled" : "550 5.1.1 No such user here";
    return check;
  }
  // RFC 1870 6.1: refuse at RCPT what could not fit, so the client need not send it.
  for (const auto& r : check.recipients) {
    if (r.quota_bytes <= 0) continue;
    const auto used = mailboxes_.usage(r.handle);
    if (used >= r.quota_bytes) {
      check.recipients.clear();
      check.reply = "452 4.2.2 Mailbox full";
      return check;
    }
    if (declared_size && used + static_cast<int64_t>(declared_size) > r.quota_bytes) {
      check.recipients.clear();
      check.reply = "552 5.2.2 Message too big for the recipient's quota";
      return check;
    }
  }
  check.accepted = true;
  check.reply = "250 2.1.5 Recipient ok";
  return check;
}

MessageMeta MailService::describe(const std::string& blob, std::string_view bytes, int64_t internal_date, unsigned flags) {
  MessageMeta meta;
  meta.blob = blob;
  meta.size = static_cast<int64_t>(bytes.size());
  meta.internal_date = internal_date;
  meta.flags = flags;
  // Parsed once at delivery and cached, so IMAP and JMAP never parse on FETCH.
  const auto summary = summarize_message(bytes);
  meta.message_id = summary.message_id;
  meta.subject = summary.subject;
  meta.envelope = summary.envelope.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  meta.body_structure = summary.body_structure.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  meta.imap_envelope = imap::envelope_text(meta.envelope);
  // RFC 5256 SORT keys, so SORT reads a row a message instead of parsing its envelope.
  const auto& e = summary.envelope;
  auto first_mailbox = [&e](const char* field) {
    if (!e.is_object() || !e.contains(field) || !e[field].is_array() || e[field].empty() || !e[field][0].is_object()) return std::string();
    const auto& mailbox = e[field][0].value("mailbox", nlohmann::json());
    return mailbox.is_string() ? ascii_lower(mailbox.get<std::string>()) : std::string();
  };
  meta.from_mailbox = first_mailbox("from");
  meta.to_mailbox = first_mailbox("to");
  meta.cc_mailbox = first_mailbox("cc");
  if (e.is_object() && e.value("date", nlohmann::json()).is_string())
    meta.sent_date = imap::sent_date(e["date"].get<std::string>()).value_or(0);
  // The header section with the blank line that ends it (RFC 5322 2.1), for SEARCH.
  meta.header = bytes.substr(0, imap::header_end(bytes));
  return meta;
}

void MailService::check_quota(const std::vector<Recipient>& recipients, uint64_t size) {
  for (const auto& r : recipients) {
    if (r.quota_bytes > 0 && mailboxes_.usage(r.handle) + static_cast<int64_t>(size) > r.quota_bytes)
      throw Error(errc::kQuotaExceeded, "552 5.2.2 Mailbox of " + r.handle + " is full", 552);
  }
}

Delivered MailService::deliver(const std::string& blob, uint64_t size, const std::vector<Recipient>& recipients,
                               int64_t internal_date, const std::string& mailbox) {
  check_quota(recipients, size);
  const auto meta = describe(blob, blobs_.read(blob), internal_date, 0);
  Delivered delivered{blob, {}};
  for (const auto& r : recipients) {
    {
      // Counted before the commit, whose watchers push the new state at once.
      std::lock_guard lock(deliveries_mutex_);
      ++deliveries_[r.handle];
    }
    const auto stored = mailboxes_.append(r.handle, mailbox, meta, r.quota_bytes);
    delivered.uids.emplace_back(r.handle, stored.uid);
  }
  return delivered;
}

uint64_t MailService::deliveries(const std::string& handle) {
  std::lock_guard lock(deliveries_mutex_);
  const auto it = deliveries_.find(handle);
  return it == deliveries_.end() ? 0 : it->second;
}

StoredMessage MailService::append(const std::string& handle, const std::string& mailbox, std::string_view bytes,
                                  unsigned flags, int64_t internal_date, bool* existed, std::string_view keywords) {
  mailboxes_.ensure_mailbox(handle, mailbox);
  const auto blob = blobs_.put(bytes);
  if (auto uid = mailboxes_.find_blob(handle, mailbox, blob)) {
    if (existed) *existed = true;
    StoredMessage found;
    found.uid = *uid;
    found.mailbox = mailbox;
    found.meta.blob = blob;
    found.meta.size = static_cast<int64_t>(bytes.size());
    return found;
  }
  if (existed) *existed = false;
  auto meta = describe(blob, bytes, internal_date, flags);
  meta.keywords = imap::valid_keywords(keywords);
  return mailboxes_.append(handle, mailbox, meta, 0);
}

MailService::ImportCount MailService::import_batch(const std::string& handle, const std::string& mailbox, const std::vector<Importing>& batch) {
  mailboxes_.ensure_mailbox(handle, mailbox);
  // Blobs written unsynced and made durable together, then one index transaction: only then
  // is the batch acknowledged (a crash before leaves no message half-stored).
  BlobStore::Batch blobs(blobs_);
  // Hashing, writing and parsing one message is independent of the others: the machine's
  // cores share them (describe is pure; the batch's list takes a lock). UIDs still follow the
  // batch's order, given below.
  const std::size_t n = batch.size();
  std::vector<std::string> shas(n);
  std::vector<std::optional<MessageMeta>> described(n);
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    try {
      for (std::size_t i; (i = next++) < n;) {
        shas[i] = blobs.add(batch[i].bytes);
        if (!mailboxes_.find_blob(handle, mailbox, shas[i]))
          described[i] = describe(shas[i], batch[i].bytes, batch[i].internal_date, batch[i].flags);
      }
    } catch (...) {
      std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = n;
    }
  };
  const std::size_t helpers = n < 16 ? 0 : std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), 4) - 1;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < helpers; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  std::vector<MessageMeta> metas;
  std::set<std::string> in_batch;
  ImportCount count;
  for (std::size_t i = 0; i < n; ++i) {
    if (!in_batch.insert(shas[i]).second || !described[i]) {
      ++count.existed;
      continue;
    }
    auto& meta = metas.emplace_back(std::move(*described[i]));
    meta.keywords = imap::valid_keywords(batch[i].keywords);
  }
  blobs.commit();
  mailboxes_.append_batch(handle, mailbox, metas);
  count.added = static_cast<int64_t>(metas.size());
  return count;
}

std::vector<StoredMessage> MailService::append_new(const std::string& handle, const std::string& mailbox,
                                                   const std::vector<Appending>& messages) {
  const int64_t quota = quota_of(handle);
  int64_t adding = 0;
  for (const auto& m : messages) adding += static_cast<int64_t>(m.bytes.size());
  if (quota > 0 && mailboxes_.usage(handle) + adding > quota)
    throw Error(errc::kQuotaExceeded, handle + "'s mailbox is full", 552);
  // Durable blobs first, then one transaction: a crash between leaves unreferenced blobs,
  // never a message without its bytes. One message is fsync'd alone; several are synced
  // together (a filesystem sync costs more than one file's, less than many).
  BlobStore::Batch blobs(blobs_);
  std::vector<MessageMeta> metas;
  for (const auto& m : messages) {
    const auto blob = messages.size() == 1 ? blobs_.put(m.bytes) : blobs.add(m.bytes);
    auto& meta = metas.emplace_back(describe(blob, m.bytes, m.internal_date, m.flags));
    meta.keywords = m.keywords;
  }
  blobs.commit();
  return mailboxes_.append_batch(handle, mailbox, metas, quota);
}

int64_t MailService::quota_of(const std::string& handle) {
  control::Client member(home_.socket("member"));
  const auto response = member.get("/v1/members/" + percent_encode(handle));
  response.throw_if_error();
  return response.json().value("quota_bytes", int64_t{0});
}

}  // namespace coop::mail
