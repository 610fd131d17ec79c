// Mail client autoconfiguration, so a member types only an address and a password: Thunderbird's
// config-v1.1.xml and Outlook's POX Autodiscover, on coop-dav's HTTP listener (where a shard's
// web traffic arrives; coop-mail serves no HTTP yet).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mail/public_servers.h"

namespace coop {
class Config;
class WorkerRuntime;
namespace http {
class Router;
}
}  // namespace coop

namespace coop::dav {

using mail::MailServers;
using mail::public_mail_servers;

// An Autodiscover request is a few hundred bytes; anything much larger is refused with 413
// before it is searched.
inline constexpr std::size_t kMaxAutodiscoverBodyBytes = 64 << 10;



// Thunderbird's clientConfig version 1.1 (wiki.mozilla.org/Thunderbird:Autoconfiguration:
// ConfigFileFormat) for the hosted domains: IMAP and SMTP, implicit TLS first, then STARTTLS.
std::string thunderbird_config(const MailServers& servers, const std::vector<std::string>& domains);

// The <EMailAddress> of an Autodiscover request (MS-OXDSCLI 2.2.4.1.1.1), trimmed; nullopt when
// there is none or it is not shaped like an address. The body is hostile: it is searched, not
// parsed, and nothing in it is trusted beyond that one value.
std::optional<std::string> autodiscover_email(std::string_view body);

// False when the request asks for a response schema other than Outlook's (ActiveSync's
// mobilesync one): MS-OXDSCLI error 601, this server has no provider for it.
bool autodiscover_schema_supported(std::string_view body);

// The Outlook response (responseschema/2006a, MS-OXDSCLI 2.2.4.1.1.2): one email Account with
// an IMAP and an SMTP Protocol; LoginName is the address, which the registry accepts as a login.
std::string autodiscover_settings(const MailServers& servers, std::string_view address);

// An Autodiscover error (MS-OXDSCLI 2.2.4.1.1.3): 500 no such address here, 600 invalid
// request, 601 no provider for the requested schema.
std::string autodiscover_error(int code, std::string_view message);

// GET /.well-known/autoconfig/mail/config-v1.1.xml, GET /mail/config-v1.1.xml and
// GET|POST /autodiscover/autodiscover.xml (either spelling of its case): unauthenticated, since
// clients ask before they have logged in. Hosted domains come from coop-mail's control socket.
void add_autoconfig_routes(WorkerRuntime& runtime, http::Router& router);

}  // namespace coop::dav
