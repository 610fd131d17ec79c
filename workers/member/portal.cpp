// The portal's routes, sessions and CSRF; the pages themselves are in portal_pages.cpp.
#include "workers/member/portal.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <spawn.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <ctime>
#include <algorithm>
#include <set>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/auth/app_password.h"
#include "common/control/client.h"
#include "common/auth/password.h"
#include "common/client_settings.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/http/listen.h"
#include "common/http/router.h"
#include "common/http/server.h"
#include "common/paths.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/member/auth_service.h"
#include "workers/member/form_data.h"
#include "workers/member/portal_pages.h"
#include "workers/member/store/member_store.h"
#include "workers/site/akash.h"
#include "workers/site/site_paths.h"

namespace coop::member {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr auto kIdle = std::chrono::hours(8);       // a session unused this long ends
constexpr auto kLifetime = std::chrono::hours(72);  // and any session after this
constexpr std::size_t kMaxSessions = 10000;
constexpr int kMaxTakeouts = 2;  // at once: each reads a member's whole mail
const char* kCookie = "coop_portal";

// application/x-www-form-urlencoded (HTML's form submission); nullopt when a field is not
// valid percent-encoding or UTF-8. A repeated field keeps every value.
std::optional<std::multimap<std::string, std::string>> parse_form(std::string_view body) {
  std::multimap<std::string, std::string> out;
  while (!body.empty()) {
    const auto amp = body.find('&');
    const auto pair = body.substr(0, amp);
    const auto eq = pair.find('=');
    std::string name, value;
    if (!percent_decode(pair.substr(0, eq), name, true) ||
        !percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), value, true) ||
        !is_valid_utf8(name) || !is_valid_utf8(value))
      return std::nullopt;
    if (!name.empty()) out.emplace(std::move(name), std::move(value));
    if (amp == std::string_view::npos) break;
    body.remove_prefix(amp + 1);
  }
  return out;
}

std::string field(const std::multimap<std::string, std::string>& form, const std::string& name) {
  const auto it = form.find(name);
  return it == form.end() ? std::string() : it->second;
}

std::string cookie_value(const http::Request& q, std::string_view name) {
  const std::string header = q.header("cookie");
  std::string_view rest(header);
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    auto item = rest.substr(0, semi);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    if (item.size() > name.size() && item.substr(0, name.size()) == name && item[name.size()] == '=')
      return std::string(item.substr(name.size() + 1));
    if (semi == std::string_view::npos) break;
    rest.remove_prefix(semi + 1);
  }
  return {};
}

