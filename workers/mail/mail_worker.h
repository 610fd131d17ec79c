// Wires the mail worker: store, SMTP listeners, control API.
#pragma once

#include <memory>
#include <vector>

namespace coop {
class WorkerRuntime;
namespace net {
class TcpListener;
}
namespace http {
class Router;
class Server;
}  // namespace http
namespace auth {
class LiveSessions;
class MemberEventFollower;
}  // namespace auth
}  // namespace coop

namespace coop::mail::spam {
class SpamFilter;
class Greylist;
}  // namespace coop::mail::spam

namespace coop::mail {

class MailService;
class Outbound;
class Vacation;
class Jmap;
struct SmtpSettings;
struct ImapSettings;

class MailWorker {
 public:
  explicit MailWorker(WorkerRuntime& runtime);
  ~MailWorker();

 private:
  std::unique_ptr<MailService> service_;
  std::unique_ptr<Outbound> outbound_;
  std::unique_ptr<Vacation> vacation_;      // members' auto-replies (JMAP VacationResponse)
  std::unique_ptr<spam::SpamFilter> spam_;  // null: [workers.mail.spam] enabled = false
  std::unique_ptr<spam::Greylist> greylist_;  // null: greylist = false
  std::shared_ptr<const SmtpSettings> smtp_;
  std::shared_ptr<const SmtpSettings> submission_;
  std::shared_ptr<const ImapSettings> imap_;
  std::vector<std::unique_ptr<net::TcpListener>> listeners_;  // SMTP and submission
  std::vector<std::unique_ptr<net::TcpListener>> imap_listeners_;
  std::unique_ptr<http::Router> jmap_router_;                  // JMAP on [workers.mail.listen] jmap
  std::shared_ptr<Jmap> jmap_;
  std::unique_ptr<http::Server> jmap_server_;
  std::shared_ptr<auth::LiveSessions> live_;                   // logged-in IMAP sessions
  std::unique_ptr<auth::MemberEventFollower> follower_;        // ends them on revocation
};

}  // namespace coop::mail
