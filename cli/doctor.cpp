// coop doctor: what stands between this shard and its members, each line OK, WARN or FAIL
// with what to do; exit 1 on any FAIL.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/config.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/net/server_certificate.h"
#include "common/paths.h"

namespace coop::cli {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

struct Check {
  std::string name, status, detail, fix;  // status: OK, WARN, FAIL
};

std::string days(int64_t seconds) { return std::to_string(seconds / 86400) + " days"; }

// Whether something accepts TCP connections at address:port (IPv4 or IPv6 literal), within 2 s.
bool reachable(const std::string& address, uint16_t port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  std::string host = address == "0.0.0.0" ? "127.0.0.1" : address == "::" ? "::1" : address;
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    return false;
  }
  const int fd = ::socket(storage.ss_family, SOCK_STREAM, 0);
  if (fd < 0) return false;
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&storage), length) == 0;
  ::close(fd);
  return ok;
}

bool loopback(const std::string& address) { return address.rfind("127.", 0) == 0 || address == "::1"; }

nlohmann::json check_workers(const Home& home, std::vector<Check>& out) {
  nlohmann::json status;
  try {
    status = supervisor_status(home);
  } catch (const Error&) {
    out.push_back({"workers", "FAIL", "coop is not running in " + home.root().string(), "coop up"});
    return nullptr;
  }
  for (const auto& w : status.value("workers", nlohmann::json::array())) {
    const std::string name = w.value("name", "");
    if (w.value("healthy", false))
      out.push_back({"worker " + name, "OK", "running, " + std::to_string(w.value("restarts", 0)) + " restarts", ""});
    else
      out.push_back({"worker " + name, "FAIL", w.value("state", "") + (w.contains("last_error") ? ": " + w.value("last_error", "") : ""),
                     "coop logs " + name});
  }
  return status;
}

// Every listener a running worker serves is tried from here; listeners on loopback only are
// one line (right for a test shard or behind a proxy on this machine, not for members).
void check_ports(const Config& config, const nlohmann::json& status, std::vector<Check>& out) {
  if (status.is_null()) return;
  std::size_t served = 0;
  std::string on_loopback, unserved;
  for (const auto& w : status.value("workers", nlohmann::json::array())) {
    const std::string worker = w.value("name", "");
    if (!w.value("healthy", false)) continue;
    std::set<std::string> urls;
    for (const auto& l : w.value("listeners", nlohmann::json::array())) urls.insert(l.value("url", ""));
    for (const auto& l : config.listeners(worker)) {
      if (!urls.count(l.url())) {
        unserved += (unserved.empty() ? "" : ", ") + worker + " " + l.name;
        continue;
      }
      ++served;
      if (!reachable(l.address, l.port))
        out.push_back({"port " + worker + " " + l.name, "FAIL", l.url() + " does not accept connections from this machine",
                       "a firewall? coop logs " + worker});
      else if (loopback(l.address))
        on_loopback += (on_loopback.empty() ? "" : ", ") + worker + " " + l.name;
    }
  }
  if (!unserved.empty())
    out.push_back({"ports not served", "WARN", "in coop.toml but not served by this coop yet: " + unserved, ""});
  if (!on_loopback.empty())
    out.push_back({"ports", "WARN", std::to_string(served) + " listeners accept connections, on loopback only (" + on_loopback + ")",
                   "for members: public addresses in [workers.NAME.listen], or a reverse proxy"});
  else
    out.push_back({"ports", "OK", std::to_string(served) + " listeners accept connections", ""});
}

