// JMAP (RFC 8620 core, RFC 8621 mail) on [workers.mail.listen] jmap: the session resource,
// the API endpoint with result references and the RFC's errors, blob upload and download,
// over the same mail store IMAP serves.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace coop {
class Home;
namespace http {
class Router;
}
}  // namespace coop

namespace coop::mail::spam {
class SpamFilter;
}

namespace coop::mail {

class MailService;
class Outbound;

struct JmapLimits {
  // RFC 8620 2: what the session advertises, each enforced.
  uint64_t max_size_upload = 50 << 20;
  int max_concurrent_upload = 4;
  uint64_t max_size_request = 10 << 20;
  int max_concurrent_requests = 4;
  int max_calls_in_request = 64;
  int max_objects_in_get = 1000;
  int max_objects_in_set = 500;
  // EmailSubmission: what submission over SMTP allows ([workers.mail] max_recipients and
  // max_message_bytes).
  std::size_t max_recipients = 100;
  uint64_t max_message_bytes = 50 << 20;
};

struct JmapContext {
  const Home* home = nullptr;
  MailService* service = nullptr;
  spam::SpamFilter* spam = nullptr;  // taught by moves into and out of Junk (RFC 8621 + issue 25)
  Outbound* outbound = nullptr;      // EmailSubmission's queue
  std::function<void(std::function<void()>)> runner;  // the blocking pool
  std::string scheme = "https";  // the listener's, for the session's URLs
  boost::asio::io_context* io = nullptr;  // for push's pings
  // Called after a change outside the mail store (a submission, the vacation response), so
  // push reports it; set by add_jmap_routes.
  std::function<void(const std::string& handle)> changed;
  JmapLimits limits;
};

class Jmap;

// Registers the JMAP routes on router; the returned object must outlive it.
std::shared_ptr<Jmap> add_jmap_routes(http::Router& router, JmapContext context);
// Ends every push connection (the worker is stopping).
void stop_jmap_push(Jmap& jmap);
// The member's credentials changed (suspended, removed, new password, app password revoked):
// what was verified of them is forgotten and their push connections and WebSockets end.
void end_jmap_member(Jmap& jmap, const std::string& handle);

}  // namespace coop::mail
