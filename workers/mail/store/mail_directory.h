// mail.db: the domains the shard hosts and its aliases (the registry keeps members and groups).
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

struct Domain {
  std::string name;
  std::string catch_all;  // handle that gets mail for unknown local parts; empty: none
  int64_t created_at = 0;
};

struct Alias {
  std::string address;               // alias@hosted-domain
  std::vector<std::string> targets;  // member addresses or handles
  int64_t created_at = 0;
};

// Per-member choices about mail.
struct MemberMailSettings {
  // Submission files a copy in Sent (RFC 6409 leaves it to the server); off for clients
  // that save their own, as Thunderbird does by default, so nothing is filed twice.
  bool save_sent = true;
};

// RFC 8621 8 VacationResponse: a member's auto-reply while away.
struct VacationSettings {
  bool enabled = false;
  std::optional<int64_t> from, to;  // Unix seconds; none: from now on, until turned off
  std::optional<std::string> subject, text, html;
};

// RFC 8621 7 EmailSubmission: one message a member sent over JMAP, and what became of it.
struct EmailSubmissionRecord {
  int64_t id = 0;
  std::string handle, identity_id, email_id, thread_id;
  std::string envelope;  // JSON {mailFrom, rcptTo}
  std::string status;    // JSON: the deliveryStatus last seen, by address
  int64_t queue_id = 0, send_at = 0;
};

class MailDirectory {
 public:
  explicit MailDirectory(const std::filesystem::path& file);
  ~MailDirectory();

  // Hosts a domain. Adding one already hosted with the same catch-all changes nothing and
  // sets *created to false (so a setup script may run twice, and `coop init --domain D`
  // already hosts D); with another catch-all it is coop::Error("domain_exists", 409).
  Domain add_domain(const std::string& name, const std::string& catch_all, bool* created = nullptr);
  void remove_domain(const std::string& name);
  std::vector<Domain> domains();
  std::optional<Domain> find_domain(const std::string& name);

  Alias add_alias(const std::string& address, const std::vector<std::string>& targets);
  void remove_alias(const std::string& address);
  std::vector<Alias> aliases();
  std::optional<Alias> find_alias(const std::string& address);

  MemberMailSettings settings(const std::string& handle);
  void set_settings(const std::string& handle, const MemberMailSettings& settings);

  VacationSettings vacation(const std::string& handle);
  void set_vacation(const std::string& handle, const VacationSettings& settings);
  // Whether an auto-reply to sender may go now (none in the last period_s seconds), recording
  // it when so: once per sender per period (RFC 3834 2, RFC 5230 4.2), even across restarts.
  bool claim_vacation_reply(const std::string& handle, const std::string& sender, int64_t now, int64_t period_s);

  int64_t add_submission(const EmailSubmissionRecord& record);
  std::vector<EmailSubmissionRecord> submissions(const std::string& handle);
  void set_submission_status(int64_t id, const std::string& status);
  bool remove_submission(const std::string& handle, int64_t id);

 private:
  std::mutex mutex_;
  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace coop::mail
