// coop tls: the shard's TLS certificate (keys/tls.crt and keys/tls.key), shown and replaced.
// Every worker serves the pair from the next handshake after SIGHUP (common/net/server_certificate.h).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/cli.h"
#include "cli/output.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/error_codes.h"
#include "common/fs.h"
#include "common/http/date.h"
#include "common/net/server_certificate.h"
#include "common/paths.h"

namespace coop::cli {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Renewal is due this long before expiry (what ACME clients and `coop tls status` go by).
constexpr int64_t kRenewBeforeSeconds = 30LL * 24 * 3600;

nlohmann::json info_json(const net::CertificateInfo& info) {
  return {{"names", info.names},   {"subject", info.subject},     {"issuer", info.issuer},
          {"not_before", http::iso8601(info.not_before)}, {"not_after", http::iso8601(info.not_after)}, {"sha256", info.sha256},
          {"self_signed", info.self_signed}, {"days_left", (info.not_after - unix_now()) / 86400}};
}

// Which running workers serve which certificate: {worker: sha256}; empty when coop is down.
nlohmann::json served_by(const Home& home) {
  nlohmann::json served = nlohmann::json::object();
  nlohmann::json status;
  try {
    status = supervisor_status(home);
  } catch (const Error&) {
    return served;
  }
  for (const auto& w : status.value("workers", nlohmann::json::array())) {
    if (!w.value("healthy", false)) continue;
    try {
      control::Client client(w.value("socket", ""));
      auto response = client.request("GET", "/v1/status", {}, milliseconds(5000));
      if (!response.ok()) continue;
      const auto worker = response.json();
      if (worker.contains("tls")) served[w.value("name", "")] = worker["tls"].value("sha256", "");
    } catch (const Error&) {
    }
  }
  return served;
}

// served_by() once every worker serves sha256 (they load a new pair at the SIGHUP they were
// sent, within a moment), or as it stands after `timeout`.
nlohmann::json served_once_reloaded(const Home& home, const std::string& sha256, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto served = served_by(home);
    bool all = true;
    for (const auto& [worker, sha] : served.items()) all = all && sha == sha256;
    if (all || std::chrono::steady_clock::now() >= deadline) return served;
    std::this_thread::sleep_for(milliseconds(100));
  }
}

void print_info(const net::CertificateInfo& info, const fs::path& file) {
  std::string names;
  for (const auto& n : info.names) names += (names.empty() ? "" : ", ") + n;
  const int64_t left = info.not_after - unix_now();
  std::cout << "Certificate  " << file.string() << "\n"
            << "Names        " << (names.empty() ? "(none)" : names) << "\n"
            << "Issuer       " << info.issuer << (info.self_signed ? " (self-signed)" : "") << "\n"
            << "Valid        " << utc_time_text(info.not_before) << " to " << utc_time_text(info.not_after) << " ("
            << (left < 0 ? paint("expired", Colour::red)
                         : paint(std::to_string(left / 86400) + " days left",
                                 left < kRenewBeforeSeconds ? Colour::yellow : Colour::green))
            << ")\n"
            << "SHA-256      " << info.sha256 << "\n";
}

void print_served(const nlohmann::json& served, const std::string& sha256) {
  if (served.empty()) {
    std::cout << "Served by    (coop is not running, or no worker serves TLS)\n";
    return;
  }
  std::string same, other;
  for (const auto& [worker, sha] : served.items()) (sha == sha256 ? same : other) += (worker + " ");
  if (!same.empty()) std::cout << "Served by    " << same << "\n";
  if (!other.empty()) std::cout << "Still older  " << paint(other, Colour::yellow) << "(`systemctl reload coop` or `kill -HUP` the supervisor)\n";
}

// The supervisor's ACME renewer, when coop runs with [tls] acme set; null otherwise.
nlohmann::json acme_status(const Home& home) {
  try {
    return supervisor_status(home).value("acme", nlohmann::json());
  } catch (const Error&) {
    return nullptr;
  }
}

