// Thunderbird autoconfig and Outlook Autodiscover documents, and the routes that serve them.
#include "workers/dav/autoconfig.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>

#include "common/config.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/http/router.h"
#include "common/paths.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/dav/dav_xml.h"

namespace coop::dav {

namespace {

constexpr std::string_view kContentType = "text/xml; charset=utf-8";
constexpr std::string_view kAutodiscoverNs = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
constexpr std::string_view kOutlookResponseNs =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

// What members log in with. The registry takes a handle or any address recorded for the
// member (workers/member MemberStore::find_login), so the address typed into the client is
// the one login that needs no explaining. Thunderbird substitutes it (ConfigFileFormat).
constexpr std::string_view kThunderbirdUsername = "%EMAILADDRESS%";

void server_xml(std::string& out, std::string_view element, std::string_view type, const std::string& hostname,
                uint16_t port, std::string_view socket_type) {
  out += "    <" + std::string(element) + " type=\"" + std::string(type) + "\">\n";
  out += "      <hostname>" + xml_escape(hostname) + "</hostname>\n";
  out += "      <port>" + std::to_string(port) + "</port>\n";
  out += "      <socketType>" + std::string(socket_type) + "</socketType>\n";
  out += "      <username>" + std::string(kThunderbirdUsername) + "</username>\n";
  // Over TLS the password may travel as it is: IMAP LOGIN / SASL PLAIN, SMTP AUTH PLAIN.
  out += "      <authentication>password-cleartext</authentication>\n";
  out += "    </" + std::string(element) + ">\n";
}

void protocol_xml(std::string& out, std::string_view type, const std::string& hostname,
                  std::optional<uint16_t> implicit_tls, std::optional<uint16_t> starttls, std::string_view login) {
  if (!implicit_tls && !starttls) return;
  out += "      <Protocol>\n";
  out += "        <Type>" + std::string(type) + "</Type>\n";
  out += "        <Server>" + xml_escape(hostname) + "</Server>\n";
  out += "        <Port>" + std::to_string(implicit_tls ? *implicit_tls : *starttls) + "</Port>\n";
  out += "        <DomainRequired>off</DomainRequired>\n";
  out += "        <LoginName>" + xml_escape(login) + "</LoginName>\n";
  // SPA means NTLM, which coop does not speak; absent, it defaults to on.
  out += "        <SPA>off</SPA>\n";
  out += "        <SSL>on</SSL>\n";
  // Encryption overrides SSL: STARTTLS on the plain port when there is no implicit-TLS one.
  if (!implicit_tls) out += "        <Encryption>TLS</Encryption>\n";
  out += "        <AuthRequired>on</AuthRequired>\n";
  out += "      </Protocol>\n";
}

// The text between <name> and </name>, for a flat element without attributes or prefix, as
// every Autodiscover client sends them.
std::optional<std::string_view> element_text(std::string_view body, std::string_view name) {
  const std::string open = "<" + std::string(name) + ">";
  const std::string close = "</" + std::string(name) + ">";
  const auto start = body.find(open);
  if (start == std::string_view::npos) return std::nullopt;
  const auto from = start + open.size();
  const auto end = body.find(close, from);
  if (end == std::string_view::npos) return std::nullopt;
  auto text = body.substr(from, end - from);
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\r' || text.front() == '\n'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '\n'))
    text.remove_suffix(1);
  return text;
}

// RFC 5321 4.5.3.1: at most 64 octets of local part, a path of at most 256 with its brackets.
bool is_plausible_address(std::string_view address) {
  if (address.empty() || address.size() > 254 || !is_valid_utf8(address)) return false;
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  for (unsigned char c : address.substr(0, at))
    // No controls or spaces, and nothing that would be markup or an entity in the body.
    if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') return false;
  return is_valid_domain(ascii_lower(address.substr(at + 1)));
}

// The domains coop-mail hosts (GET /v1/domains on its control socket), kept for kTtl so a burst
// of unauthenticated requests costs coop-mail one call, not one each.
class HostedDomains {
 public:
  HostedDomains(std::filesystem::path mail_socket, std::string shard_domain)
      : mail_socket_(std::move(mail_socket)), shard_domain_(std::move(shard_domain)) {}

