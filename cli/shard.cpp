// coop init, up, down, status, logs: the shard's lifecycle.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <deque>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/cli.h"
#include "cli/output.h"
#include "common/client_settings.h"
#include "common/config.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/paths.h"
#include "common/text.h"
#include "common/tls_cert.h"

namespace coop::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

}  // namespace

void require_shard(const Home& home) {
  // Most often a --home or COOP_HOME that names the wrong directory: `coop init` there would
  // make a second, empty shard, so that is not what this suggests.
  if (!fs::exists(home.config_file()))
    throw Error(errc::kNotAShard,
                "no shard in " + home.root().string() + " (no coop.toml): give --home DIR or set COOP_HOME to the shard's directory",
                404);
}

nlohmann::json supervisor_status(const Home& home) {
  require_shard(home);
  try {
    control::Client client(home.socket("supervisor"));
    auto response = client.request("GET", "/v1/status", {}, milliseconds(5000));
    response.throw_if_error();
    return response.json();
  } catch (const Error& e) {
    if (e.code() == errc::kNotRunning)
      throw Error(errc::kNotRunning, "coop is not running in " + home.root().string(), 503);
    throw;
  }
}

namespace {

constexpr uint16_t kDefaultBasePort = 8400;
// The default listeners span base_port .. base_port + 12.
constexpr int kListenerSpan = 13;

fs::path own_bin_dir() { return fs::read_symlink("/proc/self/exe").parent_path(); }


bool all_healthy(const nlohmann::json& status) {
  for (const auto& w : status.value("workers", nlohmann::json::array()))
    if (w.value("state", "") != "running") return false;
  return true;
}

std::string listener_text(const nlohmann::json& worker) {
  std::string text;
  for (const auto& l : worker.value("listeners", nlohmann::json::array())) {
    if (!text.empty()) text += ' ';
    text += l.value("url", "");
  }
  return text.empty() ? "-" : text;
}

void print_status_table(const nlohmann::json& status) {
  std::cout << "coop " << status.value("version", "") << " · " << status.value("domain", "") << " · "
            << status.value("home", "") << " · supervisor pid " << status.value("pid", 0) << ", up "
            << format_duration(status.value("uptime_s", 0.0)) << "\n\n";
  Table table({"WORKER", "STATE", "PID", "UPTIME", "RESTARTS", "LISTENERS"});
  for (const auto& w : status.value("workers", nlohmann::json::array())) {
    const std::string state = w.value("state", "");
    const bool has_pid = w.contains("pid") && w["pid"].is_number();
    table.add_row({w.value("name", ""), state, has_pid ? std::to_string(w["pid"].get<long>()) : "-",
                   has_pid ? format_duration(w.value("uptime_s", 0.0)) : "-", std::to_string(w.value("restarts", 0)),
                   listener_text(w)},
                  {Colour::none, state_colour(state)});
  }
  table.print();
  if (status.value("workers", nlohmann::json::array()).empty())
    std::cout << "(no worker binaries found beside coop-supervisor)\n";
  // Why a worker that keeps failing failed last (until it is healthy again).
  for (const auto& w : status.value("workers", nlohmann::json::array()))
    if (w.contains("last_error")) std::cout << "\n" << w.value("name", "") << ": " << w.value("last_error", "") << "\n";
  if (status.contains("acme")) std::cout << "\nCertificate by ACME " << acme_summary(status["acme"]) << "\n";
}

// Last n lines of a file, for telling why something failed to start.
std::vector<std::string> tail_lines(const fs::path& file, std::size_t n) {
  std::ifstream in(file);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > n) lines.pop_front();
  }
  return {lines.begin(), lines.end()};
}

// ---- coop init ---------------------------------------------------------------------------

struct InitOptions {
  std::string domain;
  std::string public_host;
  int base_port = kDefaultBasePort;
  bool json = false;
  bool demo = false;
};

