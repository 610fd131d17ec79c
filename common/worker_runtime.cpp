// Process lifecycle shared by the supervisor and the workers.
#include "common/http/date.h"
#include "common/worker_runtime.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "common/control/server.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/net/acme_challenge.h"
#include "common/net/server_certificate.h"
#include "common/version.h"

namespace coop {

namespace asio_net = boost::asio;
using Clock = std::chrono::steady_clock;

struct WorkerRuntime::Impl {
  explicit Impl(RuntimeOptions o)
      : options(std::move(o)), home(Home::resolve(options.home)), config(Config::load(home.config_file())) {
    coop::net::set_acme_challenge_dir(home.run_dir() / "acme");
  }

  RuntimeOptions options;
  Home home;
  Config config;
  asio_net::io_context io;
  std::optional<asio_net::executor_work_guard<asio_net::io_context::executor_type>> work{io.get_executor()};
  control::Router router;
  std::unique_ptr<asio_net::thread_pool> blocking_pool;
  std::unique_ptr<control::Server> server;
  asio_net::signal_set signals{io, SIGTERM, SIGINT, SIGHUP};
  asio_net::steady_timer drain_timer{io};
  int lock_fd = -1;
  Clock::time_point started = Clock::now();
  std::int64_t started_unix = static_cast<std::int64_t>(::time(nullptr));
  std::vector<ListenerConfig> listeners;
  std::vector<std::function<void(nlohmann::json&)>> status_fillers;
  std::vector<std::function<void()>> shutdown_hooks;
  std::vector<std::function<bool()>> drained_predicates;
  std::vector<std::function<void()>> reload_hooks;
  bool stopping = false;
  std::optional<std::chrono::milliseconds> drain_timeout;

  void lock();
  void install_routes();
  void wait_signal();
  void shutdown();
  void reload();
  void poll_drained(Clock::time_point deadline);
};

void WorkerRuntime::Impl::lock() {
  home.ensure_dirs();
  const auto path = home.lock_file(options.name);
  lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock_fd < 0)
    throw Error(errc::kLockFailed, "cannot open " + path.string() + ": " + std::strerror(errno), 500);
  // As Kea and PowerDNS do: one instance per shard, enforced by the kernel, gone with the process.
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
    throw Error(errc::kAlreadyRunning, "coop-" + options.name + " is already running for " + home.root().string(), 409);
  write_file_durably(home.pid_file(options.name), std::to_string(::getpid()) + "\n", 0644);
}

void WorkerRuntime::Impl::install_routes() {
  router.set_internal_errors_shown(true);  // the socket is the admins' (0660)
  router.add("GET", "/v1", [this](const control::Request&) {
    return control::Response::json({{"name", options.name}, {"commands", router.describe()}});
  }, "this list of commands");
  router.add("GET", "/v1/health", [this](const control::Request&) {
    return control::Response::json({{"status", stopping ? "stopping" : "ok"}}, stopping ? 503 : 200);
  }, "liveness: 200 while serving");
  router.add("GET", "/v1/status", [this](const control::Request&) {
    nlohmann::json status = {
        {"name", options.name},
        {"version", kVersion},
        {"pid", ::getpid()},
        {"home", home.root().string()},
        {"domain", config.domain()},
        {"state", stopping ? "stopping" : "running"},
        {"started_at", http::iso8601(started_unix)},
        {"uptime_s", std::chrono::duration<double>(Clock::now() - started).count()},
    };
    auto list = nlohmann::json::array();
    for (const auto& l : listeners) list.push_back({{"name", l.name}, {"url", l.url()}});
    status["listeners"] = list;
    if (const auto tls = coop::net::served_certificate(home.tls_cert()))
      status["tls"] = {{"sha256", tls->sha256}, {"not_after", http::iso8601(tls->not_after)}, {"names", tls->names}};
    for (const auto& fill : status_fillers) fill(status);
    return control::Response::json(status);
  }, "process, uptime and listeners");
  router.add("POST", "/v1/shutdown", [this](const control::Request&) {
    asio_net::post(io, [this] { shutdown(); });
    return control::Response::json({{"status", "stopping"}}, 202);
  }, "graceful shutdown, as SIGTERM");
  router.add("POST", "/v1/reload", [this](const control::Request&) {
    asio_net::post(io, [this] { reload(); });
    return control::Response::json({{"status", "reloading"}}, 202);
  }, "reopen logs and reload, as SIGHUP");
}