  // Blocks for a control call at most once per kTtl. When coop-mail does not answer: the list
  // it last gave, or the shard's domain alone (it hosts that from its first start).
  std::vector<std::string> list() {
    constexpr auto kTtl = std::chrono::seconds(5);
    constexpr auto kTimeout = std::chrono::seconds(3);
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (asked_ && now - asked_at_ < kTtl) return domains_;
    asked_ = true;
    asked_at_ = now;
    try {
      control::Client mail(mail_socket_);
      const auto response = mail.request("GET", "/v1/domains", {}, kTimeout);
      response.throw_if_error();
      std::vector<std::string> fresh;
      for (const auto& d : response.json())
        if (d.is_object() && d.contains("name") && d["name"].is_string()) fresh.push_back(d["name"].get<std::string>());
      if (!fresh.empty()) domains_ = std::move(fresh);
    } catch (const std::exception& e) {
      spdlog::warn("autoconfig: coop-mail's domains unknown ({}); using what is known", e.what());
    }
    if (domains_.empty()) domains_ = {shard_domain_};
    return domains_;
  }

 private:
  const std::filesystem::path mail_socket_;
  const std::string shard_domain_;
  std::mutex mutex_;  // guards the fields below; held across the control call, so one caller asks
  bool asked_ = false;
  std::chrono::steady_clock::time_point asked_at_;
  std::vector<std::string> domains_;
};

http::Response xml_response(int status, std::string body) {
  return http::Response::bytes(status, std::move(body), std::string(kContentType));
}

http::Response no_mail() {
  return http::Response::bytes(404, "this shard serves no mail clients\n", "text/plain");
}

}  // namespace

std::string thunderbird_config(const MailServers& servers, const std::vector<std::string>& domains) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n";
  out += "  <emailProvider id=\"" + xml_escape(servers.provider) + "\">\n";
  for (const auto& d : domains) out += "    <domain>" + xml_escape(d) + "</domain>\n";
  out += "    <displayName>" + xml_escape(servers.provider) + "</displayName>\n";
  out += "    <displayShortName>" + xml_escape(servers.provider) + "</displayShortName>\n";
  // Clients take the first server of a type that works: implicit TLS (RFC 8314 3.3, 3.4) is
  // preferred to STARTTLS.
  if (servers.imaps) server_xml(out, "incomingServer", "imap", servers.hostname, *servers.imaps, "SSL");
  if (servers.imap) server_xml(out, "incomingServer", "imap", servers.hostname, *servers.imap, "STARTTLS");
  if (servers.submissions) server_xml(out, "outgoingServer", "smtp", servers.hostname, *servers.submissions, "SSL");
  if (servers.submission) server_xml(out, "outgoingServer", "smtp", servers.hostname, *servers.submission, "STARTTLS");
  out += "  </emailProvider>\n</clientConfig>\n";
  return out;
}

std::optional<std::string> autodiscover_email(std::string_view body) {
  const auto text = element_text(body, "EMailAddress");
  if (!text || !is_plausible_address(*text)) return std::nullopt;
  return std::string(*text);
}

bool autodiscover_schema_supported(std::string_view body) {
  const auto schema = element_text(body, "AcceptableResponseSchema");
  return !schema || schema->empty() || *schema == kOutlookResponseNs;
}