// Runs this coop binary with args and returns its standard output; coop::Error with its
// standard error when it fails.
std::string run_coop(const std::vector<std::string>& args) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw Error(errc::kSpawnFailed, "pipe failed", 500);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(errc::kSpawnFailed, "fork failed", 500);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    std::vector<std::string> all = {"/proc/self/exe"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  std::string stdout_text, stderr_text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) stdout_text.append(buffer, static_cast<std::size_t>(n));
  for (ssize_t n; (n = ::read(err[0], buffer, sizeof buffer)) > 0;) stderr_text.append(buffer, static_cast<std::size_t>(n));
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string command = "coop";
    for (const auto& a : args) command += " " + a;
    throw Error(errc::kStartFailed, command + " failed: " + stderr_text, 500);
  }
  return stdout_text;
}

// The demo extract `make run` imports: beside the source tree's binaries, or installed.
fs::path demo_extract() {
  for (const auto& candidate : {own_bin_dir() / ".." / ".." / "contrib" / "demo" / "monaco.osm.pbf",
                                own_bin_dir() / ".." / "share" / "coop" / "demo" / "monaco.osm.pbf"})
    if (fs::exists(candidate)) return fs::canonical(candidate);
  return {};
}

// coop init --demo: the new shard started once to host mail for its domain, add a demo
// member with a generated password (printed, and kept in COOP_HOME/demo-password, 0600) and
// import the shipped map; then stopped again.
void populate_demo(const Home& home, const std::string& domain) {
  const std::string h = home.root().string();
  run_coop({"--home", h, "up", "--json"});
  try {
    run_coop({"--home", h, "mail", "domain", "add", domain});
    const auto added = nlohmann::json::parse(run_coop({"--home", h, "member", "add", "demo", "--name", "Demo Member",
                                                       "--email", "demo@" + domain, "--generate-password", "--json"}));
    const std::string password = added.value("password", "");
    write_file_durably(home.root() / "demo-password", password + "\n", 0600);
    if (const auto extract = demo_extract(); !extract.empty())
      run_coop({"--home", h, "tiles", "import", extract.string(), "--name", "monaco", "--quiet"});
    else
      std::cerr << "coop: the demo map (contrib/demo/monaco.osm.pbf) was not found; no map imported\n";
  } catch (...) {
    try {
      run_coop({"--home", h, "down"});
    } catch (const Error&) {
    }
    throw;
  }
  run_coop({"--home", h, "down"});
}

void run_init(const Globals& globals, InitOptions options) {
  const Home home = globals.resolve_home();
  options.domain = ascii_lower(options.domain);
  if (!is_valid_domain(options.domain))
    throw Error(errc::kUsage, "'" + options.domain + "' is not a valid domain name", 400);
  if (options.base_port < 1024 || options.base_port + kListenerSpan - 1 > 65535)
    throw Error(errc::kUsage, "--base-port must leave room for " + std::to_string(kListenerSpan) +
                             " ports between 1024 and 65535", 400);
  if (fs::exists(home.config_file()))
    throw Error(errc::kShardExists, home.root().string() + " is already a coop shard; refusing to touch it", 409);

  std::error_code ec;
  fs::create_directories(home.root(), ec);
  if (ec) throw Error(errc::kIoError, "cannot create " + home.root().string() + ": " + ec.message(), 500);
  ::chmod(home.root().c_str(), 0750);
  home.ensure_dirs();
  // Without coop.toml this is not a shard yet: keys from an interrupted init are replaced.
  fs::remove(home.tls_key(), ec);
  fs::remove(home.tls_cert(), ec);
  generate_self_signed_cert(options.domain, home.tls_key(), home.tls_cert());
  options.public_host = ascii_lower(options.public_host);
  if (!options.public_host.empty() && !is_valid_domain(options.public_host))
    throw Error(errc::kUsage, "--public: '" + options.public_host + "' is not a host name", 400);
  const std::string text =
      render_initial_config(options.domain, static_cast<uint16_t>(options.base_port), options.public_host);
  Config::parse(text, "coop.toml");  // what init writes must load
  // coop.toml comes last: its presence is what makes the directory a shard.
  create_file_durably(home.config_file(), text, 0640);

  if (options.demo) populate_demo(home, options.domain);

  if (options.json) {
    nlohmann::json out = {{"home", home.root().string()},
                          {"domain", options.domain},
                          {"config", home.config_file().string()},
                          {"tls_cert", home.tls_cert().string()},
                          {"base_port", options.base_port}};
    if (options.demo) out["demo_member"] = "demo";
    print_json(out);
    return;
  }
  std::cout << "Initialised shard " << options.domain << " in " << home.root().string() << "\n"
            << "  config  " << home.config_file().string() << "\n"
            << "  TLS     " << home.tls_cert().string() << " (self-signed)\n";
  if (options.demo)
    std::cout << "  demo    member demo (demo@" << options.domain << "), password in "
              << (home.root() / "demo-password").string() << "; the Monaco map\n";
  std::cout << "Start it with: coop --home " << home.root().string() << " up\n";
}

