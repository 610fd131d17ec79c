// Worker processes: spawn, health probes, crash restarts with backoff, ordered shutdown.
#include "workers/supervisor/supervisor.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <utility>
#include <mutex>
#include <thread>
#include <vector>

#include "common/control/client.h"
#include "common/error.h"
#include "common/worker_runtime.h"
#include "workers/supervisor/certificate_renewer.h"

namespace coop {

namespace net = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

enum class State { starting, running, backoff, stopping, stopped };

const char* state_name(State s) {
  switch (s) {
    case State::starting: return "starting";
    case State::running: return "running";
    case State::backoff: return "backoff";
    case State::stopping: return "stopping";
    case State::stopped: return "stopped";
  }
  return "unknown";
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

struct Child {
  std::string name;
  fs::path binary;
  fs::path socket;
  pid_t pid = 0;
  State state = State::stopped;
  Clock::time_point started{};
  Clock::time_point last_healthy{};
  int restarts = 0;
  std::string last_exit;
  std::string last_error;  // what the worker said as it failed, until it is healthy again
  nlohmann::json listeners = nlohmann::json::array();
  milliseconds backoff{0};
  bool restart_asked = false;  // POST /v1/workers/NAME/restart: its exit is not a crash
  std::unique_ptr<net::steady_timer> restart_timer;
};

// What the prober learned about one child, applied on the io thread.
struct Probe {
  std::string name;
  pid_t pid;
  bool healthy;
  nlohmann::json listeners;
};

}  // namespace

struct Supervisor::Impl : std::enable_shared_from_this<Supervisor::Impl> {
  Impl(WorkerRuntime& runtime, fs::path bin_dir, bool foreground)
      : runtime(runtime), io(runtime.io()), bin_dir(std::move(bin_dir)), foreground(foreground),
        sigchld(io, SIGCHLD), tick_timer(io), kill_timer(io) {
    const auto& config = runtime.config();
    start_timeout = config.get_millis("supervisor.start_timeout_ms", std::chrono::milliseconds(15000));
    stop_timeout = config.get_millis("supervisor.stop_timeout_ms", std::chrono::milliseconds(10000));
    backoff_initial = config.get_millis("supervisor.backoff_initial_ms", std::chrono::milliseconds(500));
    backoff_max = config.get_millis("supervisor.backoff_max_ms", std::chrono::milliseconds(30000));
    stable_after = config.get_millis("supervisor.stable_after_ms", std::chrono::milliseconds(10000));
  }

  void start();
  void spawn(Child& child);
  void wait_sigchld();
  void reap();
  void read_start_error(Child& child);
  void tick();
  void apply(const std::vector<Probe>& probes);
  void begin_stop();
  bool all_stopped() const;
  void kill_all(int signal);
  void probe_loop();
  void fill_status(nlohmann::json& status);
  void stop_prober();

  WorkerRuntime& runtime;
  net::io_context& io;
  fs::path bin_dir;
  bool foreground;
  net::signal_set sigchld;
  net::steady_timer tick_timer;
  net::steady_timer kill_timer;
  milliseconds start_timeout, stop_timeout, backoff_initial, backoff_max, stable_after;

  mutable std::mutex mutex;  // guards children and stopping; the prober reads them
  std::vector<Child> children;
  bool stopping = false;

  std::thread prober;
  std::condition_variable prober_wake;
  bool prober_quit = false;

