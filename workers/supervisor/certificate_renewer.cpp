// The renewal thread: wake on the hour (or when asked), decide, order, install, reload.
#include "workers/supervisor/certificate_renewer.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/http/date.h"
#include "common/net/acme_challenge.h"
#include "common/net/server_certificate.h"
#include "common/paths.h"
#include "workers/supervisor/acme_client.h"

namespace coop {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

// "https://chat.example.org:8443/x" -> "chat.example.org"
std::string host_of(const std::string& url) {
  auto start = url.find("://");
  if (start == std::string::npos) return "";
  start += 3;
  const auto end = url.find_first_of(":/?#", start);
  std::string host = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  return host;
}

bool certifiable(const std::string& name) {
  if (!net::valid_acme_name(name) || name == "localhost" || name.find('.') == std::string::npos) return false;
  const auto last = name.substr(name.rfind('.') + 1);
  return !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });  // an IPv4 address
}

std::string mailto(const std::string& contact) {
  return contact.find(':') == std::string::npos ? "mailto:" + contact : contact;
}

}  // namespace

std::vector<std::string> CertificateRenewer::shard_names(const Config& config) {
  std::vector<std::string> names = config.get_strings("tls.names", {});
  if (names.empty()) {
    names.push_back(config.domain());
    names.push_back(config.get_string("workers.mail.public.hostname", ""));
    for (const char* worker : {"room", "tiles", "docs", "site"})
      names.push_back(host_of(config.get_string(std::string("workers.") + worker + ".public_url", "")));
  }
  std::vector<std::string> out;
  for (auto name : names) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (certifiable(name) && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

struct CertificateRenewer::Impl {
  explicit Impl(const Home& home) : home(home) {}

  const Home& home;
  acme::Settings settings;
  std::vector<std::string> names;
  int64_t renew_before_s = 0;
  int64_t retry_first_s = 0, retry_max_s = 0;
  std::function<bool()> ready;
  std::function<void()> reload;

  mutable std::mutex mutex;
  std::condition_variable wake;
  bool quit = false;
  bool force = false;
  bool asked = false;
  std::string state = "starting";  // ok | waiting | renewing | failed
  std::string step;
  int attempts = 0;  // orders begun since start
  int64_t renew_at = 0;  // from the certificate as last read (status() reads no file)
  int answered = 0;  // requests to renew (renew_now) decided, by an order or as not due
  // Kept in keys/acme-state.json across restarts.
  int failures = 0;
  int64_t next_attempt = 0;
  std::string last_error;
  int64_t last_renewed = 0;
  std::thread thread;

  fs::path state_file() const { return home.keys_dir() / "acme-state.json"; }

  void load_state() {
    std::ifstream in(state_file());
    if (!in) return;
    const auto saved = json::parse(in, nullptr, false);
    if (!saved.is_object()) return;
    failures = saved.value("failures", 0);
    next_attempt = saved.value("next_attempt", int64_t{0});
    last_error = saved.value("last_error", "");
    last_renewed = saved.value("last_renewed", int64_t{0});
  }

  void save_state() const {
    const json saved = {{"failures", failures}, {"next_attempt", next_attempt}, {"last_error", last_error},
                        {"last_renewed", last_renewed}};
    try {
      write_file_durably(state_file(), saved.dump(2) + "\n", 0600);
    } catch (const std::exception& e) {
      spdlog::warn("ACME: cannot save {}: {}", state_file().string(), e.what());
    }
  }

  // What the certificate on disk says, read once a pass of run(): why it should be replaced
  // (empty when it need not be), and when renewal falls due (0: now, or unknown).
  struct Verdict {
    std::string why;
    int64_t renew_at = 0;
  };
  Verdict judge(bool forced) const {
    net::CertificateInfo info;
    try {
      info = net::certificate_info(home.tls_cert());
    } catch (const std::exception&) {
      return {"there is no readable keys/tls.crt", 0};
    }
    const int64_t renew_at = info.self_signed ? 0 : info.not_after - renew_before_s;
    if (forced) return {"asked to", renew_at};
    if (info.self_signed) return {"the certificate is self-signed", renew_at};
    for (const auto& name : names)
      if (std::find(info.names.begin(), info.names.end(), name) == info.names.end())
        return {"the certificate does not cover " + name, renew_at};
    if (info.not_after - now_unix() < renew_before_s) return {"the certificate expires within the renewal window", renew_at};
    return {"", renew_at};
  }

  void attempt(const std::string& why) {
    spdlog::info("ACME: ordering a certificate for {} from {}: {}", json(names).dump(), settings.directory, why);
    try {
      const auto account = acme::AccountKey::load_or_create(home.keys_dir() / "acme-account.key");
      const auto issued = acme::obtain_certificate(settings, account, names, [this](const std::string& text) {
        spdlog::info("ACME: {}", text);
        std::lock_guard lock(mutex);
        step = text;
      });
      // Checked as `coop tls install` checks a pair before it replaces the one served.
      const auto staging_cert = home.keys_dir() / "acme-new.crt", staging_key = home.keys_dir() / "acme-new.key";
      write_file_durably(staging_key, issued.key_pem, 0600);
      write_file_durably(staging_cert, issued.chain_pem, 0644);
      const auto info = net::check_certificate_pair(staging_cert, staging_key);
      write_file_durably(home.tls_key(), issued.key_pem, 0600);
      write_file_durably(home.tls_cert(), issued.chain_pem, 0644);
      std::error_code ec;
      fs::remove(staging_cert, ec);
      fs::remove(staging_key, ec);
      spdlog::info("ACME: installed a certificate from {} for {} until {}", info.issuer, json(info.names).dump(),
                   info.not_after);
      {
        std::lock_guard lock(mutex);
        failures = 0;
        next_attempt = 0;
        last_error.clear();
        last_renewed = now_unix();
        state = "ok";
        save_state();
      }
      reload();
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex);
      ++failures;
      const int64_t delay = std::min<int64_t>(retry_max_s, retry_first_s << std::min(failures - 1, 20));
      next_attempt = now_unix() + delay;
      last_error = e.what();
      state = "failed";
      spdlog::error("ACME: {} (attempt {}; next in {} s)", last_error, failures, delay);
      save_state();
    }
  }

  void run() {
    std::unique_lock lock(mutex);
    while (!quit) {
      const bool forced = std::exchange(force, false);
      const bool was_asked = std::exchange(asked, false);
      lock.unlock();
      const auto verdict = judge(forced);
      const std::string& why = verdict.why;
      // Asked without this object's lock: ready() takes the supervisor's, which is held
      // while the supervisor's status asks for ours.
      const bool workers_ready = why.empty() || ready();
      lock.lock();
      renew_at = verdict.renew_at;
      const bool backing_off = !was_asked && next_attempt > now_unix();
      if (!why.empty() && !backing_off) {
        if (!workers_ready) {
          state = "waiting";
          step = "waiting for the workers to start";
          asked = was_asked;
          force = forced;
          wake.wait_for(lock, std::chrono::milliseconds(500));
          continue;
        }
        state = "renewing";
        step = why;
        ++attempts;
        lock.unlock();
        attempt(why);
        const auto after = judge(false).renew_at;  // the certificate installed, if one was
        lock.lock();
        renew_at = after;
        if (was_asked) ++answered;
        continue;
      }
      if (was_asked) ++answered;
      if (why.empty()) state = "ok";
      step.clear();
      // Re-read the certificate hourly: it may have been replaced by hand.
      auto wait = std::chrono::seconds(3600);
      if (backing_off) wait = std::min(wait, std::chrono::seconds(std::max<int64_t>(1, next_attempt - now_unix())));
      wake.wait_for(lock, wait, [this] { return quit || asked; });
    }
  }
};

CertificateRenewer::CertificateRenewer(const Config& config, const Home& home, std::function<bool()> ready,
                                       std::function<void()> reload)
    : impl_(std::make_unique<Impl>(home)) {
  auto& s = impl_->settings;
  s.directory = config.get_string("tls.acme", "");
  if (s.directory.empty()) return;
  for (const auto& contact : config.get_strings("tls.acme_contact", {})) s.contact.push_back(mailto(contact));
  s.challenge = config.get_string("tls.acme_challenge", "http-01");
  s.key_type = config.get_string("tls.acme_key_type", "ecdsa-p256");
  s.ca_file = config.get_string("tls.acme_ca_file", "");
  impl_->names = shard_names(config);
  impl_->renew_before_s = static_cast<int64_t>(config.get_count("tls.acme_renew_days", 30, 1, 89)) * 86400;
  impl_->retry_first_s = static_cast<int64_t>(config.get_count("tls.acme_retry_first_s", 600, 1, 86400));
  impl_->retry_max_s = static_cast<int64_t>(config.get_count("tls.acme_retry_max_s", 86400, 1, 7 * 86400));
  if (impl_->names.empty())
    throw Error(errc::kConfigInvalid,
                "[tls] acme is set but the shard has no name to certify: set shard.domain or [tls] names to DNS names",
                400);
  impl_->ready = std::move(ready);
  impl_->reload = std::move(reload);
  impl_->load_state();
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

CertificateRenewer::~CertificateRenewer() {
  if (!impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->quit = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

bool CertificateRenewer::enabled() const { return impl_->thread.joinable(); }

void CertificateRenewer::renew_now(bool force) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->asked = true;
    impl_->force = impl_->force || force;
  }
  impl_->wake.notify_all();
}

json CertificateRenewer::status() const {
  std::lock_guard lock(impl_->mutex);
  json out = {{"directory", impl_->settings.directory},
              {"names", impl_->names},
              {"challenge", impl_->settings.challenge},
              {"state", impl_->state},
              {"attempts", impl_->attempts},
              {"answered", impl_->answered},
              {"failures", impl_->failures},
              {"renew_at", http::iso8601(impl_->renew_at)}};
  if (!impl_->step.empty()) out["step"] = impl_->step;
  if (!impl_->last_error.empty()) out["last_error"] = impl_->last_error;
  if (impl_->next_attempt > 0) out["next_attempt"] = http::iso8601(impl_->next_attempt);
  if (impl_->last_renewed > 0) out["last_renewed"] = http::iso8601(impl_->last_renewed);
  return out;
}

}  // namespace coop
