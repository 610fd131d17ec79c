// The keys of coop.toml. A key a worker reads must be listed here: Config refuses to read
// one that is not, so the list cannot fall behind the code.
#include "common/config_schema.h"

#include <algorithm>
#include <array>

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

    {"workers.*.enabled", kBool},
    {"workers.*.listen.*", kListener},

    {"workers.room.public_url", kString},
    {"workers.room.space_name", kString},
    {"workers.room.support_page", kString},
    {"workers.room.max_upload_bytes", kCount},
    {"workers.room.max_connections", kCount},
    {"workers.room.max_connections_per_address", kCount},
    {"workers.room.max_connections_per_network", kCount},
    {"workers.room.idle_timeout_ms", kCount},
    {"workers.room.push.gateways", kStrings},
    {"workers.room.turn.uris", kStrings},
    {"workers.room.turn.secret_file", kString},
    {"workers.room.turn.ttl_s", kCount},
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

    {"workers.dav.max_connections", kCount},
    {"workers.dav.max_connections_per_address", kCount},
    {"workers.dav.max_connections_per_network", kCount},
    {"workers.dav.idle_timeout_ms", kCount},

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

std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

const Key* find(std::string_view path) {
  const auto wanted = segments(path);
  for (const auto& key : kKeys) {
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
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, last.size() / 3) + 1;
  for (const auto& key : kKeys) {
    const auto pattern = segments(key.pattern);
    if (pattern.size() <= wanted.size() || !matches(pattern, wanted) || pattern[wanted.size()] == "*") continue;
    const auto candidate = pattern[wanted.size()];
    if (const auto d = distance(last, candidate); d < best_distance) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  return best;
}

}  // namespace coop::config_schema