  std::unique_ptr<CertificateRenewer> renewer;  // its thread orders once the workers are up
};

void Supervisor::Impl::start() {
  const auto& config = runtime.config();
  std::unique_lock lock(mutex);
  for (auto name : kWorkerNames) {
    const std::string worker(name);
    const auto binary = bin_dir / ("coop-" + worker);
    // Nothing is faked: a worker whose binary does not exist is not listed at all.
    if (::access(binary.c_str(), X_OK) != 0) continue;
    if (!config.worker_enabled(worker)) {
      spdlog::info("{} is disabled in coop.toml", worker);
      continue;
    }
    Child child;
    child.name = worker;
    child.binary = binary;
    child.socket = runtime.home().socket(worker);
    child.backoff = backoff_initial;
    child.restart_timer = std::make_unique<net::steady_timer>(io);
    children.push_back(std::move(child));
  }
  wait_sigchld();
  for (auto& child : children) spawn(child);
  lock.unlock();
  tick();
  prober = std::thread([this] { probe_loop(); });
}

void Supervisor::Impl::spawn(Child& child) {
  const std::string home = runtime.home().root().string();
  const std::string log = runtime.home().log_file(child.name).string();
  std::vector<std::string> args = {child.binary.string(), "--home", home};
  if (foreground) args.push_back("--foreground");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  std::error_code ignored;
  fs::remove(runtime.home().start_error_file(child.name), ignored);  // only this run's counts

  const pid_t pid = ::fork();
  if (pid < 0) {
    spdlog::error("cannot fork for {}: {}", child.name, std::strerror(errno));
    child.state = State::backoff;
    return;
  }
  if (pid == 0) {
    // In the child only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a SIGKILLed supervisor takes its workers along
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);  // Ctrl-C reaches the supervisor, which stops workers in order
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (!foreground) {
      const int log_fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0640);
      if (log_fd >= 0) {
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
      }
    }
    // Control sockets and pipes of the supervisor are not the worker's business.
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  child.pid = pid;
  child.state = State::starting;
  child.started = Clock::now();
  child.listeners = nlohmann::json::array();
  spdlog::info("started {} (pid {})", child.name, pid);
  prober_wake.notify_all();
}

void Supervisor::Impl::wait_sigchld() {
  sigchld.async_wait([self = shared_from_this()](const boost::system::error_code& ec, int) {
    if (ec) return;
    self->reap();
    self->wait_sigchld();
  });
}

// The line a worker leaves in run/<name>.failed as it exits on an error (its first line,
// at most 500 bytes), taken once.
void Supervisor::Impl::read_start_error(Child& child) {
  const auto file = runtime.home().start_error_file(child.name);
  std::ifstream in(file);
  std::string line;
  if (in && std::getline(in, line) && !line.empty()) child.last_error = line.substr(0, 500);
  std::error_code ec;
  fs::remove(file, ec);
}

void Supervisor::Impl::reap() {
  std::lock_guard lock(mutex);
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    for (auto& child : children) {
      if (child.pid != pid) continue;
      child.pid = 0;
      child.last_exit = describe_exit(status);
      read_start_error(child);
      child.listeners = nlohmann::json::array();
      if (stopping) {
        child.state = State::stopped;
        spdlog::info("{} stopped ({})", child.name, child.last_exit);
        break;
      }
      if (std::exchange(child.restart_asked, false)) {
        child.last_exit.clear();
        child.last_error.clear();
        spdlog::info("{} stopped for the restart asked for; starting it again", child.name);
        spawn(child);
        break;
      }
      // Exponential backoff, reset once a run lasted stable_after (see tick()).
      ++child.restarts;
      child.state = State::backoff;
      spdlog::warn("{} died ({}); restart {} in {} ms", child.name, child.last_exit, child.restarts,
                   child.backoff.count());
      child.restart_timer->expires_after(child.backoff);
      child.backoff = std::min(child.backoff * 2, backoff_max);
      child.restart_timer->async_wait([self = shared_from_this(), name = child.name](const boost::system::error_code& ec) {
        if (ec) return;
        std::lock_guard lock(self->mutex);
        if (self->stopping) return;
        for (auto& c : self->children)
          if (c.name == name && c.state == State::backoff) self->spawn(c);
      });
      break;
    }
  }
}

void Supervisor::Impl::tick() {
  {
    std::lock_guard lock(mutex);
    if (stopping) return;
    const auto now = Clock::now();
    for (auto& child : children) {
      if (child.pid == 0) continue;
      // A worker that never became healthy, or stopped answering, is killed and restarted.
      const bool start_expired = child.state == State::starting && now - child.started > start_timeout;
      const bool hung = child.state == State::running && now - child.last_healthy > start_timeout;
      if (start_expired || hung) {
        spdlog::error("{} (pid {}) {}; killing it", child.name, child.pid,
                      start_expired ? "did not become healthy in time" : "stopped answering health checks");
        ::kill(child.pid, SIGKILL);
      }
      if (child.state == State::running && now - child.started > stable_after) child.backoff = backoff_initial;
    }
  }
  tick_timer.expires_after(milliseconds(250));
  tick_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->tick();
  });
}