void WorkerRuntime::Impl::wait_signal() {
  signals.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      reload();
      wait_signal();
      return;
    }
    spdlog::info("signal {}: shutting down", signal);
    shutdown();
    wait_signal();  // a second SIGTERM during the drain is absorbed; the deadline still holds
  });
}

void WorkerRuntime::Impl::reload() {
  reopen_log();
  spdlog::info("reload");
  coop::net::reload_server_certificates();  // a replaced keys/tls.crt is served from the next handshake
  for (const auto& hook : reload_hooks) hook();
}

void WorkerRuntime::Impl::shutdown() {
  if (stopping) return;
  stopping = true;
  if (server) server->stop();
  for (const auto& hook : shutdown_hooks) hook();
  work.reset();
  const auto deadline =
      Clock::now() + drain_timeout.value_or(config.get_millis("shutdown.drain_ms", std::chrono::milliseconds(5000)));
  poll_drained(deadline);
}

void WorkerRuntime::Impl::poll_drained(Clock::time_point deadline) {
  bool drained = true;
  for (const auto& predicate : drained_predicates) drained = drained && predicate();
  if (drained || Clock::now() >= deadline) {
    if (!drained) spdlog::warn("drain deadline reached; closing what is left");
    signals.cancel();
    io.stop();
    return;
  }
  drain_timer.expires_after(std::chrono::milliseconds(50));
  drain_timer.async_wait([this, deadline](const boost::system::error_code& ec) {
    if (!ec) poll_drained(deadline);
  });
}

WorkerRuntime::WorkerRuntime(RuntimeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  init_logging(impl_->home, impl_->options.name, impl_->options.foreground,
               impl_->config.get_string("log.level", "info"));
  impl_->lock();
  impl_->install_routes();
}

WorkerRuntime::~WorkerRuntime() {
  impl_->server.reset();
  std::error_code ec;
  std::filesystem::remove(impl_->home.pid_file(impl_->options.name), ec);
  if (impl_->lock_fd >= 0) ::close(impl_->lock_fd);
}

const std::string& WorkerRuntime::name() const { return impl_->options.name; }
const Home& WorkerRuntime::home() const { return impl_->home; }
const Config& WorkerRuntime::config() const { return impl_->config; }
asio_net::io_context& WorkerRuntime::io() { return impl_->io; }
control::Router& WorkerRuntime::router() { return impl_->router; }

control::Runner WorkerRuntime::blocking_runner() {
  if (!impl_->blocking_pool) {
    const auto cores = static_cast<int64_t>(std::max(2u, std::thread::hardware_concurrency()));
    impl_->blocking_pool = std::make_unique<asio_net::thread_pool>(
        impl_->config.get_count("runtime.blocking_threads", cores, 1, 256));
  }
  return [pool = impl_->blocking_pool.get()](std::function<void()> job) { asio_net::post(*pool, std::move(job)); };
}

void WorkerRuntime::set_listeners(std::vector<ListenerConfig> listeners) { impl_->listeners = std::move(listeners); }
void WorkerRuntime::on_status(std::function<void(nlohmann::json&)> fill) { impl_->status_fillers.push_back(std::move(fill)); }
void WorkerRuntime::on_shutdown(std::function<void()> hook) { impl_->shutdown_hooks.push_back(std::move(hook)); }
void WorkerRuntime::drained_when(std::function<bool()> predicate) { impl_->drained_predicates.push_back(std::move(predicate)); }
void WorkerRuntime::set_drain_timeout(std::chrono::milliseconds timeout) { impl_->drain_timeout = timeout; }
void WorkerRuntime::on_reload(std::function<void()> hook) { impl_->reload_hooks.push_back(std::move(hook)); }