// ---- coop up -----------------------------------------------------------------------------

struct UpOptions {
  bool foreground = false;
  bool json = false;
  int timeout_s = 0;  // 0: supervisor.start_timeout_ms plus a margin
};

volatile sig_atomic_t g_supervisor_pid = 0;

void forward_signal(int signal) {
  if (g_supervisor_pid > 0) ::kill(g_supervisor_pid, signal);
}

// Workers that died before `coop up` saw them healthy, each as "coop-NAME did not start: why".
std::vector<std::string> failed_starts(const nlohmann::json& status) {
  std::vector<std::string> out;
  for (const auto& w : status.value("workers", nlohmann::json::array())) {
    if (w.value("healthy", false) || w.value("restarts", 0) == 0) continue;
    const std::string name = w.value("name", "");
    const std::string why = w.value("last_error", "");
    out.push_back("coop-" + name + " did not start: " +
                  (why.empty() ? w.value("last_exit", std::string("it exited")) + "; see `coop logs " + name + "`" : why));
  }
  return out;
}

// SIGTERM to the supervisor `coop up` just started, which stops its workers; then waits for
// it, and kills it if it outlives its own stop timeout.
void stop_started_supervisor(pid_t pid, const Config& config) {
  ::kill(pid, SIGTERM);
  const auto deadline =
      Clock::now() + config.get_millis("supervisor.stop_timeout_ms", milliseconds(10000)) + milliseconds(5000);
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wait_status, 0);
      return;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

pid_t spawn_supervisor(const Home& home, bool foreground) {
  const auto binary = own_bin_dir() / "coop-supervisor";
  if (::access(binary.c_str(), X_OK) != 0)
    throw Error(errc::kNotInstalled, binary.string() + " not found: coop's binaries must sit side by side", 500);
  const std::string home_arg = home.root().string();
  const std::string log = home.log_file("supervisor").string();
  std::vector<std::string> args = {binary.string(), "--home", home_arg};
  if (foreground) args.push_back("--foreground");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw Error(errc::kSpawnFailed, std::string("cannot fork: ") + std::strerror(errno), 500);
  if (pid > 0) return pid;
  if (!foreground) {
    // A daemon: its own session, no terminal, output into its log.
    ::setsid();
    const int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0640);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
  }
  ::execv(argv[0], argv.data());
  std::perror("coop: exec coop-supervisor");
  ::_exit(127);
}

// Where to go next, once every worker is up: the pages to open and how to add a member.
void print_welcome(const Home& home, const Config& config) {
  std::vector<std::pair<std::string, std::string>> pages;
  if (const auto site = public_base_url(config, "site", "http"); !site.empty()) pages.push_back({"Front page", site + "/"});
  if (const auto portal = public_base_url(config, "member", "portal"); !portal.empty())
    pages.push_back({"Portal", portal + "/portal/"});
  if (const auto tiles = public_base_url(config, "tiles", "http"); !tiles.empty()) {
    for (const auto& m : tile_archive_names(home.root())) pages.push_back({"Map", tiles + "/tiles/" + m + "/map"});
  }
  if (const auto docs = public_base_url(config, "docs", "http"); !docs.empty()) pages.push_back({"Documents", docs + "/docs/"});
  if (const auto room = public_base_url(config, "room", "client"); !room.empty())
    pages.push_back({"Matrix", room + " (the homeserver for Element and other clients)"});
  if (!pages.empty()) std::cout << "\nOpen:\n";
  for (const auto& [what, url] : pages) std::cout << "  " << what << std::string(12 - std::min<std::size_t>(what.size(), 11), ' ') << url << "\n";
  std::ifstream demo(home.root() / "demo-password");
  std::string password;
  if (demo && std::getline(demo, password) && !password.empty())
    std::cout << "\nDemo member: demo (demo@" << config.domain() << "), password " << password << "\n";
  std::cout << "\nAdd a member: coop --home " << home.root().string() << " member add NAME --email NAME@"
            << config.domain() << " --password-stdin\n";
}