std::string autodiscover_settings(const MailServers& servers, std::string_view address) {
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
  out += "<Autodiscover xmlns=\"" + std::string(kAutodiscoverNs) + "\">\n";
  out += "  <Response xmlns=\"" + std::string(kOutlookResponseNs) + "\">\n";
  out += "    <Account>\n";
  out += "      <AccountType>email</AccountType>\n";
  out += "      <Action>settings</Action>\n";
  protocol_xml(out, "IMAP", servers.hostname, servers.imaps, servers.imap, address);
  protocol_xml(out, "SMTP", servers.hostname, servers.submissions, servers.submission, address);
  out += "    </Account>\n  </Response>\n</Autodiscover>\n";
  return out;
}

std::string autodiscover_error(int code, std::string_view message) {
  // The Time attribute is the time of day the answer was made (MS-ASCMD 2.2.3.63 gives its form).
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char at[16];
  std::strftime(at, sizeof at, "%H:%M:%S", &utc);
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
  out += "<Autodiscover xmlns=\"" + std::string(kAutodiscoverNs) + "\">\n";
  out += "  <Response xmlns=\"" + std::string(kOutlookResponseNs) + "\">\n";
  out += "    <Error Time=\"" + std::string(at) + "\">\n";
  out += "      <ErrorCode>" + std::to_string(code) + "</ErrorCode>\n";
  out += "      <Message>" + xml_escape(message) + "</Message>\n";
  out += "      <DebugData/>\n";
  out += "    </Error>\n  </Response>\n</Autodiscover>\n";
  return out;
}

void add_autoconfig_routes(WorkerRuntime& runtime, http::Router& router) {
  const auto servers = std::make_shared<const MailServers>(public_mail_servers(runtime.config()));
  const auto domains = std::make_shared<HostedDomains>(runtime.home().socket("mail"), runtime.config().domain());
  const auto run = runtime.blocking_runner();

  // The address Thunderbird sends (?emailaddress=) changes nothing: every hosted domain is
  // served by the same servers, and the username is a placeholder the client fills in.
  const http::Handler thunderbird = [servers, domains](const http::Request&) {
    if (!servers->any()) return no_mail();
    return xml_response(200, thunderbird_config(*servers, domains->list()));
  };
  // Thunderbird asks autoconfig.<domain>/mail/... first, then <domain>/.well-known/autoconfig/...
  router.add_blocking("GET", "/.well-known/autoconfig/mail/config-v1.1.xml", run, thunderbird,
                      "Thunderbird autoconfig (clientConfig 1.1)");
  router.add_blocking("GET", "/mail/config-v1.1.xml", run, thunderbird, "Thunderbird autoconfig on autoconfig.<domain>");

  // Errors go in the POX document with status 200, as Exchange answers them, so that clients
  // read the code; only a body too large to look at is refused at the HTTP level.
  const http::Handler outlook = [servers, domains](const http::Request& q) {
    if (!servers->any()) return no_mail();
    if (q.body.size() > kMaxAutodiscoverBodyBytes)
      return http::Response::bytes(413, "an Autodiscover request is a few hundred bytes\n", "text/plain");
    if (!autodiscover_schema_supported(q.body))
      return xml_response(200, autodiscover_error(601, "Provider is not available for the requested schema"));
    const auto address = autodiscover_email(q.body);
    if (!address) return xml_response(200, autodiscover_error(600, "Invalid Request"));
    // Only the domain is looked at, so the answer says nothing about who is a member.
    const auto domain = ascii_lower(address->substr(address->rfind('@') + 1));
    const auto hosted = domains->list();
    if (std::find(hosted.begin(), hosted.end(), domain) == hosted.end())
      return xml_response(200, autodiscover_error(500, "The email address cannot be found"));
    return xml_response(200, autodiscover_settings(*servers, *address));
  };
  // Outlook builds the path from its own spelling, capitalised or not; the router matches exactly.
  for (const char* path : {"/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"}) {
    router.add_blocking("POST", path, run, outlook, "Outlook Autodiscover (POX, responseschema 2006a)");
    router.add_blocking("GET", path, run, outlook, "Outlook Autodiscover; a GET has no request, so error 600");
  }
}

}  // namespace coop::dav
