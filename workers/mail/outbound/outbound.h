// Mail going out: the queue, the DKIM keys, the resolver and the delivery loop, set up from
// coop.toml, and submit(), which the submission listeners call once DATA has ended.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace coop {
class WorkerRuntime;
namespace net {
class DnsResolver;
}
}  // namespace coop

namespace coop::mail {

class MailService;
class QueueStore;
class QueueRunner;
namespace dkim {
class Keyring;
}

class Outbound {
 public:
  Outbound(WorkerRuntime& runtime, MailService& service);
  ~Outbound();

  QueueStore& queue() { return *queue_; }
  dkim::Keyring& keys() { return *keys_; }
  net::DnsResolver& dns() { return *dns_; }
  void wake();  // after the queue changed by other means (coop mail queue retry)

  // Blocking. DKIM-signs message for its From: domain (when the shard has keys for it),
  // stores it, queues it for every recipient in one fsynced transaction, files the
  // member's Sent copy (unless their settings say their client does) and wakes the
  // delivery loop. Returns the queue id. Throws on a storage failure: nothing was queued.
  // sent_copy: what the member's Sent mailbox gets (the message with its Bcc: fields); empty: nothing.
  int64_t submit(const std::string& handle, const std::string& sender, const std::vector<std::string>& recipients,
                 const std::string& from_domain, const std::string& message, const std::string& sent_copy,
                 bool smtputf8);

 private:
  MailService& service_;
  std::unique_ptr<QueueStore> queue_;
  std::unique_ptr<dkim::Keyring> keys_;
  std::unique_ptr<net::DnsResolver> dns_;
  std::unique_ptr<QueueRunner> runner_;
};

}  // namespace coop::mail