void run_up(Globals& globals, const UpOptions& options) {
  const Home home = globals.resolve_home();
  const Config config = Config::load(home.config_file());
  try {
    auto status = supervisor_status(home);
    if (options.json) {
      print_json(status);
    } else {
      std::cout << "coop is already running in " << home.root().string() << "\n";
      print_status_table(status);
    }
    return;
  } catch (const Error& e) {
    if (e.code() != errc::kNotRunning) throw;
  }
  home.ensure_dirs();

  const pid_t pid = spawn_supervisor(home, options.foreground);
  g_supervisor_pid = pid;
  if (options.foreground) {
    // Ctrl-C reaches the supervisor from the terminal; other signals are passed on.
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGQUIT, SIG_IGN);
    std::signal(SIGTERM, forward_signal);
    std::signal(SIGHUP, forward_signal);
  }

  const auto timeout = options.timeout_s > 0
                           ? milliseconds(options.timeout_s * 1000)
                           : config.get_millis("supervisor.start_timeout_ms", milliseconds(15000)) + milliseconds(5000);
  const auto deadline = Clock::now() + timeout;
  nlohmann::json status;
  bool exited = false;
  int wait_status = 0;
  while (true) {
    if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    try {
      status = supervisor_status(home);
      if (all_healthy(status) || !failed_starts(status).empty()) break;
    } catch (const Error& e) {
      if (e.code() != errc::kNotRunning) throw;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(50));
  }

  // A worker that exited before it was ever healthy (a port in use, a bad key file) will not
  // do better on its own: say which and why, and take the whole shard down again.
  if (!exited && !status.is_null()) {
    if (const auto failed = failed_starts(status); !failed.empty()) {
      for (const auto& line : failed) std::cerr << "coop: " << line << "\n";
      stop_started_supervisor(pid, config);
      g_supervisor_pid = 0;
      if (options.json) print_json(status);
      globals.exit_code = kExitFailed;
      return;
    }
  }

  if (exited) {
    std::string why = "coop-supervisor exited before it was up";
    if (!options.foreground) {
      for (const auto& line : tail_lines(home.log_file("supervisor"), 5)) why += "\n  " + line;
    }
    throw Error(errc::kStartFailed, why, 500);
  }
  const bool healthy = !status.is_null() && all_healthy(status);
  if (options.json) {
    print_json(status);
  } else if (!status.is_null()) {
    print_status_table(status);
    if (healthy) {
      print_welcome(home, config);
      std::cout << "\nControl API: curl --unix-socket " << home.socket("supervisor").string()
                << " http://coop/v1/status\n"
                << "coop is up." << (options.foreground ? " Ctrl-C stops it." : "") << "\n";
    }
  }
  std::cout.flush();
  if (!healthy) {
    std::cerr << "coop: not every worker became healthy in " << timeout.count() / 1000
              << " s; see `coop logs WORKER`\n";
    globals.exit_code = kExitFailed;
    if (!options.foreground) return;
  }
  if (options.foreground) {
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    g_supervisor_pid = 0;
    const bool clean = WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
    if (!options.json) std::cout << "coop stopped.\n";
    if (!clean) globals.exit_code = kExitFailed;
  }
}

// ---- coop down ---------------------------------------------------------------------------

struct DownOptions {
  bool json = false;
};

// A zombie has finished: only its parent (often init, which may reap late) remains to notice.
bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