void check_certificate(const Home& home, const Config& config, std::vector<Check>& out) {
  net::CertificateInfo info;
  try {
    info = net::certificate_info(home.tls_cert());
  } catch (const Error& e) {
    out.push_back({"certificate", "FAIL", e.what(), "coop tls install --cert FILE --key FILE"});
    return;
  }
  const int64_t left = info.not_after - unix_now();
  if (left < 0)
    out.push_back({"certificate expiry", "FAIL", "expired " + days(-left) + " ago", "coop tls install --cert FILE --key FILE"});
  else if (left < 30LL * 86400)
    out.push_back({"certificate expiry", "WARN", "expires in " + days(left), "renew it: coop tls install --cert FILE --key FILE"});
  else
    out.push_back({"certificate expiry", "OK", days(left) + " left", ""});
  std::vector<std::string> wanted = {config.domain()};
  const auto hostname = config.get_string("workers.mail.public.hostname", "");
  if (!hostname.empty() && hostname != config.domain()) wanted.push_back(hostname);
  std::string missing;
  for (const auto& name : wanted) {
    bool covered = false;
    for (const auto& have : info.names) {
      const bool wildcard = have.rfind("*.", 0) == 0 && name.size() > have.size() - 1 &&
                            name.compare(name.size() - (have.size() - 1), have.size() - 1, have, 1) == 0 &&
                            name.find('.') == name.size() - (have.size() - 1);
      covered = covered || have == name || wildcard;
    }
    if (!covered) missing += (missing.empty() ? "" : ", ") + name;
  }
  if (!missing.empty())
    out.push_back({"certificate names", "WARN", "does not cover " + missing, "a certificate for those names: coop tls install"});
  else
    out.push_back({"certificate names", "OK", "covers the shard's names", ""});
  if (info.self_signed)
    out.push_back({"certificate issuer", "WARN", "self-signed: mail clients and browsers will not trust it",
                   "[tls] acme in coop.toml (Let's Encrypt...), or coop tls install --cert FILE --key FILE"});
  else
    out.push_back({"certificate issuer", "OK", info.issuer, ""});
}

// With [tls] acme, whether the supervisor's renewer keeps the certificate (coop status says
// the same in a line).
void check_acme(const Config& config, const nlohmann::json& status, std::vector<Check>& out) {
  if (config.get_string("tls.acme", "").empty()) return;
  if (!status.is_object() || !status.contains("acme")) {
    out.push_back({"acme", "WARN", "coop is not running, so nothing renews the certificate", "coop up"});
    return;
  }
  const auto& acme = status["acme"];
  if (acme.value("state", "") == "failed")
    out.push_back({"acme", "WARN",
                   std::to_string(acme.value("failures", 0)) + " failed order(s), next try " +
                       utc_time_text(acme.value("next_attempt", "")) + ": " + acme.value("last_error", ""),
                   "fix what the error names (DNS, port 80 or 443 reaching coop), then coop tls renew"});
  else
    out.push_back({"acme", "OK", acme_summary(acme), ""});
}

void check_dns(const Globals& globals, bool running, std::vector<Check>& out) {
  if (!running) return;
  try {
    WorkerCall call(globals, "mail", false);
    for (const auto& d : call.call("GET", "/v1/domains")) {
      const std::string domain = d.value("name", "");
      int bad = 0, total = 0;
      for (const auto& r : call.call("GET", "/v1/dns/" + path_segment(domain) + "?check=1")) {
        ++total;
        if (r.value("status", "") != "ok") ++bad;
      }
      if (bad)
        out.push_back({"dns " + domain, "WARN", std::to_string(bad) + " of " + std::to_string(total) + " records missing or wrong",
                       "coop mail dns " + domain + " --check"});
      else
        out.push_back({"dns " + domain, "OK", std::to_string(total) + " records as they should be", ""});
    }
  } catch (const Error& e) {
    out.push_back({"dns", "WARN", std::string("cannot ask coop-mail: ") + e.what(), "coop status"});
  }
}

void check_disk(const Home& home, std::vector<Check>& out) {
  struct statvfs fs_info {};
  if (::statvfs(home.root().c_str(), &fs_info) != 0) {
    out.push_back({"disk", "WARN", "cannot read the free space of " + home.root().string(), ""});
    return;
  }
  const double free_bytes = static_cast<double>(fs_info.f_bavail) * fs_info.f_frsize;
  const double total = static_cast<double>(fs_info.f_blocks) * fs_info.f_frsize;
  const double share = total > 0 ? free_bytes / total : 0;
  char detail[128];
  std::snprintf(detail, sizeof detail, "%.1f GB free (%.0f %%) for databases and blobs", free_bytes / 1e9, share * 100);
  if (free_bytes < 1e9 || share < 0.05)
    out.push_back({"disk", "FAIL", detail, "free space: writes stop when the disk is full (nothing acknowledged is lost)"});
  else if (free_bytes < 10e9 || share < 0.15)
    out.push_back({"disk", "WARN", detail, "plan more space"});
  else
    out.push_back({"disk", "OK", detail, ""});
}

