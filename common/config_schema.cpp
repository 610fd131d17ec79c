// The keys of coop.toml. A key a worker reads must be listed here: Config refuses to read
// one that is not, so the list cannot fall behind the code.
#include "common/config_schema.h"

#include <algorithm>
#include <array>
#include <unordered_map>

#include "common/spelling.h"

namespace coop::config_schema {

namespace {

using enum Kind;

constexpr Key kKeys[] = {
    {"shard.domain", kString},
    {"log.level", kString, "trace|debug|info|warn|error"},
    {"control.max_body_bytes", kCount},
    {"control.idle_timeout_ms", kCount},
    {"control.max_connections", kCount},
    {"supervisor.stop_timeout_ms", kCount},
    {"supervisor.start_timeout_ms", kCount},
    {"supervisor.backoff_initial_ms", kCount},
    {"supervisor.backoff_max_ms", kCount},
    {"supervisor.stable_after_ms", kCount},
    {"runtime.io_threads", kCount},
    {"runtime.blocking_threads", kCount},
    {"shutdown.drain_ms", kCount},
    {"auth.address_failures", kCount},
    {"auth.member_failures", kCount},
    {"auth.failure_window_s", kCount},
    {"auth.argon2id_iterations", kCount},
    {"auth.argon2id_memory_kib", kCount},
    {"dns.servers", kStrings},
    {"dns.timeout_ms", kCount},
    {"dns.max_ttl_s", kInt},
    {"http.trusted_proxies", kNetworks},
    {"doctor.ntp_servers", kStrings},
    {"tls.names", kStrings},
    {"tls.acme", kString},
    {"tls.acme_contact", kStrings},
    {"tls.acme_challenge", kString, "http-01|tls-alpn-01"},
    {"tls.acme_key_type", kString, "ecdsa-p256|rsa-2048"},
    {"tls.acme_ca_file", kString},
    {"tls.acme_renew_days", kCount},
    {"tls.acme_retry_first_s", kCount},
    {"tls.acme_retry_max_s", kCount},

    {"workers.*.enabled", kBool},
    {"workers.*.listen.*", kListener},

    {"workers.member.public_url", kString},
    {"workers.member.site_group", kString},
    {"workers.room.public_url", kString},
    {"workers.room.space_name", kString},
    {"workers.room.support_page", kString},
    {"workers.room.default_room_version", kString},
    {"workers.room.max_upload_bytes", kCount},
    {"workers.room.max_connections", kCount},
    {"workers.room.max_connections_per_address", kCount},
    {"workers.room.max_connections_per_network", kCount},
    {"workers.room.idle_timeout_ms", kCount},
    {"workers.room.push.gateways", kStrings},
    {"workers.room.turn.uris", kStrings},
    {"workers.room.turn.secret_file", kString},
    {"workers.room.turn.ttl_s", kCount},
    {"workers.room.jitsi.domain", kString},
    {"workers.room.jitsi.url", kString},
    {"workers.room.jitsi.auth", kString},
    {"workers.room.jitsi.app_id", kString},
    {"workers.room.jitsi.app_secret_file", kString},
    {"workers.room.jitsi.audience", kString},
    {"workers.room.jitsi.member_lifetime_s", kCount},
    {"workers.room.jitsi.guest_lifetime_s", kCount},
    {"workers.room.jitsi.wrapper_url", kString},
    {"workers.room.jitsi.verify_token_file", kString},
    {"workers.room.url_previews.enabled", kBool},
    {"workers.room.url_previews.allow_networks", kNetworks},

    {"workers.mail.max_message_bytes", kCount},
    {"workers.mail.max_recipients", kCount},
    {"workers.mail.max_connections", kCount},
    {"workers.mail.max_connections_per_address", kCount},
    {"workers.mail.max_connections_per_network", kCount},
    {"workers.mail.max_bad_commands", kCount},
    {"workers.mail.max_command_line", kCount},
    {"workers.mail.idle_timeout_ms", kCount},
    {"workers.mail.command_timeout_ms", kCount},
    {"workers.mail.session_timeout_ms", kCount},
    {"workers.mail.imap_max_line", kCount},
    {"workers.mail.imap_login_timeout_ms", kCount},
    {"workers.mail.imap_autologout_ms", kCount},
    {"workers.mail.imap_plaintext_loopback", kBool},
    {"workers.mail.check_inbound", kBool},
    {"workers.mail.check_memory_bytes", kCount},
    {"workers.mail.trusted_networks", kNetworks},
    {"workers.mail.routes", kStringTable},
    {"workers.mail.spam.enabled", kBool},
    {"workers.mail.spam.junk", kNumber},
    {"workers.mail.spam.reject", kNumber},
    {"workers.mail.spam.per_member", kBool},
    {"workers.mail.spam.per_member_min", kCount},
    {"workers.mail.spam.greylist", kBool},
    {"workers.mail.spam.greylist_delay_s", kCount},
    {"workers.mail.spam.greylist_forget_s", kCount},
    {"workers.mail.spam.greylist_pass_days", kCount},
    {"workers.mail.spam.dnsbl", kStrings},
    {"workers.mail.spam.uribl", kStrings},
    {"workers.federate.resolve", kStringTable},
    {"workers.federate.max_body_bytes", kCount},
    {"workers.federate.max_backoff_ms", kCount},
    {"workers.mail.public.hostname", kString},
    {"workers.mail.public.imaps_port", kCount},
    {"workers.mail.public.imap_port", kCount},
    {"workers.mail.public.submissions_port", kCount},
    {"workers.mail.public.submission_port", kCount},
    {"workers.mail.relay.host", kString},
    {"workers.mail.relay.port", kCount},
    {"workers.mail.relay.tls", kString, "implicit|starttls|none"},
    {"workers.mail.relay.verify", kBool},
    {"workers.mail.relay.username", kString},
    {"workers.mail.relay.password_file", kString},
    {"workers.mail.queue.retry_first_ms", kCount},
    {"workers.mail.queue.retry_max_ms", kCount},
    {"workers.mail.queue.lifetime_ms", kCount},
    {"workers.mail.queue.delay_notice_ms", kCount},
    {"workers.mail.queue.max_deliveries", kCount},
    {"workers.mail.queue.max_per_domain", kCount},
    {"workers.mail.queue.connect_timeout_ms", kCount},
    {"workers.mail.queue.command_timeout_ms", kCount},
    {"workers.mail.queue.data_timeout_ms", kCount},
    {"workers.mail.queue.mx_port", kCount},

    {"workers.dav.public_url", kString},
    {"workers.dav.max_connections", kCount},
    {"workers.dav.max_connections_per_address", kCount},
    {"workers.dav.max_connections_per_network", kCount},
    {"workers.dav.idle_timeout_ms", kCount},
    {"workers.dav.max_file_bytes", kCount},
    {"workers.dav.max_request_bytes", kCount},

    {"workers.tiles.public_url", kString},
    {"workers.tiles.assets_dir", kString},
    {"workers.tiles.fonts_dir", kString},
    {"workers.tiles.frame_ancestors", kString},
    {"workers.tiles.max_age_seconds", kCount},
    {"workers.tiles.max_markers_per_member", kCount},
    {"workers.tiles.max_connections", kCount},
    {"workers.tiles.max_connections_per_address", kCount},
    {"workers.tiles.max_connections_per_network", kCount},
    {"workers.tiles.idle_timeout_ms", kCount},

    {"workers.docs.public_url", kString},
    {"workers.docs.web_dir", kString},
    {"workers.docs.frame_ancestors", kString},
    {"workers.docs.quota_bytes", kCount},
    {"workers.docs.max_blob_bytes", kCount},
    {"workers.docs.max_chunk_bytes", kCount},
    {"workers.docs.max_channel_bytes", kCount},
    {"workers.docs.max_channels_per_user", kCount},
    {"workers.docs.max_users_per_channel", kCount},
    {"workers.docs.max_message_bytes", kCount},
    {"workers.docs.max_queued_bytes", kCount},
    {"workers.docs.session_days", kCount},
    {"workers.docs.sweep_seconds", kCount},
    {"workers.docs.max_connections", kCount},
    {"workers.docs.max_connections_per_address", kCount},
    {"workers.docs.max_connections_per_network", kCount},

    {"workers.site.public_url", kString},
    {"workers.site.preview_domain", kString},
    {"workers.site.timezone", kString},
    {"workers.site.cache_bytes", kCount},
    {"workers.site.keep_versions", kCount},
    {"workers.site.max_age_seconds", kCount},
    {"workers.site.max_connections", kCount},
    {"workers.site.max_connections_per_address", kCount},
    {"workers.site.max_connections_per_network", kCount},
    {"workers.site.idle_timeout_ms", kCount},
};

// Defaults as the code has them where each key is read (keep both in step).
constexpr Doc kDocs[] = {
    {"runtime.io_threads", "0", "network threads per worker; 0: one per core"},
    {"runtime.blocking_threads", "2", "disk and hashing work per worker; default: one per core, at least 2"},
    {"shutdown.drain_ms", "5000", "on SIGTERM, how long requests in flight may finish"},
    {"auth.member_failures", "10", "failed logins per member in a window before a pause"},
    {"auth.address_failures", "30", "the same per client address"},
    {"auth.failure_window_s", "900", ""},
    {"auth.argon2id_iterations", "2", "password hashing cost (OWASP's minimum)"},
    {"auth.argon2id_memory_kib", "19456", ""},
    {"dns.servers", "[]", "resolvers to ask, \"192.0.2.53\" or \"127.0.0.1@5353\"; empty: /etc/resolv.conf"},
    {"dns.timeout_ms", "10000", ""},
    {"dns.max_ttl_s", "-1", "cap on cached answers' TTL; -1: as the answer says"},
    {"http.trusted_proxies", "[]", "reverse proxies (CIDR) not held to the per-address caps"},
    {"doctor.ntp_servers", "[]", "NTP servers coop doctor measures the clock against, \"pool.ntp.org\"; none: not measured"},
    {"tls.names", "[]", "DNS names keys/tls.crt must cover; empty: shard.domain, the mail host name and every public_url's host"},
    {"tls.acme", "\"\"", "ACME directory URL (RFC 8555), \"https://acme-v02.api.letsencrypt.org/directory\"; empty: no ACME (setting it agrees to the CA's terms)"},
    {"tls.acme_contact", "[]", "addresses the CA writes to about the certificates, \"admin@example.org\""},
    {"tls.acme_challenge", "\"http-01\"", "http-01 (port 80 must reach an HTTP listener) or tls-alpn-01 (port 443 a TLS one)"},
    {"tls.acme_key_type", "\"ecdsa-p256\"", "key of each new certificate: ecdsa-p256 or rsa-2048"},
    {"tls.acme_ca_file", "\"\"", "CA bundle trusted for the ACME server's own HTTPS; empty: the system's"},
    {"tls.acme_renew_days", "30", "renew this many days before expiry"},
    {"tls.acme_retry_first_s", "600", "after a failed order, wait this long, doubling each time"},
    {"tls.acme_retry_max_s", "86400", "up to this long"},
    {"workers.member.public_url", "\"https://example.org\"", "where members reach the portal (at /portal/); default: its listener"},
    {"workers.member.site_group", "\"web\"", "members of this group (and admins) publish the sites from the portal"},
    {"workers.room.public_url", "\"https://matrix.example.org\"", "what clients are told is the homeserver; default: the listener"},
    {"workers.room.space_name", "\"Our cooperative\"", "the cooperative Space's name; default: the domain"},
    {"workers.room.support_page", "\"https://example.org/help\"", "in /.well-known/matrix/support; default: none"},
    {"workers.room.default_room_version", "\"12\"", "what /createRoom makes when the client names none (10, 11 or 12)"},
    {"workers.room.max_upload_bytes", "52428800", ""},
    {"workers.room.max_connections", "4096", ""},
    {"workers.room.max_connections_per_address", "256", ""},
    {"workers.room.max_connections_per_network", "1024", "per IPv4 /24 or IPv6 /64"},
    {"workers.room.idle_timeout_ms", "180000", ""},
    {"workers.room.push.gateways", "[]", "push gateways HTTP pushers may use; none: no push leaves"},
    {"workers.room.turn.uris", "[]", "coturn's URIs for calls, \"turn:turn.example.org:3478?transport=udp\""},
    {"workers.room.turn.secret_file", "\"keys/turn_secret\"", "coturn's static-auth-secret, in a file"},
    {"workers.room.turn.ttl_s", "86400", ""},
    {"workers.room.jitsi.domain", "\"meet.example.org\"", "Jitsi Meet for calls in rooms; default: none (no calls)"},
    {"workers.room.jitsi.url", "\"https://meet.example.org/\"", "where conferences open; default: https://DOMAIN/"},
    {"workers.room.jitsi.auth", "\"openidtoken-jwt\"", "or \"token\" (Jitsi's token auth) or \"none\"; see coop room jitsi config"},
    {"workers.room.jitsi.app_id", "\"coop\"", "the iss of coop's tokens, Prosody's app_id"},
    {"workers.room.jitsi.app_secret_file", "\"keys/jitsi_app_secret\"", "Prosody's app_secret, in a file; made when missing"},
    {"workers.room.jitsi.audience", "\"jitsi\"", "the aud of coop's tokens"},
    {"workers.room.jitsi.member_lifetime_s", "3600", "how long a member's call token admits (60 to 86400)"},
    {"workers.room.jitsi.guest_lifetime_s", "7200", "a guest link's default life (--valid; at most 7 days)"},
    {"workers.room.jitsi.wrapper_url", "\"https://app.element.io/jitsi.html\"", "Element's Jitsi page named in widgets"},
    {"workers.room.jitsi.verify_token_file", "\"keys/uvs_token\"", "a bearer token /verify/* then wants; default: none"},
    {"workers.room.url_previews.enabled", "false", ""},
    {"workers.room.url_previews.allow_networks", "[]", "private networks previews may fetch from anyway"},
    {"workers.mail.max_message_bytes", "52428800", "RFC 1870 SIZE"},
    {"workers.mail.max_recipients", "100", ""},
    {"workers.mail.max_connections", "1024", ""},
    {"workers.mail.max_connections_per_address", "20", ""},
    {"workers.mail.max_connections_per_network", "256", ""},
    {"workers.mail.max_bad_commands", "10", "then 421 and goodbye"},
    {"workers.mail.max_command_line", "2048", ""},
    {"workers.mail.idle_timeout_ms", "300000", ""},
    {"workers.mail.command_timeout_ms", "60000", ""},
    {"workers.mail.session_timeout_ms", "1800000", "a whole SMTP session"},
    {"workers.mail.imap_max_line", "65536", ""},
    {"workers.mail.imap_login_timeout_ms", "60000", ""},
    {"workers.mail.imap_autologout_ms", "1800000", ""},
    {"workers.mail.imap_plaintext_loopback", "false", "LOGIN without TLS from 127.0.0.1 (tests, a local webmail)"},
    {"workers.mail.check_inbound", "true", "SPF, DKIM and DMARC on mail from outside"},
    {"workers.mail.check_memory_bytes", "268435456", ""},
    {"workers.mail.trusted_networks", "[\"127.0.0.0/8\", \"::1/128\"]", "who may relay without logging in"},
    {"workers.mail.routes", "{}", "where mail for a domain goes: { \"example.org\" = \"mx.example.org:25\" }"},
    {"workers.mail.spam.enabled", "true", "score inbound mail (rules and the members' own classifier) and file spam in Junk"},
    {"workers.mail.spam.junk", "5.0", "at this score or more a message goes to Junk"},
    {"workers.mail.spam.reject", "15.0", "at this score or more it is refused with 550 at the end of DATA"},
    {"workers.mail.spam.per_member", "false", "each member's training also teaches a classifier of their own"},
    {"workers.mail.spam.per_member_min", "20", "spam and ham a member's classifier needs before it decides for them"},
    {"workers.mail.spam.greylist", "false", "RFC 6647: a first attempt from an unknown sender gets 451; the retry passes"},
    {"workers.mail.spam.greylist_delay_s", "300", "how long a sender waits before its retry passes"},
    {"workers.mail.spam.greylist_forget_s", "129600", "an attempt never retried is forgotten after this"},
    {"workers.mail.spam.greylist_pass_days", "35", "how long a sender that retried passes at once"},
    {"workers.mail.spam.dnsbl", "[]", "DNS blocklists of senders' addresses, [\"zen.spamhaus.org\"]; none: no lookups leave"},
    {"workers.mail.spam.uribl", "[]", "URI blocklists of link hosts, [\"multi.uribl.com\"]; none: no lookups leave"},
    {"workers.federate.resolve", "{}", "where a homeserver is: { \"b.example\" = \"https://10.0.0.2:8448\" } (else NAME:8448)"},
    {"workers.federate.max_body_bytes", "8388608", "the largest request body accepted"},
    {"workers.federate.max_backoff_ms", "600000", "the longest wait before sending again to a server that failed (doubling from 1 s)"},
    {"workers.mail.public.hostname", "\"mail.example.org\"", "the mail host clients are told; default: the domain"},
    {"workers.mail.public.imaps_port", "993", "what clients are told, when a firewall forwards"},
    {"workers.mail.public.imap_port", "143", ""},
    {"workers.mail.public.submissions_port", "465", ""},
    {"workers.mail.public.submission_port", "587", ""},
    {"workers.mail.relay.host", "\"smtp.example.net\"", "send everything through this smarthost; default: none (MX)"},
    {"workers.mail.relay.port", "587", ""},
    {"workers.mail.relay.tls", "\"starttls\"", "implicit, starttls or none (implicit for port 465)"},
    {"workers.mail.relay.verify", "true", "check the relay's certificate"},
    {"workers.mail.relay.username", "\"coop\"", ""},
    {"workers.mail.relay.password_file", "\"keys/relay_password\"", ""},
    {"workers.mail.queue.retry_first_ms", "60000", ""},
    {"workers.mail.queue.retry_max_ms", "14400000", ""},
    {"workers.mail.queue.lifetime_ms", "432000000", "then the sender gets a bounce"},
    {"workers.mail.queue.delay_notice_ms", "14400000", ""},
    {"workers.mail.queue.max_deliveries", "20", "transactions at once"},
    {"workers.mail.queue.max_per_domain", "4", ""},
    {"workers.mail.queue.connect_timeout_ms", "30000", ""},
    {"workers.mail.queue.command_timeout_ms", "300000", ""},
    {"workers.mail.queue.data_timeout_ms", "600000", ""},
    {"workers.mail.queue.mx_port", "25", ""},
    {"workers.dav.public_url", "\"https://dav.example.org\"", "where members' CalDAV and CardDAV clients reach it; default: its listener"},
    {"workers.dav.max_connections", "1024", ""},
    {"workers.dav.max_connections_per_address", "64", ""},
    {"workers.dav.max_connections_per_network", "256", ""},
    {"workers.dav.idle_timeout_ms", "60000", ""},
    {"workers.dav.max_file_bytes", "0", "the largest file in /dav/files/; 0: only the member's quota and the disk limit it"},
    {"workers.dav.max_request_bytes", "8388608", "the largest calendar, contact or XML request body"},
    {"workers.tiles.public_url", "\"https://map.example.org\"", "the map's address behind a proxy; default: from the request"},
    {"workers.tiles.assets_dir", "\"/srv/maplibre\"", "where maplibre-gl.js is; default: the installed one"},
    {"workers.tiles.fonts_dir", "\"/usr/share/fonts/truetype/dejavu\"", "TrueType fonts for labels"},
    {"workers.tiles.frame_ancestors", "\"*\"", "who may embed the map page"},
    {"workers.tiles.max_age_seconds", "3600", "tiles' Cache-Control"},
    {"workers.tiles.max_markers_per_member", "1000", ""},
    {"workers.tiles.max_connections", "4096", ""},
    {"workers.tiles.max_connections_per_address", "256", ""},
    {"workers.tiles.max_connections_per_network", "1024", ""},
    {"workers.tiles.idle_timeout_ms", "60000", ""},
    {"workers.docs.public_url", "\"https://docs.example.org\"", "the address links carry; default: the listener"},
    {"workers.docs.web_dir", "\"/srv/coop-docs-web\"", "the editor's files; default: the installed ones"},
    {"workers.docs.frame_ancestors", "\"*\"", "who may show the editor in a frame (Element's room widgets)"},
    {"workers.docs.quota_bytes", "1073741824", "per member"},
    {"workers.docs.max_blob_bytes", "104857600", ""},
    {"workers.docs.max_chunk_bytes", "8388608", ""},
    {"workers.docs.max_channel_bytes", "268435456", ""},
    {"workers.docs.max_channels_per_user", "64", ""},
    {"workers.docs.max_users_per_channel", "1000", ""},
    {"workers.docs.max_message_bytes", "1048576", ""},
    {"workers.docs.max_queued_bytes", "33554432", ""},
    {"workers.docs.session_days", "30", ""},
    {"workers.docs.sweep_seconds", "60", ""},
    {"workers.docs.max_connections", "4096", ""},
    {"workers.docs.max_connections_per_address", "256", ""},
    {"workers.docs.max_connections_per_network", "1024", ""},
    {"workers.site.public_url", "\"https://example.org\"", "the sites' address behind a proxy; default: the listener"},
    {"workers.site.preview_domain", "\"preview.example.org\"", "default: none"},
    {"workers.site.timezone", "\"UTC\"", "for event pages"},
    {"workers.site.cache_bytes", "268435456", ""},
    {"workers.site.keep_versions", "10", "versions kept for rollback"},
    {"workers.site.max_age_seconds", "300", ""},
    {"workers.site.max_connections", "8192", ""},
    {"workers.site.max_connections_per_address", "512", ""},
    {"workers.site.max_connections_per_network", "2048", ""},
    {"workers.site.idle_timeout_ms", "60000", ""},
};

std::vector<std::string_view> segments(std::string_view dotted) {
  std::vector<std::string_view> out;
  while (true) {
    const auto dot = dotted.find('.');
    out.push_back(dotted.substr(0, dot));
    if (dot == std::string_view::npos) return out;
    dotted.remove_prefix(dot + 1);
  }
}

// Whether the first path.size() segments of the pattern match the path.
bool matches(const std::vector<std::string_view>& pattern, const std::vector<std::string_view>& path) {
  if (path.size() > pattern.size()) return false;
  for (std::size_t i = 0; i < path.size(); ++i)
    if (pattern[i] != "*" && pattern[i] != path[i]) return false;
  return true;
}

}  // namespace

std::vector<Doc> docs() { return {std::begin(kDocs), std::end(kDocs)}; }

std::vector<std::string> patterns() {
  std::vector<std::string> out;
  for (const auto& key : kKeys) out.emplace_back(key.pattern);
  return out;
}

const Key* find(std::string_view path) {
  // Keys without a wildcard by name (Config checks each key it reads, some per request);
  // the few patterns with one, segment by segment.
  static const auto exact = [] {
    std::unordered_map<std::string_view, const Key*> map;
    for (const auto& key : kKeys)
      if (std::string_view(key.pattern).find('*') == std::string_view::npos) map.emplace(key.pattern, &key);
    return map;
  }();
  if (const auto it = exact.find(path); it != exact.end()) return it->second;
  const auto wanted = segments(path);
  for (const auto& key : kKeys) {
    if (std::string_view(key.pattern).find('*') == std::string_view::npos) continue;
    const auto pattern = segments(key.pattern);
    if (pattern.size() == wanted.size() && matches(pattern, wanted)) return &key;
  }
  return nullptr;
}

bool is_table(std::string_view path) {
  const auto wanted = segments(path);
  return std::any_of(std::begin(kKeys), std::end(kKeys), [&](const Key& key) {
    const auto pattern = segments(key.pattern);
    return pattern.size() > wanted.size() && matches(pattern, wanted);
  });
}

std::string suggestion(std::string_view path) {
  auto wanted = segments(path);
  const auto last = wanted.back();
  wanted.pop_back();
  std::vector<std::string> candidates;
  for (const auto& key : kKeys) {
    const auto pattern = segments(key.pattern);
    if (pattern.size() <= wanted.size() || !matches(pattern, wanted) || pattern[wanted.size()] == "*") continue;
    candidates.emplace_back(pattern[wanted.size()]);
  }
  return closest_spelling(last, candidates);
}

}  // namespace coop::config_schema