void run_down(const Globals& globals, const DownOptions& options) {
  const Home home = globals.resolve_home();
  const Config config = Config::load(home.config_file());
  const auto status = supervisor_status(home);
  const pid_t pid = status.value("pid", 0);
  std::vector<pid_t> worker_pids;
  for (const auto& w : status.value("workers", nlohmann::json::array()))
    if (w.contains("pid") && w["pid"].is_number()) worker_pids.push_back(w["pid"].get<pid_t>());

  control::Client client(home.socket("supervisor"));
  client.request("POST", "/v1/shutdown").throw_if_error();
  // The supervisor SIGKILLs workers after stop_timeout; give it that and a margin.
  const auto deadline = Clock::now() + config.get_millis("supervisor.stop_timeout_ms", milliseconds(10000)) + milliseconds(5000);
  auto anything_alive = [&] {
    if (pid > 0 && process_alive(pid)) return true;
    return std::any_of(worker_pids.begin(), worker_pids.end(), process_alive);
  };
  while (anything_alive() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(50));
  if (anything_alive())
    throw Error(errc::kStopFailed, "coop did not stop in time (supervisor pid " + std::to_string(pid) + ")", 500);
  if (options.json)
    print_json({{"stopped", true}, {"home", home.root().string()}});
  else
    std::cout << "coop stopped.\n";
}

// ---- coop status -------------------------------------------------------------------------

struct StatusOptions {
  bool json = false;
};

void run_status(const Globals& globals, const StatusOptions& options) {
  const Home home = globals.resolve_home();
  nlohmann::json status;
  try {
    status = supervisor_status(home);
  } catch (const Error& e) {
    // A script asking for JSON gets JSON for a stopped shard too (and exit 3 all the same).
    if (!options.json || e.code() != errc::kNotRunning) throw;
    print_json({{"state", "stopped"}, {"home", home.root().string()}, {"workers", nlohmann::json::array()}});
    throw;
  }
  if (options.json)
    print_json(status);
  else
    print_status_table(status);
}

// ---- coop restart ------------------------------------------------------------------------

struct RestartOptions {
  std::string worker;
  bool json = false;
};

// Stops one worker and waits until it is healthy again (a restart asked for is not a crash:
// the supervisor neither counts it nor backs off).
void run_restart(const Globals& globals, const RestartOptions& options) {
  const Home home = globals.resolve_home();
  const auto before = supervisor_status(home);
  long old_pid = 0;
  for (const auto& w : before.value("workers", nlohmann::json::array()))
    if (w.value("name", "") == options.worker && w["pid"].is_number()) old_pid = w["pid"].get<long>();
  control::Client client(home.socket("supervisor"));
  client.request("POST", "/v1/workers/" + options.worker + "/restart", {}, milliseconds(5000)).throw_if_error();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    const auto status = supervisor_status(home);
    for (const auto& w : status.value("workers", nlohmann::json::array())) {
      if (w.value("name", "") != options.worker || !w.value("healthy", false) || !w["pid"].is_number() ||
          w["pid"].get<long>() == old_pid)
        continue;
      if (options.json)
        print_json(w);
      else
        std::cout << "Restarted " << options.worker << " (pid " << w["pid"].get<long>() << ")\n";
      return;
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw Error(errc::kStartFailed, options.worker + " did not come back within 60 s: see coop logs " + options.worker, 500);
    std::this_thread::sleep_for(milliseconds(100));
  }
}

// ---- coop logs ---------------------------------------------------------------------------

struct LogsOptions {
  std::string process;
  int lines = 50;
  bool follow = false;
};

void run_logs(const Globals& globals, const LogsOptions& options) {
  const Home home = globals.resolve_home();
  if (options.process != "supervisor" && !is_worker_name(options.process))
    throw Error(errc::kUsage, "unknown worker '" + options.process + "' (supervisor, member, room, federate, mail, dav, tiles, docs, site)", 400);
  const auto file = home.log_file(options.process);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(errc::kNoLog, "no log yet: " + file.string(), 404);
  struct stat opened {};
  ::stat(file.c_str(), &opened);
  // One stream for the tail and the follow, so no line written in between is lost.
  const auto keep = static_cast<std::size_t>(std::max(options.lines, 0));
  std::deque<std::string> last;
  for (std::string line; std::getline(in, line);) {
    last.push_back(std::move(line));
    if (last.size() > keep) last.pop_front();
  }
  for (const auto& line : last) std::cout << line << '\n';
  std::cout.flush();
  if (!options.follow) return;
  in.clear();

  // Follow like tail -F: print what is appended; start over when the file is rotated.
  std::string chunk(65536, '\0');
  while (true) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = in.gcount();
    if (got > 0) {
      std::cout.write(chunk.data(), got);
      std::cout.flush();
      continue;
    }
    in.clear();
    struct stat now {};
    if (::stat(file.c_str(), &now) == 0 &&
        (now.st_ino != opened.st_ino || now.st_size < static_cast<off_t>(in.tellg()))) {
      in.close();
      in.open(file, std::ios::binary);
      opened = now;
      continue;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
}

}  // namespace