void tls_status(Globals& globals, bool json) {
  const Home home = globals.resolve_home();
  require_shard(home);
  const auto info = net::certificate_info(home.tls_cert());
  const auto served = served_by(home);
  const auto acme = acme_status(home);
  if (json) {
    auto out = info_json(info);
    out["file"] = home.tls_cert().string();
    out["served_by"] = served;
    out["acme"] = acme;
    print_json(out);
  } else {
    print_info(info, home.tls_cert());
    print_served(served, info.sha256);
    if (acme.is_object()) std::cout << "ACME         " << acme_summary(acme) << "\n";
  }
  if (info.not_after < unix_now()) globals.exit_code = kExitFailed;
}

// Asks the supervisor's renewer to try now and waits until it has decided (an order takes
// seconds to a few minutes; the ACME server's own deadline bounds it).
void tls_renew(Globals& globals, bool force, bool json) {
  const Home home = globals.resolve_home();
  control::Client supervisor(home.socket("supervisor"));
  const auto before = supervisor_status(home).value("acme", nlohmann::json::object()).value("answered", 0);
  const auto answer = supervisor.request("POST", "/v1/tls/renew", nlohmann::json{{"force", force}}.dump(), milliseconds(5000));
  answer.throw_if_error();
  ProgressLine progress(json);
  nlohmann::json acme;
  std::string last_step;
  while (true) {
    acme = supervisor_status(home).value("acme", nlohmann::json::object());
    const auto step = acme.value("step", "");
    if (!step.empty() && step != last_step) progress.show("ACME: " + step, true);
    last_step = step;
    if (acme.value("answered", 0) > before) break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  progress.done();
  const bool failed = acme.value("state", "") == "failed";
  if (json) {
    auto out = nlohmann::json{{"acme", acme}};
    if (!failed) {
      const auto info = net::certificate_info(home.tls_cert());
      out["certificate"] = info_json(info);
      out["certificate"]["served_by"] = served_once_reloaded(home, info.sha256, milliseconds(5000));
    }
    print_json(out);
  } else if (failed) {
    std::cerr << "coop: " << acme.value("last_error", "the order failed") << "\n";
  } else {
    const auto info = net::certificate_info(home.tls_cert());
    print_info(info, home.tls_cert());
    print_served(served_once_reloaded(home, info.sha256, milliseconds(5000)), info.sha256);
    std::cout << "ACME         " << acme_summary(acme) << "\n";
  }
  if (failed) globals.exit_code = kExitFailed;
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(errc::kNotFound, "cannot read " + file.string(), 404);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void tls_install(Globals& globals, const fs::path& cert, const fs::path& key, bool json) {
  const Home home = globals.resolve_home();
  require_shard(home);
  // The pair is checked before anything is touched: a key that does not match, or a
  // certificate that has expired, leaves the shard's own pair as it was.
  const auto info = net::check_certificate_pair(cert, key);
  if (info.not_after < unix_now())
    throw Error(errc::kTlsError, cert.string() + " expired on " + utc_time_text(info.not_after), 400);
  if (info.not_before > unix_now() + 300)
    throw Error(errc::kTlsError, cert.string() + " is not valid before " + utc_time_text(info.not_before), 400);
  write_file_durably(home.tls_key(), read_file(key), 0600);
  write_file_durably(home.tls_cert(), read_file(cert), 0644);

  // Running workers take it from their next handshake; wait until each says so.
  bool reloaded = false;
  try {
    control::Client supervisor(home.socket("supervisor"));
    reloaded = supervisor.request("POST", "/v1/reload", {}, milliseconds(5000)).ok();
  } catch (const Error&) {
  }
  nlohmann::json served = nlohmann::json::object();
  if (reloaded) served = served_once_reloaded(home, info.sha256, std::chrono::seconds(10));
  if (json) {
    auto out = info_json(info);
    out["file"] = home.tls_cert().string();
    out["served_by"] = served;
    print_json(out);
    return;
  }
  std::cout << "Installed " << home.tls_cert().string() << " and " << home.tls_key().string() << " (0600).\n\n";
  print_info(info, home.tls_cert());
  print_served(served, info.sha256);
}

}  // namespace

std::string acme_summary(const nlohmann::json& acme) {
  std::string names;
  for (const auto& n : acme.value("names", nlohmann::json::array())) names += (names.empty() ? "" : ", ") + n.get<std::string>();
  std::string text = "from " + acme.value("directory", "") + " for " + names + " by " + acme.value("challenge", "") + ": ";
  const auto state = acme.value("state", "");
  if (state == "failed") {
    text += paint("failed", Colour::red) + " (" + std::to_string(acme.value("failures", 0)) + " in a row): " +
            acme.value("last_error", "");
    if (acme.contains("next_attempt")) text += "; next try " + utc_time_text(acme.value("next_attempt", ""));
  } else if (state == "renewing" || state == "waiting") {
    text += paint(state, Colour::yellow) + (acme.contains("step") ? ", " + acme.value("step", "") : std::string());
  } else {
    text += paint(state, state == "ok" ? Colour::green : Colour::none);
    if (const auto at = acme.value("renew_at", ""); !at.empty() && at > "1970-01-02") text += ", renews " + utc_time_text(at);
  }
  return text;
}

void add_tls_commands(CLI::App& app, Globals& globals) {
  auto* tls = app.add_subcommand(
      "tls",
      "The shard's TLS certificate: show it, or install one from elsewhere\n\n"
      "Every TLS listener (HTTPS, IMAPS, submissions, STARTTLS on SMTP and IMAP) serves keys/tls.crt with "
      "keys/tls.key. `coop tls install` checks a pair (the key matches, the certificate is in its validity) "
      "and installs it; running workers serve it from their next handshake, and sessions already open go on. "
      "A pair replaced by hand is served after `systemctl reload coop` (SIGHUP to the supervisor, which passes "
      "it on); a file that does not load then leaves the previous pair served, and the worker's log says why. "
      "`coop tls status` exits 1 when the certificate has expired.\n\n"
      "With [tls] acme set to an ACME directory (Let's Encrypt's, or any RFC 8555 server), the running shard "
      "orders its certificate itself: for [tls] names (by default shard.domain, the mail host name and every "
      "public_url's host), by HTTP-01 on the HTTP listeners or TLS-ALPN-01 on the TLS ones, when the one in "
      "keys/ is self-signed, misses a name or expires within 30 days; a failure is retried with backoff and "
      "shown in `coop status`. `coop tls renew` asks for an order now.");
  tls->require_subcommand(1);

  struct StatusOptions {
    bool json = false;
  };
  auto status_options = std::make_shared<StatusOptions>();
  auto* status = tls->add_subcommand("status", "Names, issuer, expiry and fingerprint of keys/tls.crt, and which workers serve it");
  status->add_flag("--json", status_options->json, "print JSON");
  status->callback([&globals, status_options] { tls_status(globals, status_options->json); });

  struct InstallOptions {
    std::string cert, key;
    bool json = false;
  };
  auto install_options = std::make_shared<InstallOptions>();
  auto* install = tls->add_subcommand(
      "install", "Check a certificate chain and its key, install them as keys/tls.crt and keys/tls.key, and have every worker serve them");
  install->add_option("--cert", install_options->cert, "PEM certificate chain, the server's certificate first")
      ->required()
      ->check(CLI::ExistingFile);
  install->add_option("--key", install_options->key, "PEM private key of that certificate")->required()->check(CLI::ExistingFile);
  install->add_flag("--json", install_options->json, "print JSON");
  struct RenewOptions {
    bool force = false, json = false;
  };
  auto renew_options = std::make_shared<RenewOptions>();
  auto* renew = tls->add_subcommand(
      "renew", "Have the running shard order a certificate from its ACME server ([tls] acme) now, and wait for it");
  renew->add_flag("--force", renew_options->force, "order one even when the certificate is not due for renewal");
  renew->add_flag("--json", renew_options->json, "print JSON");
  renew->callback([&globals, renew_options] { tls_renew(globals, renew_options->force, renew_options->json); });

  install->callback([&globals, install_options] {
    tls_install(globals, install_options->cert, install_options->key, install_options->json);
  });
}

}  // namespace coop::cli
