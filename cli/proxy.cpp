// coop proxy nginx|caddy: a reverse-proxy configuration for the shard's HTTP listeners, with
// TLS, to put in front of a shard whose listeners stay on loopback.
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <sstream>

#include "cli/cli.h"
#include "common/config.h"
#include "common/error.h"
#include "common/paths.h"

namespace coop::cli {

namespace {

namespace fs = std::filesystem;

// One public name and what serves it: the upstream listener, and paths that go elsewhere.
struct Site {
  std::string host;
  std::string upstream;  // "127.0.0.1:8400"
  std::map<std::string, std::string> paths;  // prefix -> upstream
  bool websocket = false;  // docs: /cryptpad_websocket and /docs/ws
  std::string max_body;    // nginx size ("50m")
};

std::string host_of(const std::string& url) {
  auto rest = url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
  return rest.substr(0, rest.find_first_of(":/"));
}

std::string upstream_of(const Config& config, std::string_view worker, std::string_view listener) {
  for (const auto& l : config.listeners(worker))
    if (l.name == listener && config.worker_enabled(worker)) {
      const bool v6 = l.address.find(':') != std::string::npos;
      const std::string address = l.address == "0.0.0.0" ? "127.0.0.1" : l.address == "::" ? "::1" : l.address;
      return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(l.port);
    }
  return {};
}

// The shard's public names: each worker's public_url where coop.toml gives one, else a
// name under the domain (matrix., dav., map., docs.), and the domain itself for sites and
// the .well-known documents clients look up there.
std::vector<Site> sites_of(const Config& config) {
  const auto& domain = config.domain();
  const auto room = upstream_of(config, "room", "client");
  const auto dav = upstream_of(config, "dav", "http");
  const auto tiles = upstream_of(config, "tiles", "http");
  const auto docs = upstream_of(config, "docs", "http");
  const auto site = upstream_of(config, "site", "http");
  const auto portal = upstream_of(config, "member", "portal");
  const auto mb = [&](const char* key, std::size_t fallback) {
    return std::to_string((config.get_count(key, fallback) + (1 << 20) - 1) >> 20) + "m";
  };
  std::vector<Site> out;
  if (!room.empty())
    out.push_back({host_of(config.get_string("workers.room.public_url", "https://matrix." + domain)), room, {}, false,
                   mb("workers.room.max_upload_bytes", 50 << 20)});
  if (!dav.empty())
    out.push_back({host_of(config.get_string("workers.dav.public_url", "https://dav." + domain)), dav, {}, false, "64m"});
  if (!tiles.empty())
    out.push_back({host_of(config.get_string("workers.tiles.public_url", "https://map." + domain)), tiles, {}, false, "1m"});
  if (!docs.empty()) out.push_back({"docs." + domain, docs, {}, true, mb("workers.docs.max_blob_bytes", 100 << 20)});
  Site apex{domain, site.empty() ? room : site, {}, false, "1m"};
  if (!room.empty()) apex.paths["/.well-known/matrix/"] = room;
  if (!portal.empty()) apex.paths["/portal/"] = portal;
  if (!dav.empty()) {
    apex.paths["/.well-known/caldav"] = dav;
    apex.paths["/.well-known/carddav"] = dav;
    apex.paths["/.well-known/autoconfig/"] = dav;
  }
  if (!apex.upstream.empty()) out.push_back(apex);
  return out;
}

std::string nginx(const Config& config, const std::string& cert, const std::string& key) {
  std::ostringstream out;
  out << "# nginx in front of the coop shard " << config.domain() << ", written by `coop proxy nginx`.\n"
      << "# Put it in /etc/nginx/conf.d/coop.conf, point each name below at this machine in DNS, then\n"
      << "# `nginx -t && systemctl reload nginx`. nginx must be able to read the certificate and key.\n"
      << "# In coop.toml, so that members are not all counted as nginx's one address:\n"
      << "#   [http]\n#   trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\n"
      << "# With [tls] acme, coop renews keys/tls.crt itself (HTTP-01 passes through port 80 below);\n"
      << "# nginx reads it at start and reload, so reload nginx daily (a systemd timer or cron).\n\n"
      << "map $http_upgrade $coop_connection { default upgrade; '' close; }\n\n";
  for (const auto& s : sites_of(config)) {
    // RFC 8555 8.3: HTTP-01 challenges stay plain HTTP; every coop worker answers them.
    out << "server {\n    listen 80;\n    listen [::]:80;\n    server_name " << s.host << ";\n"
        << "    location /.well-known/acme-challenge/ { proxy_pass http://" << s.upstream << "; proxy_set_header Host $host; }\n"
        << "    location / { return 301 https://$host$request_uri; }\n}\n\n";
    // "listen ... http2" as nginx 1.22 (Debian 12) has it; 1.25 also takes it, with a notice.
    out << "server {\n    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n    server_name " << s.host << ";\n"
        << "    ssl_certificate " << cert << ";\n    ssl_certificate_key " << key << ";\n"
        << "    ssl_protocols TLSv1.2 TLSv1.3;\n"
        << "    client_max_body_size " << s.max_body << ";\n";
    auto location = [&](const std::string& prefix, const std::string& upstream, bool websocket) {
      out << "    location " << prefix << " {\n"
          << "        proxy_pass http://" << upstream << ";\n"
          << "        proxy_http_version 1.1;\n"
          << "        proxy_set_header Host $host;\n"
          << "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
          << "        proxy_set_header X-Forwarded-Proto $scheme;\n"
          << "        proxy_read_timeout 600s;\n"   // Matrix /sync long-polls, docs websockets idle
          << "        proxy_buffering off;\n";
      if (websocket)
        out << "        proxy_set_header Upgrade $http_upgrade;\n        proxy_set_header Connection $coop_connection;\n";
      out << "    }\n";
    };
    for (const auto& [prefix, upstream] : s.paths) location(prefix, upstream, false);
    location("/", s.upstream, s.websocket);
    out << "}\n\n";
  }
  return out.str();
}

std::string caddy(const Config& config, const std::string& cert, const std::string& key) {
  std::ostringstream out;
  out << "# Caddy in front of the coop shard " << config.domain() << ", written by `coop proxy caddy`.\n"
      << "# Put it in /etc/caddy/Caddyfile (or import it), point each name below at this machine in\n"
      << "# DNS, then `caddy validate --config /etc/caddy/Caddyfile && systemctl reload caddy`.\n"
      << "# In coop.toml, so that members are not all counted as Caddy's one address:\n"
      << "#   [http]\n#   trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\n\n";
  for (const auto& s : sites_of(config)) {
    out << s.host << " {\n";
    if (!cert.empty()) out << "\ttls " << cert << " " << key << "\n";
    out << "\trequest_body {\n\t\tmax_size " << s.max_body.substr(0, s.max_body.size() - 1) << "MB\n\t}\n";
    for (const auto& [prefix, upstream] : s.paths)
      out << "\thandle " << prefix << (prefix.back() == '/' ? "*" : "") << " {\n\t\treverse_proxy " << upstream << "\n\t}\n";
    out << "\thandle {\n\t\treverse_proxy " << s.upstream << " {\n\t\t\tflush_interval -1\n\t\t}\n\t}\n}\n\n";
  }
  return out.str();
}

}  // namespace

void add_proxy_commands(CLI::App& app, Globals& globals) {
  struct Options {
    std::string kind, cert, key;
    bool acme_by_caddy = false;
  };
  auto o = std::make_shared<Options>();
  auto* proxy = app.add_subcommand(
      "proxy",
      "Print a reverse-proxy configuration (nginx or Caddy) for the shard's HTTP listeners, with TLS\n\n"
      "The shard's names: Matrix at [workers.room] public_url (else matrix.DOMAIN), CalDAV and CardDAV at "
      "dav.DOMAIN, the map at [workers.tiles] public_url (else map.DOMAIN), documents at docs.DOMAIN, and the "
      "domain itself for the cooperative's sites and the .well-known documents Matrix, DAV and mail clients "
      "look up there. Matrix /sync long-polls and document websockets stay open; upload sizes follow "
      "coop.toml. The certificate is the shard's (keys/) unless --cert and --key name others; with Caddy, "
      "--caddy-certificates lets Caddy obtain its own.");
  proxy->add_option("kind", o->kind, "nginx or caddy")->required()->check(CLI::IsMember({"nginx", "caddy"}));
  proxy->add_option("--cert", o->cert, "certificate chain the proxy serves (default: the shard's keys/tls.crt)");
  proxy->add_option("--key", o->key, "its key (default: the shard's keys/tls.key)");
  proxy->add_flag("--caddy-certificates", o->acme_by_caddy, "Caddy: let Caddy obtain certificates itself (no tls line)");
  proxy->callback([&globals, o] {
    const Home home = globals.resolve_home();
    const auto config = Config::load(home.config_file());
    const std::string cert = o->cert.empty() ? fs::absolute(home.tls_cert()).string() : o->cert;
    const std::string key = o->key.empty() ? fs::absolute(home.tls_key()).string() : o->key;
    if (o->kind == "nginx")
      std::cout << nginx(config, cert, key);
    else
      std::cout << caddy(config, o->acme_by_caddy ? std::string() : cert, key);
  });
}

}  // namespace coop::cli