void WorkerRuntime::request_shutdown() {
  asio_net::post(impl_->io, [this] { impl_->shutdown(); });
}

int WorkerRuntime::run() {
  std::signal(SIGPIPE, SIG_IGN);
  control::ServerLimits limits;
  // Imports send whole messages (up to the mail size limit) and member CSVs over this socket.
  limits.max_body_bytes = impl_->config.get_count("control.max_body_bytes", 64 << 20);
  limits.idle_timeout = impl_->config.get_millis("control.idle_timeout_ms", std::chrono::milliseconds(30000));
  limits.max_connections = impl_->config.get_count("control.max_connections", 256, 1);
  impl_->server = std::make_unique<control::Server>(impl_->io, impl_->home.socket(impl_->options.name),
                                                    impl_->router, limits);
  impl_->server->start();
  impl_->wait_signal();
  spdlog::info("coop-{} {} ready on {}", impl_->options.name, kVersion,
               impl_->home.socket(impl_->options.name).string());

  // [runtime] io_threads: for a worker pinned to fewer cores than the machine has.
  unsigned threads = static_cast<unsigned>(impl_->config.get_count("runtime.io_threads", 0, 0, 256));
  if (threads == 0) threads = impl_->options.threads ? impl_->options.threads : std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([this] { impl_->io.run(); });
  impl_->io.run();
  for (auto& t : pool) t.join();
  if (impl_->blocking_pool) impl_->blocking_pool->join();  // jobs in flight finish their commits
  impl_->server->stop();
  spdlog::info("coop-{} stopped", impl_->options.name);
  return 0;
}

namespace {

void print_worker_help(const std::string& name) {
  std::cout << "Usage: coop-" << name << " [--home DIR] [--foreground]\n\n"
            << "The coop " << name << " worker. `coop up` starts it under the supervisor;\n"
            << "run it by hand only to debug.\n\n"
            << "Options:\n"
            << "  --home DIR      shard directory (default $COOP_HOME, else ./coop-data)\n"
            << "  --foreground    log to stderr instead of log/" << name << ".log\n"
            << "  --version       print the version\n"
            << "  -h, --help      print this help\n";
}

}  // namespace

int run_worker_main(int argc, char** argv, const std::string& name,
                    const std::function<std::shared_ptr<void>(WorkerRuntime&)>& setup, unsigned threads) {
  RuntimeOptions options;
  options.name = name;
  options.threads = threads;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      print_worker_help(name);
      return 0;
    } else if (arg == "--version") {
      std::cout << "coop-" << name << " " << kVersion << "\n";
      return 0;
    } else if (arg == "--foreground") {
      options.foreground = true;
    } else if (arg == "--home" && i + 1 < argc) {
      options.home = argv[++i];
    } else if (arg.rfind("--home=", 0) == 0) {
      options.home = arg.substr(7);
    } else {
      std::cerr << "coop-" << name << ": unknown argument '" << arg << "' (see --help)\n";
      return 2;
    }
  }
  try {
    WorkerRuntime runtime(options);
    int code = 0;
    {
      auto worker = setup(runtime);
      code = runtime.run();
    }
    return code;
  } catch (const std::exception& e) {
    std::cerr << "coop-" << name << ": " << e.what() << "\n";
    // For the supervisor, which tells `coop up` why this worker did not start.
    try {
      const auto home = Home::resolve(options.home);
      std::ofstream(home.start_error_file(name), std::ios::trunc) << e.what() << "\n";
    } catch (...) {
    }
    return 1;
  }
}

}  // namespace coop
