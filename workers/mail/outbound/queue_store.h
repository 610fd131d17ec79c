// queue.db: mail waiting to go out. A message is a blob in the blob store and a row here
// with one row per recipient; it is acknowledged (250) only after enqueue() committed, and
// leaves the queue when every recipient is delivered or has failed for good.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::sqlite {
class Database;
}

namespace coop::mail {

// The queue's clock: wall-clock milliseconds since the epoch (times in queue.db survive a
// restart, so not a steady clock).
int64_t queue_clock_ms();

struct OutboundMessage {
  int64_t id = 0;
  std::string blob;
  int64_t size = 0;
  std::string sender;   // the envelope sender; "" for a DSN (RFC 3464: sent from <>)
  std::string handle;   // the member who submitted it, "" for the shard's own reports
  int64_t created_ms = 0;
  bool smtputf8 = false;
};

struct OutboundRecipient {
  int64_t id = 0;
  int64_t message_id = 0;
  std::string address, domain;
  std::string state;  // queued, delivered, failed
  int attempts = 0;
  int64_t next_attempt_ms = 0;
  std::string last_error;  // the last reply or why no reply came
  std::string remote;      // the host that gave it
  bool delay_notified = false;
};

// Some recipients of one message in one domain: what one SMTP transaction delivers.
struct DeliveryBatch {
  OutboundMessage message;
  std::string domain;
  std::vector<OutboundRecipient> recipients;
};

struct DeliveryOutcome {
  int64_t recipient_id = 0;
  enum class Kind { delivered, deferred, failed } kind = Kind::deferred;
  std::string reply;  // the SMTP reply or the local reason
  std::string remote;
  int64_t next_attempt_ms = 0;  // for deferred
  bool delay_notified = false;  // set once a delay DSN went out
};

class QueueStore {
 public:
  explicit QueueStore(const std::filesystem::path& file);
  ~QueueStore();

  // Durable on return (one fsynced transaction). recipients: addresses, any case.
  int64_t enqueue(const OutboundMessage& message, const std::vector<std::string>& recipients, int64_t now_ms);

  // Batches due at now_ms, at most limit, oldest first; skip: recipient ids in flight.
  std::vector<DeliveryBatch> due(int64_t now_ms, std::size_t limit, const std::vector<int64_t>& in_flight);
  // The earliest next attempt of any queued recipient.
  std::optional<int64_t> next_due();

  // Records outcomes and enqueues the reports they cause in one transaction, so a crash
  // loses and repeats neither; a message whose recipients are all done leaves the queue.
  void record(const std::vector<DeliveryOutcome>& outcomes,
              const std::vector<std::pair<OutboundMessage, std::vector<std::string>>>& reports, int64_t now_ms);

  std::vector<std::pair<OutboundMessage, std::vector<OutboundRecipient>>> list();
  std::optional<std::pair<OutboundMessage, std::vector<OutboundRecipient>>> find(int64_t id);
  // Each recipient of a message in the queue, or of one that left it in the last 30 days
  // (delivered or failed); empty when neither.
  std::vector<OutboundRecipient> outcome(int64_t message_id);
  // Every queued recipient of the message is due now; false when there is no such message.
  bool retry(int64_t id, int64_t now_ms);
  bool remove(int64_t id);
  std::size_t size();  // messages in the queue

 private:
  std::vector<OutboundRecipient> recipients_of(int64_t message_id);
  OutboundMessage message_row(int64_t id);
  int64_t insert(const OutboundMessage& message, const std::vector<std::string>& recipients, int64_t now_ms);
  void remove_finished(int64_t message_id);
  std::mutex mutex_;
  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace coop::mail