void add_shard_commands(CLI::App& app, Globals& globals) {
  {
    auto options = std::make_shared<InitOptions>();
    auto* cmd = app.add_subcommand("init", "Create a new shard: coop.toml, keys/ with a self-signed TLS certificate");
    cmd->add_option("--domain", options->domain, "The shard's domain (Matrix server name, mail domain)")
        ->required()->type_name("DOMAIN");
    cmd->add_option("--base-port", options->base_port, "First of the 13 consecutive listener ports")
        ->capture_default_str()->type_name("PORT");
    cmd->add_option("--public", options->public_host,
                    "Production profile for this public host name: mail on ports 25, 587, 465, 143 and 993 of every "
                    "address, federation on 8448, HTTP on loopback behind a trusted reverse proxy, public_urls "
                    "under the domain")
        ->type_name("HOST");
    cmd->add_flag("--demo", options->demo,
                  "Also host mail for the domain, add a member 'demo' with a generated password (kept in "
                  "COOP_HOME/demo-password) and import the shipped map of Monaco (what make run does)");
    cmd->add_flag("--json", options->json, "Print the result as JSON");
    cmd->callback([&globals, options] { run_init(globals, *options); });
  }
  {
    auto options = std::make_shared<UpOptions>();
    auto* cmd = app.add_subcommand("up", "Start the supervisor and every worker; wait until all are healthy (a worker that fails to start stops them all, with its error)");
    cmd->add_flag("--foreground", options->foreground, "Stay in the foreground, logging to stderr, until Ctrl-C");
    cmd->add_option("--timeout", options->timeout_s, "Seconds to wait for health (default: start timeout + 5)")
        ->type_name("SECONDS");
    cmd->add_flag("--json", options->json, "Print the final status as JSON");
    cmd->callback([&globals, options] { run_up(globals, *options); });
  }
  {
    auto options = std::make_shared<DownOptions>();
    auto* cmd = app.add_subcommand("down", "Stop every worker (SIGTERM, drain, then SIGKILL) and the supervisor");
    cmd->add_flag("--json", options->json, "Print the result as JSON");
    cmd->callback([&globals, options] { run_down(globals, *options); });
  }
  {
    auto options = std::make_shared<StatusOptions>();
    auto* cmd = app.add_subcommand("status", "Show each worker's state, pid, uptime, restarts and listeners");
    cmd->add_flag("--json", options->json, "Print the supervisor's status as JSON");
    cmd->callback([&globals, options] { run_status(globals, *options); });
  }
  {
    auto options = std::make_shared<RestartOptions>();
    auto* cmd = app.add_subcommand("restart", "Restart one worker and wait until it is healthy (not counted as a crash)");
    cmd->add_option("worker", options->worker, "member, room, federate, mail, dav, tiles, docs or site")
        ->required()->type_name("WORKER");
    cmd->add_flag("--json", options->json, "Print the worker's status as JSON");
    cmd->callback([&globals, options] { run_restart(globals, *options); });
  }
  {
    auto options = std::make_shared<LogsOptions>();
    auto* cmd = app.add_subcommand("logs", "Print a worker's log (log/WORKER.log)");
    cmd->add_option("worker", options->process, "supervisor, member, room, federate, mail, dav, tiles, docs or site")
        ->required()->type_name("WORKER");
    cmd->add_option("-n,--lines", options->lines, "How many lines from the end")->capture_default_str();
    cmd->add_flag("-f,--follow", options->follow, "Keep printing what is appended");
    cmd->callback([&globals, options] { run_logs(globals, *options); });
  }
}

}  // namespace coop::cli