void Supervisor::Impl::apply(const std::vector<Probe>& probes) {
  std::lock_guard lock(mutex);
  for (const auto& probe : probes) {
    for (auto& child : children) {
      if (child.name != probe.name || child.pid != probe.pid || child.pid == 0) continue;
      if (!probe.healthy) continue;
      child.last_healthy = Clock::now();
      if (!probe.listeners.is_null()) child.listeners = probe.listeners;
      if (child.state == State::starting) {
        child.last_error.clear();
        child.state = State::running;
        spdlog::info("{} is healthy", child.name);
      }
    }
  }
}

void Supervisor::Impl::probe_loop() {
  std::map<std::string, std::pair<pid_t, std::unique_ptr<control::Client>>> clients;
  std::unique_lock lock(mutex);
  while (!prober_quit) {
    struct Target {
      std::string name;
      pid_t pid;
      fs::path socket;
      bool starting;
    };
    std::vector<Target> targets;
    bool any_starting = false;
    for (const auto& child : children) {
      if (child.pid == 0 || child.state == State::stopping) continue;
      targets.push_back({child.name, child.pid, child.socket, child.state == State::starting});
      any_starting = any_starting || child.state == State::starting;
    }
    lock.unlock();

    std::vector<Probe> probes;
    for (const auto& target : targets) {
      auto& slot = clients[target.name];
      if (!slot.second || slot.first != target.pid) slot = {target.pid, std::make_unique<control::Client>(target.socket)};
      Probe probe{target.name, target.pid, false, nullptr};
      try {
        probe.healthy = slot.second->request("GET", "/v1/health", {}, milliseconds(2000)).ok();
        if (probe.healthy && target.starting) {
          auto status = slot.second->request("GET", "/v1/status", {}, milliseconds(2000));
          if (status.ok()) probe.listeners = status.json().value("listeners", nlohmann::json::array());
        }
      } catch (const std::exception&) {
        slot.second.reset();  // a fresh connection next time
      }
      probes.push_back(std::move(probe));
    }
    net::post(io, [self = shared_from_this(), probes = std::move(probes)] { self->apply(probes); });

    lock.lock();
    prober_wake.wait_for(lock, any_starting ? milliseconds(20) : milliseconds(1000));
  }
}

void Supervisor::Impl::kill_all(int signal) {
  for (auto& child : children)
    if (child.pid > 0) ::kill(child.pid, signal);
}

void Supervisor::Impl::begin_stop() {
  std::lock_guard lock(mutex);
  if (stopping) return;
  stopping = true;
  tick_timer.cancel();
  for (auto& child : children) {
    child.restart_timer->cancel();
    if (child.pid > 0) {
      child.state = State::stopping;
      ::kill(child.pid, SIGTERM);
    } else {
      child.state = State::stopped;
    }
  }
  // SIGTERM, drain, a deadline, then SIGKILL.
  kill_timer.expires_after(stop_timeout);
  kill_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    std::lock_guard lock(self->mutex);
    for (auto& child : self->children)
      if (child.pid > 0) spdlog::warn("{} (pid {}) did not stop in time; SIGKILL", child.name, child.pid);
    self->kill_all(SIGKILL);
  });
}

bool Supervisor::Impl::all_stopped() const {
  std::lock_guard lock(mutex);
  for (const auto& child : children)
    if (child.pid > 0) return false;
  return true;
}

void Supervisor::Impl::fill_status(nlohmann::json& status) {
  std::lock_guard lock(mutex);
  const auto now = Clock::now();
  auto workers = nlohmann::json::array();
  for (const auto& child : children) {
    nlohmann::json w = {
        {"name", child.name},
        {"state", state_name(child.state)},
        {"healthy", child.state == State::running},
        {"pid", child.pid > 0 ? nlohmann::json(child.pid) : nlohmann::json(nullptr)},
        {"uptime_s", child.pid > 0 ? std::chrono::duration<double>(now - child.started).count() : 0.0},
        {"restarts", child.restarts},
        {"socket", child.socket.string()},
        {"listeners", child.listeners},
    };
    if (!child.last_exit.empty()) w["last_exit"] = child.last_exit;
    if (!child.last_error.empty()) w["last_error"] = child.last_error;
    workers.push_back(std::move(w));
  }
  status["workers"] = std::move(workers);
  if (stopping) status["state"] = "stopping";
  if (renewer && renewer->enabled()) status["acme"] = renewer->status();
}

