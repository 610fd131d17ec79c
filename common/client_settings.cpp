// Client settings from coop.toml alone, so the CLI and the portal say the same thing.
#include "common/client_settings.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/config.h"
#include "common/mail/public_servers.h"

namespace coop {

namespace {

std::string without_trailing_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

nlohmann::json server(const std::string& host, std::optional<uint16_t> port, const char* security,
                      const std::string& login) {
  if (!port) return nullptr;
  return {{"host", host}, {"port", *port}, {"security", security}, {"login", login}};
}

}  // namespace

std::vector<std::string> tile_archive_names(const std::filesystem::path& home_root) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(home_root / "tiles", ec))
    if (entry.path().extension() == ".mbtiles") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string public_base_url(const Config& config, const std::string& worker, const std::string& listener) {
  if (!config.worker_enabled(worker)) return "";
  const auto configured = config.get_string("workers." + worker + ".public_url", "");
  if (!configured.empty()) return without_trailing_slash(configured);
  for (const auto& l : config.listeners(worker))
    if (l.name == listener) return without_trailing_slash(l.url());
  return "";
}

nlohmann::json client_settings(const Config& config, const std::string& handle, const std::vector<std::string>& emails,
                               const std::vector<std::string>& maps) {
  nlohmann::json out = {{"member", handle}, {"domain", config.domain()}};
  // The registry takes the handle or any of the member's addresses as the login name; mail
  // clients are set up with an address, so that one is shown for mail.
  const std::string mail_login = emails.empty() ? handle : emails.front();
  const auto mail = mail::public_mail_servers(config);
  if (mail.any()) {
    out["mail"] = {{"address", emails.empty() ? nlohmann::json(nullptr) : nlohmann::json(emails.front())},
                   {"imap", server(mail.hostname, mail.imaps, "TLS", mail_login)},
                   {"imap_starttls", server(mail.hostname, mail.imap, "STARTTLS", mail_login)},
                   {"submission", server(mail.hostname, mail.submissions, "TLS", mail_login)},
                   {"submission_starttls", server(mail.hostname, mail.submission, "STARTTLS", mail_login)}};
  }
  if (const auto dav = public_base_url(config, "dav", "http"); !dav.empty()) {
    out["calendars"] = {{"url", dav + "/dav/calendars/" + handle + "/"}, {"discovery", dav + "/.well-known/caldav"},
                        {"login", handle}};
    out["contacts"] = {{"url", dav + "/dav/addressbooks/" + handle + "/"}, {"discovery", dav + "/.well-known/carddav"},
                       {"login", handle}};
  }
  if (const auto room = public_base_url(config, "room", "client"); !room.empty())
    out["chat"] = {{"homeserver", room}, {"user_id", "@" + handle + ":" + config.domain()}, {"login", handle}};
  if (const auto tiles = public_base_url(config, "tiles", "http"); !tiles.empty()) {
    nlohmann::json map = {{"maps", maps}};
    if (!maps.empty()) {
      const auto page = tiles + "/tiles/" + maps.front() + "/map";
      map["page"] = page;
      map["embed"] = "<iframe src=\"" + page + "\" width=\"600\" height=\"400\" style=\"border:0\" loading=\"lazy\"></iframe>";
    }
    out["map"] = map;
  }
  if (const auto docs = public_base_url(config, "docs", "http"); !docs.empty())
    out["documents"] = {{"editor", docs + "/docs/"}, {"login", handle}};
  return out;
}

}  // namespace coop