// Every page of the portal: HTML that loads nothing from anywhere, is not framed and not kept.
http::Response page_response(int status, std::string body) {
  auto r = http::Response::bytes(status, std::move(body), "text/html; charset=utf-8");
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

http::Response redirect(const std::string& to) {
  auto r = http::Response::bytes(303, "", "text/plain; charset=utf-8");
  r.headers.emplace_back("Location", to);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// Runs `coop member takeout` (the CLI beside this binary) into dir; true when it succeeded.
bool run_takeout(const fs::path& coop, const Home& home, const std::string& handle, const fs::path& dir, std::string& why) {
  std::vector<std::string> args = {coop.string(), "--home", home.root().string(), "member", "takeout", handle,
                                   "-o",          dir.string(), "--json"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto log = dir.parent_path() / (dir.filename().string() + ".log");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    why = "cannot start " + coop.string();
    return false;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::ifstream in(log);
  std::getline(in, why);
  std::error_code ec;
  fs::remove(log, ec);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The folder as a gzip'd POSIX tar, every entry under prefix/ (libarchive).
std::string tar_gz(const fs::path& dir, const std::string& prefix) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](struct archive*, void* target, const void* data, size_t size) -> la_ssize_t {
        static_cast<std::string*>(target)->append(static_cast<const char*>(data), size);
        return static_cast<la_ssize_t>(size);
      },
      nullptr);
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) files.push_back(it->path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    struct archive_entry* entry = archive_entry_new();
    const auto rel = prefix + "/" + fs::relative(path, dir).string();
    archive_entry_set_pathname(entry, rel.c_str());
    const bool directory = fs::is_directory(path);
    archive_entry_set_filetype(entry, directory ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(entry, directory ? 0700 : 0600);
    archive_entry_set_mtime(entry, std::time(nullptr), 0);
    std::string content;
    if (!directory) {
      std::ifstream in(path, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      content = text.str();
      archive_entry_set_size(entry, static_cast<la_int64_t>(content.size()));
    }
    archive_write_header(a, entry);
    if (!content.empty()) archive_write_data(a, content.data(), content.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

constexpr std::size_t kMaxZipFiles = 10000;
constexpr uint64_t kMaxZipBytes = 512ull << 20;  // uncompressed: a zip bomb stops here

struct ZipFile {
  std::string path, bytes;
};

// A static export (WebStudio's, or any zip of a site's folder) read with libarchive: regular
// files only, the common top folder (if every file is under one) taken off, every path one
// a site may hold. coop::Error(400) naming what is wrong otherwise.
std::vector<ZipFile> read_site_zip(const std::string& data) {
  struct archive* a = archive_read_new();
  archive_read_support_format_zip(a);
  std::vector<ZipFile> files;
  uint64_t total = 0;
  std::string problem;
  if (archive_read_open_memory(a, data.data(), data.size()) != ARCHIVE_OK) problem = "this is not a zip file";
  struct archive_entry* entry = nullptr;
  while (problem.empty()) {
    const int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      problem = std::string("the zip is damaged: ") + (archive_error_string(a) ? archive_error_string(a) : "unreadable");
      break;
    }
    if (archive_entry_filetype(entry) == AE_IFDIR) continue;
    std::string path = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    if (archive_entry_filetype(entry) != AE_IFREG) {
      problem = "the zip holds " + path + ", which is not a plain file";
      break;
    }
    while (path.rfind("./", 0) == 0) path.erase(0, 2);
    if (files.size() >= kMaxZipFiles) {
      problem = "the zip holds more than " + std::to_string(kMaxZipFiles) + " files";
      break;
    }
    ZipFile f{path, {}};
    char buffer[65536];
    for (la_ssize_t n; (n = archive_read_data(a, buffer, sizeof buffer)) > 0;) {
      total += static_cast<uint64_t>(n);
      if (total > kMaxZipBytes) break;
      f.bytes.append(buffer, static_cast<std::size_t>(n));
    }
    if (total > kMaxZipBytes) {
      problem = "the zip unpacks to more than " + std::to_string(kMaxZipBytes >> 20) + " MiB";
      break;
    }
    files.push_back(std::move(f));
  }
  archive_read_free(a);
  if (!problem.empty()) throw Error(errc::kBadArchive, problem, 400);
  if (files.empty()) throw Error(errc::kBadArchive, "the zip holds no files", 400);
  // An export zipped with its folder: every path starts "site/"; the site is what is inside.
  const auto slash = files.front().path.find('/');
  if (slash != std::string::npos) {
    const auto top = files.front().path.substr(0, slash + 1);
    if (std::all_of(files.begin(), files.end(), [&](const ZipFile& f) { return f.path.rfind(top, 0) == 0; }))
      for (auto& f : files) f.path.erase(0, top.size());
  }
  std::set<std::string> seen;
  for (const auto& f : files) {
    if (!site::valid_file_path(f.path))
      throw Error(errc::kBadPath, "the zip holds '" + f.path + "', which is not a path a site may have", 400);
    if (!seen.insert(f.path).second) throw Error(errc::kBadArchive, "the zip holds '" + f.path + "' twice", 400);
  }
  return files;
}

}  // namespace

struct Portal::Impl {
  struct Session {
    std::string handle, csrf;
    Clock::time_point created, last_seen;
  };

  Impl(WorkerRuntime& runtime, MemberStore& store, AuthService& auth)
      : runtime(runtime), home(runtime.home()), config(runtime.config()), store(store), auth(auth) {}

  WorkerRuntime& runtime;
  const Home& home;
  const Config& config;
  MemberStore& store;
  AuthService& auth;
  bool secure = false;  // the cookie is Secure when members come over https
  http::Router router;
  std::unique_ptr<http::Server> server;
  std::mutex mutex;
  std::map<std::string, Session> sessions;  // by SHA-256 of the token
  std::atomic<int> takeouts{0};
  std::string site_group;  // members of this group (and admins) publish the sites

  bool may_publish(const Member& m) {
    if (m.role == "admin") return true;
    const auto groups = store.effective_groups(m.handle);
    return std::find(groups.begin(), groups.end(), site_group) != groups.end();
  }

  json site_call(const std::string& method, const std::string& path, const std::string& body = {}) {
    control::Client client(home.socket("site"));
    const auto response = client.request(method, path, body, std::chrono::seconds(120));
    response.throw_if_error();
    return response.json();
  }

  void add_site_routes();

  // The signed-in member of this request; the session ends when they are no longer active.
  std::optional<std::pair<Member, Session>> current(const http::Request& q) {
    const auto token = cookie_value(q, kCookie);
    if (token.size() != 64 || !is_lower_hex(token, 64)) return std::nullopt;
    const auto key = sha256_hex(token);
    Session session;
    {
      std::lock_guard lock(mutex);
      auto it = sessions.find(key);
      if (it == sessions.end()) return std::nullopt;
      const auto now = Clock::now();
      if (now - it->second.last_seen > kIdle || now - it->second.created > kLifetime) {
        sessions.erase(it);
        return std::nullopt;
      }
      it->second.last_seen = now;
      session = it->second;
    }
    const auto member = store.find_member(session.handle);
    if (!member || member->status != "active") {
      end_sessions(session.handle);
      return std::nullopt;
    }
    return std::make_pair(*member, session);
  }

  void end_sessions(const std::string& handle, const std::string& except_key = {}) {
    std::lock_guard lock(mutex);
    for (auto it = sessions.begin(); it != sessions.end();)
      it = it->second.handle == handle && it->first != except_key ? sessions.erase(it) : std::next(it);
  }

  std::string cookie(const std::string& token, bool clear = false) const {
    return std::string(kCookie) + "=" + (clear ? "" : token) + "; Path=/portal/; HttpOnly; SameSite=Strict" +
           (secure ? "; Secure" : "") + (clear ? "; Max-Age=0" : "");
  }

  // The form of a POST, its CSRF token checked against the session's (constant time).
  std::multimap<std::string, std::string> checked_form(const http::Request& q, const Session& session) {
    auto form = parse_form(q.body);
    if (!form) throw Error(errc::kBadRequest, "the form is not valid", 400);
    const auto token = field(*form, "csrf");
    if (token.size() != session.csrf.size() || sodium_memcmp(token.data(), session.csrf.data(), token.size()) != 0)
      throw Error(errc::kForbidden, "the form is out of date or came from elsewhere: reload the page and try again", 403);
    return *form;
  }

  PageContext context(const Member& member, const Session& session) {
    return {member.handle, member.display_name, member.role == "admin", session.csrf, may_publish(member)};
  }

  std::vector<std::string> maps() const { return tile_archive_names(home.root()); }

  void add_routes();
};

void Portal::Impl::add_routes() {
  auto run = runtime.blocking_runner();
  const auto html = page_response;
  // A page for the signed-in member, or the sign-in form.
  auto member_page = [this, html](const http::Request& q, const std::function<std::string(const Member&, const Session&)>& render) {
    const auto who = current(q);
    if (!who) return html(200, login_page(""));
    return html(200, render(who->first, who->second));
  };
  // A form post: signed in, CSRF checked; an Error a member should read becomes the page again.
  auto member_post = [this, html](const http::Request& q,
                                  const std::function<http::Response(const Member&, const Session&,
                                                                     const std::multimap<std::string, std::string>&)>& act) {
    const auto who = current(q);
    if (!who) return redirect("/portal/");
    const auto form = checked_form(q, who->second);
    return act(who->first, who->second, form);
  };

  router.add("GET", "/", [](const http::Request&) { return redirect("/portal/"); });

  router.add_blocking("GET", "/portal/", run, [this, member_page](const http::Request& q) {
    // The cookie's path is /portal/: without the slash the browser would not send it.
    if (q.raw_path() == "/portal") return redirect("/portal/");
    return member_page(q, [this](const Member& m, const Session& s) {
      return dashboard_page(context(m, s), m);
    });
  });

  router.add_blocking("POST", "/portal/login", run, [this, html](const http::Request& q) {
    const auto form = parse_form(q.body);
    if (!form) return html(400, login_page("The form was not valid."));
    const auto user = field(*form, "user");
    const auto verdict = auth.verify(user, field(*form, "password"), "portal", q.remote_address);
    if (verdict.status != 200) {
      const auto body = json::parse(verdict.body, nullptr, false);
      std::string message = "Wrong name or password.";
      if (verdict.status == 429 || verdict.status == 403)
        message = body.is_object() ? body["error"].value("message", message) : message;
      if (verdict.status == 403 && body.is_object() && body["error"].value("code", "") == "out_of_scope")
        message = "An app password does not open the portal: sign in with your own password.";
      return html(verdict.status == 429 ? 429 : 401, login_page(message));
    }
    const auto member = json::parse(verdict.body);
    const auto token = random_hex(32);
    {
      std::lock_guard lock(mutex);
      if (sessions.size() >= kMaxSessions) {
        const auto oldest = std::min_element(sessions.begin(), sessions.end(), [](const auto& a, const auto& b) {
          return a.second.last_seen < b.second.last_seen;
        });
        sessions.erase(oldest);
      }
      sessions[sha256_hex(token)] = {member.value("handle", ""), random_hex(32), Clock::now(), Clock::now()};
    }
    auto r = redirect("/portal/");
    r.headers.emplace_back("Set-Cookie", cookie(token));
    return r;
  });

  router.add_blocking("POST", "/portal/logout", run, [this, member_post](const http::Request& q) {
    return member_post(q, [this, &q](const Member&, const Session&, const auto&) {
      {
        std::lock_guard lock(mutex);
        sessions.erase(sha256_hex(cookie_value(q, kCookie)));
      }
      auto r = redirect("/portal/");
      r.headers.emplace_back("Set-Cookie", cookie("", true));
      return r;
    });
  });

  router.add_blocking("GET", "/portal/password", run, [this, member_page](const http::Request& q) {
    return member_page(q, [this](const Member& m, const Session& s) { return password_page(context(m, s), "", ""); });
  });
  router.add_blocking("POST", "/portal/password", run, [this, member_post, html](const http::Request& q) {
    return member_post(q, [&](const Member& m, const Session& s, const auto& form) {
      const auto page = [&](const std::string& error, const std::string& done) {
        return html(error.empty() ? 200 : 400, password_page(context(m, s), error, done));
      };
      const auto now = field(form, "current"), fresh = field(form, "new"), again = field(form, "confirm");
      if (auth.verify(m.handle, now, "portal", q.remote_address).status != 200)
        return page("Your current password is not right.", "");
      if (fresh != again) return page("The two new passwords differ.", "");
      try {
        auth::check_password_strength(fresh);
      } catch (const Error& e) {
        return page(e.what(), "");
      }
      store.set_password(m.handle, auth.hash(fresh));
      auth.remember_scram(m.handle, fresh);
      // Every other session of theirs ends here (the registry's event ends them elsewhere).
      end_sessions(m.handle, sha256_hex(cookie_value(q, kCookie)));
      return page("", "Your password is changed. Devices that used the old one must sign in again.");
    });
  });

  router.add_blocking("GET", "/portal/app-passwords", run, [this, member_page](const http::Request& q) {
    return member_page(q, [this](const Member& m, const Session& s) {
      return app_passwords_page(context(m, s), store.list_app_passwords(m.handle), "", nullptr);
    });
  });
  router.add_blocking("POST", "/portal/app-passwords", run, [this, member_post, html](const http::Request& q) {
    return member_post(q, [&](const Member& m, const Session& s, const auto& form) {
      std::string scopes;
      for (auto [it, end] = form.equal_range("scope"); it != end; ++it) scopes += (scopes.empty() ? "" : ",") + it->second;
      try {
        if (scopes.empty()) throw Error(errc::kBadScope, "Choose what the password opens.", 400);
        const auto parsed = auth::parse_scopes(scopes);
        const auto secret = auth::make_app_password();
        const auto made = store.add_app_password(m.handle, field(form, "label"), secret.digest, parsed);
        const NewSecret shown{made.label, secret.secret};
        return html(201, app_passwords_page(context(m, s), store.list_app_passwords(m.handle), "", &shown));
      } catch (const Error& e) {
        if (e.status() >= 500) throw;
        return html(400, app_passwords_page(context(m, s), store.list_app_passwords(m.handle), e.what(), nullptr));
      }
    });
  });
  router.add_blocking("POST", "/portal/app-passwords/revoke", run, [this, member_post](const http::Request& q) {
    return member_post(q, [&](const Member& m, const Session&, const auto& form) {
      store.revoke_app_password(m.handle, field(form, "label"));
      return redirect("/portal/app-passwords");
    });
  });

  router.add_blocking("GET", "/portal/logins", run, [this, member_page](const http::Request& q) {
    return member_page(q, [this](const Member& m, const Session& s) {
      return logins_page(context(m, s), store.audit(m.handle, 50));
    });
  });

  router.add_blocking("GET", "/portal/settings", run, [this, member_page](const http::Request& q) {
    return member_page(q, [this](const Member& m, const Session& s) {
      return settings_page(context(m, s), client_settings(config, m.handle, m.emails, maps()));
    });
  });

  router.add_blocking("GET", "/portal/takeout", run, [this, member_page](const http::Request& q) {
    return member_page(q, [this](const Member& m, const Session& s) { return takeout_page(context(m, s), ""); });
  });
  // The whole takeout as one .tar.gz, made by the CLI's `coop member takeout` in a private
  // folder under COOP_HOME/tmp and removed after. On a thread of its own: it takes a while.
  const auto own_thread = [](std::function<void()> job) { std::thread(std::move(job)).detach(); };
  router.add_blocking("POST", "/portal/takeout", own_thread, [this, member_post, html](const http::Request& q) {
    return member_post(q, [&](const Member& m, const Session& s, const auto&) {
      if (takeouts.fetch_add(1) >= kMaxTakeouts) {
        takeouts.fetch_sub(1);
        return html(429, takeout_page(context(m, s), "Other takeouts are being made; try again in a minute."));
      }
      struct Release {
        std::atomic<int>& count;
        ~Release() { count.fetch_sub(1); }
      } release{takeouts};
      const auto base = home.root() / "tmp";
      fs::create_directories(base);
      const auto dir = base / ("takeout-" + random_hex(8));
      std::string why;
      const auto coop = fs::read_symlink("/proc/self/exe").parent_path() / "coop";
      const bool made = run_takeout(coop, home, m.handle, dir, why);
      std::string archive;
      if (made) archive = tar_gz(dir, "coop-takeout-" + m.handle);
      std::error_code ec;
      fs::remove_all(dir, ec);
      if (!made) {
        spdlog::error("portal: takeout of {} failed: {}", m.handle, why);
        return html(500, takeout_page(context(m, s), "The takeout could not be made; the admin can see why in the log."));
      }
      auto r = http::Response::bytes(200, std::move(archive), "application/gzip");
      r.headers.emplace_back("Content-Disposition", "attachment; filename=\"coop-takeout-" + m.handle + ".tar.gz\"");
      r.headers.emplace_back("Cache-Control", "no-store");
      return r;
    });
  });

  // Admins: the members, with suspend and reinstate.
  router.add_blocking("GET", "/portal/members", run, [this, html](const http::Request& q) {
    const auto who = current(q);
    if (!who) return html(200, login_page(""));
    if (who->first.role != "admin") return html(403, forbidden_page(context(who->first, who->second)));
    return html(200, members_page(context(who->first, who->second), store.list_members("", ""), ""));
  });
  for (const std::string action : {"suspend", "reinstate"}) {
    router.add_blocking("POST", "/portal/members/" + action, run, [this, member_post, html, action](const http::Request& q) {
      return member_post(q, [&](const Member& m, const Session& s, const auto& form) {
        if (m.role != "admin") return html(403, forbidden_page(context(m, s)));
        const auto handle = field(form, "handle");
        std::string error;
        try {
          if (handle == m.handle) throw Error(errc::kForbidden, "You cannot suspend yourself here.", 400);
          store.set_status(handle, action == "suspend" ? "suspended" : "active",
                           action == "suspend" ? "suspended by " + m.handle + " in the portal" : "");
          if (action == "suspend") end_sessions(handle);
        } catch (const Error& e) {
          if (e.status() >= 500) throw;
          error = e.what();
        }
        if (!error.empty()) return html(400, members_page(context(m, s), store.list_members("", ""), error));
        return redirect("/portal/members");
      });
    });
  }

  add_site_routes();

  // Errors the router makes itself (an unknown page, a method not allowed) as a page too.
  router.set_error_formatter([html](int status, const std::string&, const std::string& message) {
    return html(status, error_page(status, message));
  });
}

// Publishing the cooperative's websites without the CLI, for admins and members of
// site_group: upload a static export as a zip, preview, publish, versions and rollback,
// events, and the Akash deployment file; everything through coop-site's control API.
void Portal::Impl::add_site_routes() {
  auto run = runtime.blocking_runner();
  const auto html = page_response;
  // A route for publishers only: the signed-in member, and a {site} that is a site's name.
  using Handler = std::function<http::Response(const Member&, const Session&, const http::Request&)>;
  const auto publisher_route = [this, run](const std::string& method, const std::string& pattern, Handler handler) {
    router.add_blocking(method, pattern, run, [this, handler = std::move(handler)](const http::Request& q) {
      const auto who = current(q);
      if (!who) return page_response(200, login_page(""));
      if (!may_publish(who->first)) return page_response(403, forbidden_page(context(who->first, who->second)));
      if (!q.param("site").empty() && !site::valid_site_name(q.param("site")))
        throw Error(errc::kNoSite, "no such site", 404);
      return handler(who->first, who->second, q);
    });
  };
  auto sites_view = [this, html](const Member& m, const Session& s, int status, const std::string& error, const std::string& done) {
    return html(status, sites_page(context(m, s), site_call("GET", "/v1/sites"), error, done));
  };
  auto site_view = [this, html](const Member& m, const Session& s, const std::string& site, int status,
                                const std::string& error, const std::string& done) {
    const auto info = site_call("GET", "/v1/sites/" + site);
    const auto versions = site_call("GET", "/v1/sites/" + site + "/versions");
    const auto settings = client_settings(config, m.handle, {}, maps());
    const std::string map_page = settings.contains("map") ? settings["map"].value("page", "") : "";
    return html(status, site_page(context(m, s), info, versions, map_page, error, done));
  };

  publisher_route("GET", "/portal/sites", [sites_view](const Member& m, const Session& s, const http::Request&) {
    return sites_view(m, s, 200, "", "");
  });

  publisher_route("POST", "/portal/sites/publish", [this, sites_view](const Member& m, const Session& s, const http::Request& q) {
    const auto parts = parse_form_data(q.header("content-type"), q.body);
    if (!parts) throw Error(errc::kBadRequest, "the upload is not a valid form", 400);
    std::string csrf, site, zip_name, zip;
    for (const auto& part : *parts) {
      if (part.name == "csrf") csrf = part.content;
      if (part.name == "site") site = part.content;
      if (part.name == "zip") {
        zip_name = part.filename;
        zip = part.content;
      }
    }
    if (csrf.size() != s.csrf.size() || sodium_memcmp(csrf.data(), s.csrf.data(), csrf.size()) != 0)
      throw Error(errc::kForbidden, "the form is out of date or came from elsewhere: reload the page and try again", 403);
    try {
      if (!site::valid_site_name(site)) throw Error(errc::kBadSite, "A site's name is 1 to 63 of a-z, 0-9, - and _.", 400);
      const auto files = read_site_zip(zip);
      json blobs = json::array(), manifest = json::array();
      std::vector<std::string> ids;
      for (const auto& f : files) {
        ids.push_back(sha256_hex(f.bytes));
        blobs.push_back(ids.back());
      }
      std::set<std::string> missing;
      const auto wanted = site_call("POST", "/v1/site-blobs/missing", json{{"blobs", blobs}}.dump());
      for (const auto& b : wanted.value("missing", json::array())) missing.insert(b.get<std::string>());
      const auto now = static_cast<int64_t>(std::time(nullptr));
      for (std::size_t i = 0; i < files.size(); ++i) {
        if (missing.erase(ids[i])) site_call("PUT", "/v1/site-blobs/" + ids[i], files[i].bytes);
        manifest.push_back({{"path", files[i].path}, {"blob", ids[i]}, {"mtime", now}});
      }
      const auto version = site_call("POST", "/v1/sites/" + site + "/versions",
                                     json{{"files", manifest}, {"source", "portal: " + zip_name + " by " + m.handle}}.dump());
      return sites_view(m, s, 201, "",
                        "Version " + std::to_string(version.value("version", 0)) + " of " + site + " is published (" +
                            std::to_string(files.size()) + " files).");
    } catch (const Error& e) {
      if (e.status() >= 500) throw;
      return sites_view(m, s, 400, e.what(), "");
    }
  });

  publisher_route("GET", "/portal/sites/{site}", [site_view](const Member& m, const Session& s, const http::Request& q) {
    return site_view(m, s, q.param("site"), 200, "", "");
  });

  publisher_route("POST", "/portal/sites/{site}/rollback",
                  [this, site_view](const Member& m, const Session& s, const http::Request& q) {
    const auto site = q.param("site");
    const auto form = checked_form(q, s);
    try {
      const auto version = std::stoll(field(form, "version"));
      site_call("POST", "/v1/sites/" + site + "/rollback", json{{"version", version}}.dump());
      return site_view(m, s, site, 200, "", "Version " + std::to_string(version) + " is current again.");
    } catch (const std::logic_error&) {  // std::stoll: not a number, or out of range
      return site_view(m, s, site, 400, "Which version?", "");
    } catch (const Error& e) {
      if (e.status() >= 500) throw;
      return site_view(m, s, site, 400, e.what(), "");
    }
  });

  publisher_route("POST", "/portal/sites/{site}/events",
                  [this, site_view](const Member& m, const Session& s, const http::Request& q) {
    const auto site = q.param("site");
    const auto form = checked_form(q, s);
    json body = {{"title", field(form, "title")}, {"when", field(form, "when")}, {"where", field(form, "where")},
                 {"description", field(form, "description")}};
    if (!field(form, "until").empty()) body["until"] = field(form, "until");
    try {
      if (!field(form, "lat").empty() || !field(form, "lon").empty()) {
        body["lat"] = std::stod(field(form, "lat"));
        body["lon"] = std::stod(field(form, "lon"));
      }
      const auto made = site_call("POST", "/v1/sites/" + site + "/events", body.dump());
      return site_view(m, s, site, 201, "", "The event is published: " + made.value("url", ""));
    } catch (const std::logic_error&) {  // std::stod
      return site_view(m, s, site, 400, "The place's latitude and longitude are numbers (43.7384, 7.4246).", "");
    } catch (const Error& e) {
      if (e.status() >= 500) throw;
      return site_view(m, s, site, 400, e.what(), "");
    }
  });

  // The Akash SDL for the current version (what `coop site akash` writes).
  publisher_route("GET", "/portal/sites/{site}/akash.yaml", [this](const Member&, const Session&, const http::Request& q) {
    const auto site = q.param("site");
    const auto info = site_call("GET", "/v1/sites/" + site);
    const int64_t version = info.contains("version") ? info["version"].value("version", int64_t{0}) : 0;
    if (version == 0) throw Error(errc::kNothingPublished, "the site has no published version", 404);
    site::AkashOptions options;
    options.image = "coop-site-" + site + ":" + std::to_string(version);
    for (const auto& d : info.value("domains", json::array())) options.domains.push_back(d.get<std::string>());
    auto r = http::Response::bytes(200, site::akash_sdl(options), "application/yaml; charset=utf-8");
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + site + "-deploy.yaml\"");
    return r;
  });
}

Portal::Portal(WorkerRuntime& runtime, MemberStore& store, AuthService& auth)
    : impl_(std::make_unique<Impl>(runtime, store, auth)) {
  bool has_listener = false;
  for (const auto& l : runtime.config().listeners("member"))
    if (l.name == "portal") {
      has_listener = true;
      impl_->secure = l.scheme == "https";
    }
  if (!has_listener) return;
  impl_->secure = impl_->secure || runtime.config().get_string("workers.member.public_url", "").rfind("https://", 0) == 0;
  impl_->site_group = runtime.config().get_string("workers.member.site_group", "web");
  impl_->add_routes();
  http::ServerLimits limits;
  limits.max_body_bytes = 64 << 20;  // forms, and a site's zip
  limits.max_connections = 1024;
  limits.max_per_address = 64;
  limits.trusted_proxies = runtime.config().get_strings("http.trusted_proxies", {});
  impl_->server = http::serve_worker_listener(runtime, "member", "portal", impl_->router, limits);
  runtime.on_shutdown([impl = impl_.get()] {
    if (impl->server) impl->server->stop();
  });
}

Portal::~Portal() {
  if (impl_->server) impl_->server->stop();
  // A takeout runs on a thread of its own and uses this object: let it finish (the CLI it
  // waits for is bounded by its own timeouts), for at most a minute.
  for (int i = 0; i < 600 && impl_->takeouts.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

}  // namespace coop::member