void Supervisor::Impl::stop_prober() {
  {
    std::lock_guard lock(mutex);
    prober_quit = true;
  }
  prober_wake.notify_all();
  if (prober.joinable()) prober.join();
}

Supervisor::Supervisor(WorkerRuntime& runtime, fs::path bin_dir, bool foreground)
    : impl_(std::make_shared<Impl>(runtime, std::move(bin_dir), foreground)) {
  auto impl = impl_;
  runtime.on_status([impl](nlohmann::json& status) { impl->fill_status(status); });
  runtime.on_shutdown([impl] { impl->begin_stop(); });
  runtime.drained_when([impl] { return impl->all_stopped(); });
  // SIGHUP (logrotate, systemctl reload) reaches every worker too.
  runtime.on_reload([impl] {
    std::lock_guard lock(impl->mutex);
    impl->kill_all(SIGHUP);
  });
  runtime.set_drain_timeout(impl_->stop_timeout + milliseconds(2000));
  runtime.router().add("POST", "/v1/workers/{name}/restart", [impl](const control::Request& request) {
    std::lock_guard lock(impl->mutex);
    for (auto& child : impl->children) {
      if (child.name != request.param("name")) continue;
      if (child.pid > 0) {
        child.restart_asked = true;  // reaped and started again at once, not counted as a crash
        ::kill(child.pid, SIGTERM);
      }
      return control::Response::json({{"status", "restarting"}, {"name", child.name}}, 202);
    }
    throw Error(errc::kUnknownWorker, "no worker named '" + request.param("name") + "' runs here", 404);
  }, "restart one worker");
  // Challenges are answered by the workers, so an order waits until none is still starting
  // (one in a crash loop does not hold the certificate back).
  // The renewer goes first in ~Supervisor, so a plain pointer back is safe.
  impl_->renewer = std::make_unique<CertificateRenewer>(
      runtime.config(), runtime.home(),
      [self = impl_.get()] {
        std::lock_guard lock(self->mutex);
        const auto& c = self->children;
        return !self->stopping && !c.empty() &&
               std::none_of(c.begin(), c.end(), [](const Child& child) { return child.state == State::starting; }) &&
               std::any_of(c.begin(), c.end(), [](const Child& child) { return child.state == State::running; });
      },
      [self = impl_.get()] {
        std::lock_guard lock(self->mutex);
        self->kill_all(SIGHUP);
      });
  runtime.router().add("POST", "/v1/tls/renew", [impl](const control::Request& request) {
    if (!impl->renewer || !impl->renewer->enabled())
      throw Error(errc::kNotConfigured, "ACME is off: set [tls] acme (a directory URL) and acme_contact in coop.toml", 409);
    const auto body = request.json();
    impl->renewer->renew_now(body.contains("force") && body["force"] == true);
    return control::Response::json({{"status", "renewing"}, {"acme", impl->renewer->status()}}, 202);
  }, "order a certificate now, {\"force\": true} even when it is not due");
  net::post(runtime.io(), [impl] { impl->start(); });
}

Supervisor::~Supervisor() {
  impl_->renewer.reset();
  impl_->stop_prober();
  // The io_context has stopped: whatever still runs is killed and reaped here, so no
  // worker outlives its supervisor.
  std::lock_guard lock(impl_->mutex);
  for (auto& child : impl_->children) {
    if (child.pid <= 0) continue;
    ::kill(child.pid, SIGKILL);
    int status = 0;
    ::waitpid(child.pid, &status, 0);
    child.pid = 0;
  }
  impl_->sigchld.cancel();
  impl_->tick_timer.cancel();
}

}  // namespace coop
