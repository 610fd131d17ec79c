// What SMTP (and later IMAP and JMAP) sessions ask of the mail store: who an address reaches,
// and durable delivery. Every call blocks (registry lookups, fsync): run it on the blocking pool.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/blob_store.h"
#include "common/paths.h"
#include "workers/mail/store/mail_directory.h"
#include "workers/mail/store/mailbox_store.h"

namespace coop::mail {

struct Recipient {
  std::string handle;
  int64_t quota_bytes = 0;
};

struct RecipientCheck {
  bool accepted = false;
  std::string reply;  // the full SMTP reply, "250 2.1.5 ..." or "550 5.1.1 ..."
  std::vector<Recipient> recipients;
};

struct Delivered {
  std::string blob;
  std::vector<std::pair<std::string, int64_t>> uids;  // handle, UID in INBOX
};

class MailService {
 public:
  explicit MailService(const Home& home);

  MailDirectory& directory() { return directory_; }
  MailboxStore& mailboxes() { return mailboxes_; }
  BlobStore& blobs() { return blobs_; }

  // RFC 5321 3.6 and 4.5.1: hosted domains only (no open relay); aliases, member addresses,
  // handles, group names, then the domain's catch-all. declared_size is MAIL FROM's SIZE.
  RecipientCheck check_recipient(const std::string& address, uint64_t declared_size);

  // Indexes a committed blob into every recipient's INBOX (each commit durable). Quota is
  // checked for all before any is written: over quota, coop::Error(errc::kQuotaExceeded, 552)
  // and nothing is delivered.
  // Throws kQuotaExceeded ("552 ...") when the message would take a recipient over quota.
  void check_quota(const std::vector<Recipient>& recipients, uint64_t size);
  // How many deliveries (from outside: SMTP, not a client's own moves or appends) reached the
  // member since the worker started: JMAP's EmailDelivery push state (RFC 8621 1.5).
  uint64_t deliveries(const std::string& handle);
  Delivered deliver(const std::string& blob, uint64_t size, const std::vector<Recipient>& recipients,
                    int64_t internal_date, const std::string& mailbox = "INBOX");

  // Stores a message for one member (import and, later, IMAP APPEND); idempotent per mailbox.
  StoredMessage append(const std::string& handle, const std::string& mailbox, std::string_view bytes, unsigned flags,
                       int64_t internal_date, bool* existed, std::string_view keywords = {});
  // The member's mail quota from the registry, in bytes; 0 when there is none.
  int64_t quota_of(const std::string& handle);
  // coop mail import: many messages into one mailbox at once, each stored once (bytes that
  // the mailbox holds already, or that come twice, count as existed); nothing is
  // acknowledged before the whole batch is durable.
  struct Importing {
    std::string_view bytes;
    unsigned flags = 0;
    int64_t internal_date = 0;
    std::string keywords;
  };
  struct ImportCount {
    int64_t added = 0, existed = 0;
  };
  ImportCount import_batch(const std::string& handle, const std::string& mailbox, const std::vector<Importing>& batch);
  // IMAP APPEND (RFC 9051 6.3.12): always a new message, into a mailbox that exists; over the
  // member's quota, coop::Error(errc::kQuotaExceeded, 552).
  // RFC 3502 MULTIAPPEND: several messages appended as one, all or none, UIDs in order.
  struct Appending {
    std::string_view bytes;
    unsigned flags = 0;
    int64_t internal_date = 0;
    std::string keywords;
  };
  std::vector<StoredMessage> append_new(const std::string& handle, const std::string& mailbox, const std::vector<Appending>& messages);

 private:
  MessageMeta describe(const std::string& blob, std::string_view bytes, int64_t internal_date, unsigned flags);
  Home home_;
  MailDirectory directory_;
  MailboxStore mailboxes_;
  BlobStore blobs_;
  std::mutex deliveries_mutex_;
  std::unordered_map<std::string, uint64_t> deliveries_;
};

}  // namespace coop::mail