// Whether the clock is kept by NTP: what timedatectl or chronyc say; unknown otherwise.
// The clock's offset from an NTP server, by one SNTP exchange (RFC 4330 5: offset =
// ((T2 - T1) + (T3 - T4)) / 2); "host" or "host:port". nullopt when it does not answer in 2 s.
std::optional<double> ntp_offset(const std::string& server) {
  std::string host = server, port = "123";
  if (const auto colon = server.rfind(':'); colon != std::string::npos && server.find(':') == colon) {
    host = server.substr(0, colon);
    port = server.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found) return std::nullopt;
  const int fd = ::socket(found->ai_family, SOCK_DGRAM, 0);
  std::optional<double> offset;
  if (fd >= 0) {
    timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    constexpr double kNtpToUnix = 2208988800.0;  // seconds from 1900 to 1970
    auto now = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
    unsigned char packet[48] = {0x23};  // LI 0, version 4, mode 3 (client)
    const double t1 = now();
    const auto seconds = static_cast<uint32_t>(t1 + kNtpToUnix);
    for (int i = 0; i < 4; ++i) packet[40 + i] = static_cast<unsigned char>(seconds >> (24 - 8 * i));
    if (::sendto(fd, packet, sizeof packet, 0, found->ai_addr, found->ai_addrlen) == sizeof packet) {
      unsigned char reply[48];
      if (::recv(fd, reply, sizeof reply, 0) == sizeof reply && (reply[0] & 7) == 4) {
        const double t4 = now();
        auto timestamp = [&](int at) {
          uint32_t whole = 0, fraction = 0;
          for (int i = 0; i < 4; ++i) {
            whole = whole << 8 | reply[at + i];
            fraction = fraction << 8 | reply[at + 4 + i];
          }
          return whole - kNtpToUnix + fraction / 4294967296.0;
        };
        const double t2 = timestamp(32), t3 = timestamp(40);
        if (t3 > 0) offset = ((t2 - t1) + (t3 - t4)) / 2;
      }
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return offset;
}

void check_clock(const Config* config, std::vector<Check>& out) {
  // Measured where the admin named NTP servers ([doctor] ntp_servers): nothing leaves the
  // shard otherwise.
  const auto servers = config ? config->get_strings("doctor.ntp_servers", {}) : std::vector<std::string>{};
  for (const auto& server : servers) {
    const auto offset = ntp_offset(server);
    if (!offset) continue;
    char detail[128];
    // Whole milliseconds, so that a clock a few microseconds behind reads +0.000, not -0.000.
    const double shown = std::round(*offset * 1000.0) / 1000.0 + 0.0;
    std::snprintf(detail, sizeof detail, "%+.3f s from %s", shown == 0.0 ? 0.0 : shown, server.c_str());
    const double off = std::abs(*offset);
    if (off > 60)
      out.push_back({"clock", "FAIL", detail, "set the time and run an NTP client: DKIM, TLS and Matrix signatures fail"});
    else if (off > 1)
      out.push_back({"clock", "WARN", detail, "run an NTP client: systemd-timesyncd or chrony"});
    else
      out.push_back({"clock", "OK", detail, ""});
    return;
  }
  if (!servers.empty())
    out.push_back({"clock offset", "WARN", "no NTP server of [doctor] ntp_servers answered", "a firewall on UDP 123?"});
  auto run = [](const char* command) {
    std::string text;
    if (FILE* p = ::popen(command, "r")) {
      char buffer[256];
      while (std::fgets(buffer, sizeof buffer, p)) text += buffer;
      if (::pclose(p) != 0) text.clear();
    }
    return text;
  };
  const auto synced = run("timedatectl show -p NTPSynchronized --value 2>/dev/null");
  if (synced.rfind("yes", 0) == 0) return out.push_back({"clock", "OK", "synchronised by NTP (timedatectl)", ""});
  if (synced.rfind("no", 0) == 0)
    return out.push_back({"clock", "WARN", "not synchronised by NTP: DKIM, TLS and Matrix depend on the time",
                          "apt install systemd-timesyncd (or chrony)"});
  const auto tracking = run("chronyc -n tracking 2>/dev/null");
  if (const auto at = tracking.find("System time"); at != std::string::npos)
    return out.push_back({"clock", "OK", "chrony: " + tracking.substr(at, tracking.find('\n', at) - at), ""});
  out.push_back({"clock", "WARN", "cannot tell whether the clock is synchronised (no timedatectl or chronyc answered)",
                 "run an NTP client: systemd-timesyncd or chrony"});
}

void check_backup(const Home& home, std::vector<Check>& out) {
  std::ifstream in(home.root() / "last_backup.json");
  const auto last = in ? nlohmann::json::parse(in, nullptr, false) : nlohmann::json();
  if (!last.is_object()) {
    out.push_back({"backup", "WARN", "no backup taken yet", "coop backup --out DIR (nightly, from cron)"});
    return;
  }
  const int64_t age = unix_now() - last.value("finished", int64_t{0});
  const std::string where = last.value("out", "");
  if (age > 7 * 86400)
    out.push_back({"backup", "FAIL", "the last backup (" + where + ") is " + days(age) + " old", "coop backup --out " + where});
  else if (age > 26 * 3600)
    out.push_back({"backup", "WARN", "the last backup (" + where + ") is " + days(age) + " old", "coop backup --out " + where});
  else
    out.push_back({"backup", "OK", "last backup " + std::to_string(age / 3600) + " h ago in " + where, ""});
}

void run_doctor(Globals& globals, bool json) {
  const Home home = globals.resolve_home();
  std::vector<Check> checks;
  std::optional<Config> config;
  try {
    config.emplace(Config::load(home.config_file()));
    checks.push_back({"config", "OK", home.config_file().string() + " loads", ""});
  } catch (const Error& e) {
    checks.push_back({"config", "FAIL", e.what(), "fix the file, then coop up"});
  }
  if (config) {
    const auto status = check_workers(home, checks);
    check_ports(*config, status, checks);
    check_certificate(home, *config, checks);
    check_acme(*config, status, checks);
    check_dns(globals, !status.is_null(), checks);
  }
  check_disk(home, checks);
  check_clock(config ? &*config : nullptr, checks);
  check_backup(home, checks);

  bool failed = false;
  for (const auto& c : checks) failed = failed || c.status == "FAIL";
  if (json) {
    auto list = nlohmann::json::array();
    for (const auto& c : checks) list.push_back({{"check", c.name}, {"status", c.status}, {"detail", c.detail}, {"fix", c.fix}});
    print_json({{"ok", !failed}, {"checks", list}});
  } else {
    Table table({"CHECK", "STATUS", "DETAIL"});
    for (const auto& c : checks)
      table.add_row({c.name, c.status, c.detail},
                    {Colour::none, c.status == "OK" ? Colour::green : c.status == "WARN" ? Colour::yellow : Colour::red});
    table.print();
    bool header = false;
    for (const auto& c : checks) {
      if (c.status == "OK" || c.fix.empty()) continue;
      if (!header) std::cout << "\nWhat to do:\n";
      header = true;
      std::cout << "  " << c.name << ": " << c.fix << "\n";
    }
  }
  if (failed) globals.exit_code = kExitFailed;
}

}  // namespace

void add_doctor_commands(CLI::App& app, Globals& globals) {
  auto json = std::make_shared<bool>(false);
  auto* doctor = app.add_subcommand(
      "doctor",
      "Check what stands between the shard and its members: workers, ports, certificate, DNS, disk, clock, backups\n\n"
      "Each line is OK, WARN or FAIL, with what to do; the exit status is 1 when any line is FAIL. Ports are "
      "tried from this machine; DNS records are those `coop mail dns DOMAIN --check` looks up; the last "
      "backup is the one `coop backup` recorded in the shard.");
  doctor->add_flag("--json", *json, "print JSON");
  doctor->callback([&globals, json] { run_doctor(globals, *json); });
}

}  // namespace coop::cli
