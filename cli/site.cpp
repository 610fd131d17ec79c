// coop site ...: publishing the cooperative's websites through coop-site's control socket:
// folders as immutable versions, rollback, domains, Markdown pages, events, and the Akash
// deployment (SDL and container build context) of the current version.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/digest.h"
#include "common/error.h"
#include "workers/site/akash.h"
#include "workers/site/site_paths.h"

namespace fs = std::filesystem;

namespace coop::cli {

namespace {

using nlohmann::json;

constexpr const char* kSiteDescription =
    "The cooperative's websites and event pages\n\n"
    "coop site publish stores a folder (a WebStudio static export, or any folder of HTML) as a new,\n"
    "immutable version and makes it current in one step; files are stored by their SHA-256, so what\n"
    "did not change is neither uploaded nor stored again. coop-site serves the current version by\n"
    "the site's domains (the request's Host) and at /sites/NAME/ for previews, with ETags, ranges,\n"
    "gzip and brotli made at publish time, index.html and clean URLs (/about serves about.html) and\n"
    "the site's own 404.html. The last workers.site.keep_versions versions (10) are kept for\n"
    "rollback. Pages and events need no builder: Markdown pages and event pages with iCalendar\n"
    "files are rendered into every new version.";

std::string site_read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(errc::kReadFailed, "cannot read " + path.string(), 1);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A time from the worker's JSON (RFC 3339, UTC), shown in the machine's local time.
std::string site_date(const json& value) {
  std::tm utc{};
  const std::string iso = value.is_string() ? value.get<std::string>() : "";
  if (!strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%SZ", &utc)) return iso;
  char text[32];
  const time_t tt = timegm(&utc);
  struct tm tm {};
  localtime_r(&tt, &tm);
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &tm);
  return text;
}

std::string site_megabytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%s", format_bytes(static_cast<uint64_t>(std::max<int64_t>(bytes, 0))).c_str());
  return text;
}

// Mistakes in the command line are usage errors (exit 2), caught before the worker is asked.
void require_site_name(const std::string& name) {
  if (!site::valid_site_name(name))
    throw Error(errc::kUsage, "site names are 1-63 of a-z, 0-9, - and _, starting with a letter or digit: '" + name + "'", 400);
}

struct LocalFile {
  std::string path;  // inside the site, '/'-separated
  fs::path source;
  std::string blob;
  int64_t size = 0, mtime = 0;
};

// Every regular file under dir; symlinks, devices and paths a site may not hold stop the
// publish before anything is sent.
std::vector<LocalFile> site_scan(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(errc::kNotAFolder, dir.string() + " is not a folder", 1);
  std::vector<LocalFile> files;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw Error(errc::kReadFailed, "cannot read " + dir.string() + ": " + ec.message(), 1);
    const auto status = it->symlink_status(ec);
    // Lexically: fs::relative would follow a symbolic link to wherever it points.
    const auto relative = it->path().lexically_relative(dir).generic_string();
    if (fs::is_symlink(status)) throw Error(errc::kSymlink, "refusing to publish a symbolic link: " + relative, 1);
    if (fs::is_directory(status)) continue;
    if (!fs::is_regular_file(status)) throw Error(errc::kNotAFile, "refusing to publish something that is not a file: " + relative, 1);
    if (!site::valid_file_path(relative)) throw Error(errc::kBadPath, "a site cannot hold this path: " + relative, 1);
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) throw Error(errc::kReadFailed, "cannot stat " + relative, 1);
    files.push_back({relative, it->path(), "", static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtime)});
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  return files;
}

void print_version(const json& v, const std::string& verb) {
  std::cout << verb << " " << v.value("site", "") << " version " << v.value("version", 0) << ": " << v.value("files", 0)
            << " files, " << site_megabytes(v.value("bytes", int64_t{0})) << "\n";
}

void add_publish_command(CLI::App& group, Globals& globals) {
  struct Options {
    std::string dir, site;
    std::vector<std::string> domains;
    bool json = false, quiet = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = group.add_subcommand("publish",
                                   "Publish a folder as the site's new current version\n\n"
                                   "Only files the shard does not hold yet are uploaded. Symbolic links and\n"
                                   "paths with '..' are refused before anything is sent. Progress shows on\n"
                                   "a terminal only.");
  cmd->add_option("dir", o->dir, "The folder (e.g. WebStudio's `webstudio build --template ssg` output)")->required()->type_name("DIR");
  cmd->add_option("--site", o->site, "The site's name (made on first publish)")->required()->type_name("NAME");
  cmd->add_option("--domain", o->domains, "Serve it at this host name too (repeatable)")->type_name("HOST");
  cmd->add_flag("--json", o->json, "Print the new version as JSON");
  cmd->add_flag("--quiet,-q", o->quiet, "No summary line");
  cmd->callback([&globals, o] {
    require_site_name(o->site);
    for (const auto& d : o->domains)
      if (!site::valid_host(d)) throw Error(errc::kUsage, "not a host name: " + d, 400);
    auto files = site_scan(o->dir);
    const bool progress = stderr_is_terminal() && !o->json;
    json blobs = json::array();
    for (auto& f : files) {
      f.blob = sha256_hex(site_read_file(f.source));
      blobs.push_back(f.blob);
    }
    WorkerCall call(globals, "site", o->json);
    const auto missing = call.call("POST", "/v1/site-blobs/missing", json{{"blobs", blobs}})["missing"];
    std::set<std::string> wanted;
    for (const auto& m : missing) wanted.insert(m.get<std::string>());
    int64_t uploaded_bytes = 0;
    std::size_t uploaded = 0;
    for (const auto& f : files) {
      if (!wanted.count(f.blob)) continue;
      wanted.erase(f.blob);
      if (progress) std::fprintf(stderr, "\ruploading %zu/%zu: %s\033[K", uploaded + 1, missing.size(), f.path.c_str());
      call.call_raw("PUT", "/v1/site-blobs/" + f.blob, site_read_file(f.source));
      uploaded_bytes += f.size;
      ++uploaded;
    }
    if (progress) std::fprintf(stderr, "\r\033[K");
    json manifest = json::array();
    for (const auto& f : files) manifest.push_back({{"path", f.path}, {"blob", f.blob}, {"mtime", f.mtime}});
    json body = {{"files", manifest}, {"source", fs::absolute(o->dir).lexically_normal().string()}, {"domains", o->domains}};
    auto version = call.call("POST", "/v1/sites/" + o->site + "/versions", body);
    version["uploaded_files"] = uploaded;
    version["uploaded_bytes"] = uploaded_bytes;
    if (o->json) return print_json(version);
    if (o->quiet) return;
    print_version(version, "Published");
    std::cout << "  " << uploaded << " of " << files.size() << " files uploaded (" << site_megabytes(uploaded_bytes)
              << "), the rest already stored\n";
  });
}

void add_browse_commands(CLI::App& group, Globals& globals) {
  auto list_json = std::make_shared<bool>(false);
  auto* cmd = group.add_subcommand("list", "List the sites, their current versions and domains");
  cmd->add_flag("--json", *list_json, "Print them as JSON");
  cmd->callback([&globals, list_json] {
    WorkerCall call(globals, "site", *list_json);
    const auto sites = call.call("GET", "/v1/sites");
    if (*list_json) return print_json(sites);
    Table table({"SITE", "VERSION", "DOMAINS", "PREVIEW"});
    for (const auto& s : sites) {
      std::string domains;
      for (const auto& d : s["domains"]) domains += (domains.empty() ? "" : " ") + d.get<std::string>();
      table.add_row({s["name"], std::to_string(s.value("current", 0)), domains.empty() ? "-" : domains, s.value("preview", "")});
    }
    table.print();
  });

  struct NameOptions {
    std::string site;
    bool json = false;
  };
  auto versions = std::make_shared<NameOptions>();
  cmd = group.add_subcommand("versions", "List a site's kept versions");
  cmd->add_option("site", versions->site, "The site")->required()->type_name("NAME");
  cmd->add_flag("--json", versions->json, "Print them as JSON");
  cmd->callback([&globals, versions] {
    require_site_name(versions->site);
    WorkerCall call(globals, "site", versions->json);
    const auto list = call.call("GET", "/v1/sites/" + versions->site + "/versions");
    if (versions->json) return print_json(list);
    Table table({"VERSION", "PUBLISHED", "FILES", "SIZE", "SOURCE"});
    for (const auto& v : list)
      table.add_row({std::to_string(v.value("version", 0)) + (v.value("current", false) ? " (current)" : ""),
                     site_date(v.value("created_at", json())), std::to_string(v.value("files", 0)),
                     site_megabytes(v.value("bytes", int64_t{0})), v.value("source", "")},
                    {v.value("current", false) ? Colour::green : Colour::none});
    table.print();
  });

  auto show = std::make_shared<NameOptions>();
  cmd = group.add_subcommand("show", "Show a site: current version, domains, pages, events, preview URL");
  cmd->add_option("site", show->site, "The site")->required()->type_name("NAME");
  cmd->add_flag("--json", show->json, "Print it as JSON");
  cmd->callback([&globals, show] {
    require_site_name(show->site);
    WorkerCall call(globals, "site", show->json);
    const auto s = call.call("GET", "/v1/sites/" + show->site);
    if (show->json) return print_json(s);
    std::cout << "Site " << s["name"].get<std::string>() << "\n";
    if (s.contains("version"))
      std::cout << "  version   " << s["version"].value("version", 0) << ", published "
                << site_date(s["version"].value("created_at", json())) << ", " << s["version"].value("files", 0)
                << " files, " << site_megabytes(s["version"].value("bytes", int64_t{0})) << "\n";
    std::string domains;
    for (const auto& d : s["domains"]) domains += (domains.empty() ? "" : ", ") + d.get<std::string>();
    std::cout << "  domains   " << (domains.empty() ? "-" : domains) << "\n";
    std::cout << "  preview   " << s.value("preview", "") << "\n";
    for (const auto& p : s["pages"]) std::cout << "  page      /" << p.value("path", "") << "  " << p.value("title", "") << "\n";
    for (const auto& e : s["events"])
      std::cout << "  event     /" << e.value("path", "") << "  " << site_date(e.value("starts", json())) << "  "
                << e.value("title", "") << "\n";
  });

  struct RollbackOptions {
    std::string site;
    int64_t to = 0;
    bool json = false;
  };
  auto rollback = std::make_shared<RollbackOptions>();
  cmd = group.add_subcommand("rollback", "Make an earlier version current again (requests in flight finish on the old one)");
  cmd->add_option("site", rollback->site, "The site")->required()->type_name("NAME");
  cmd->add_option("--to", rollback->to, "The version (default: the one before the current)")->type_name("VERSION");
  cmd->add_flag("--json", rollback->json, "Print the version now current as JSON");
  cmd->callback([&globals, rollback] {
    require_site_name(rollback->site);
    WorkerCall call(globals, "site", rollback->json);
    const auto v = call.call("POST", "/v1/sites/" + rollback->site + "/rollback",
                             rollback->to > 0 ? json{{"to", rollback->to}} : json::object());
    if (rollback->json) return print_json(v);
    print_version(v, "Current:");
  });

  auto remove = std::make_shared<NameOptions>();
  cmd = group.add_subcommand("remove", "Remove a site with all its versions, domains, pages and events");
  cmd->add_option("site", remove->site, "The site")->required()->type_name("NAME");
  cmd->add_flag("--json", remove->json, "Print the result as JSON");
  cmd->callback([&globals, remove] {
    require_site_name(remove->site);
    WorkerCall call(globals, "site", remove->json);
    const auto r = call.call("DELETE", "/v1/sites/" + remove->site);
    if (remove->json) return print_json(r);
    std::cout << "Removed site " << remove->site << "\n";
  });

  auto* domain = group.add_subcommand("domain", "The host names a site is served at");
  domain->require_subcommand(1);
  struct DomainOptions {
    std::string site, host;
    bool json = false;
  };
  for (const bool adding : {true, false}) {
    auto d = std::make_shared<DomainOptions>();
    cmd = domain->add_subcommand(adding ? "add" : "remove", adding ? "Serve the site at a host name (point its DNS here)"
                                                                   : "Stop serving the site at a host name");
    cmd->add_option("site", d->site, "The site")->required()->type_name("NAME");
    cmd->add_option("host", d->host, "The host name, e.g. www.example.coop")->required()->type_name("HOST");
    cmd->add_flag("--json", d->json, "Print the result as JSON");
    cmd->callback([&globals, d, adding] {
      require_site_name(d->site);
      WorkerCall call(globals, "site", d->json);
      const auto r = adding ? call.call("POST", "/v1/sites/" + d->site + "/domains", json{{"host", d->host}})
                            : call.call("DELETE", "/v1/sites/" + d->site + "/domains/" + path_segment(d->host));
      if (d->json) return print_json(r);
      std::cout << (adding ? "Serving " : "No longer serving ") << d->site << " at " << d->host << "\n";
    });
  }
}

void add_page_and_event_commands(CLI::App& group, Globals& globals) {
  auto* page = group.add_subcommand("page", "Markdown pages, rendered into the site with its built-in theme");
  page->require_subcommand(1);
  struct PageOptions {
    std::string site, from, title, slug;
    bool json = false;
  };
  auto p = std::make_shared<PageOptions>();
  auto* cmd = page->add_subcommand("new", "Add (or replace) a page from a Markdown file; a new version goes live");
  cmd->add_option("site", p->site, "The site")->required()->type_name("NAME");
  cmd->add_option("--from", p->from, "The Markdown (CommonMark) file; - for stdin")->required()->type_name("FILE.md");
  cmd->add_option("--title", p->title, "The page's title (default: its first heading, else the file's name)")->type_name("TEXT");
  cmd->add_option("--slug", p->slug, "Its address, /SLUG/ (default: from the title)")->type_name("SLUG");
  cmd->add_flag("--json", p->json, "Print the page and the new version as JSON");
  cmd->callback([&globals, p] {
    require_site_name(p->site);
    std::string markdown;
    if (p->from == "-") {
      std::ostringstream in;
      in << std::cin.rdbuf();
      markdown = in.str();
    } else {
      markdown = site_read_file(p->from);
    }
    std::string title = p->title;
    if (title.empty()) {
      std::istringstream lines(markdown);
      for (std::string line; std::getline(lines, line);)
        if (line.rfind("# ", 0) == 0) {
          title = line.substr(2);
          break;
        }
      if (!title.empty() && markdown.rfind("# " + title, 0) == 0) markdown = markdown.substr(markdown.find('\n') + 1);
    }
    if (title.empty()) title = fs::path(p->from).stem().string();
    json body = {{"title", title}, {"markdown", markdown}};
    if (!p->slug.empty()) body["slug"] = p->slug;
    WorkerCall call(globals, "site", p->json);
    const auto r = call.call("POST", "/v1/sites/" + p->site + "/pages", body);
    if (p->json) return print_json(r);
    std::cout << "Page /" << r.value("path", "") << " (" << title << ") is live in version " << r["version"].value("version", 0) << "\n";
  });

  auto* event = group.add_subcommand("event", "Event pages with iCalendar files, listed on the site's /events/ page");
  event->require_subcommand(1);
  struct EventOptions {
    std::string site, title, when, until, where, description, marker, slug;
    bool json = false;
  };
  auto e = std::make_shared<EventOptions>();
  cmd = event->add_subcommand("add", "Add an event: its page, its .ics, the events page, and a map marker with --marker");
  cmd->add_option("site", e->site, "The site")->required()->type_name("NAME");
  cmd->add_option("--title", e->title, "What it is")->required()->type_name("TEXT");
  cmd->add_option("--when", e->when, "When it starts: 2026-12-05T18:00 (in workers.site.timezone) or with an offset")
      ->required()->type_name("TIME");
  cmd->add_option("--until", e->until, "When it ends (default: two hours later)")->type_name("TIME");
  cmd->add_option("--where", e->where, "Where: an address or a room")->required()->type_name("PLACE");
  cmd->add_option("--description", e->description, "More about it (Markdown)")->type_name("TEXT");
  cmd->add_option("--marker", e->marker, "Put it on the cooperative's map too (when coop-tiles runs)")->type_name("LAT,LON");
  cmd->add_option("--slug", e->slug, "Its address, /events/SLUG/ (default: date and title)")->type_name("SLUG");
  cmd->add_flag("--json", e->json, "Print the event and the new version as JSON");
  cmd->callback([&globals, e] {
    require_site_name(e->site);
    json body = {{"title", e->title}, {"when", e->when}, {"where", e->where}};
    if (!e->until.empty()) body["until"] = e->until;
    if (!e->description.empty()) body["description"] = e->description;
    if (!e->slug.empty()) body["slug"] = e->slug;
    if (!e->marker.empty()) {
      const auto comma = e->marker.find(',');
      try {
        if (comma == std::string::npos) throw std::invalid_argument("no comma");
        body["lat"] = std::stod(e->marker.substr(0, comma));
        body["lon"] = std::stod(e->marker.substr(comma + 1));
      } catch (const std::exception&) {
        throw Error(errc::kUsage, "give --marker as LAT,LON, e.g. 43.7384,7.4246", 400);
      }
    }
    WorkerCall call(globals, "site", e->json);
    const auto r = call.call("POST", "/v1/sites/" + e->site + "/events", body);
    if (e->json) return print_json(r);
    std::cout << "Event /" << r.value("path", "") << " is live in version " << r["version"].value("version", 0) << ": "
              << r.value("url", "") << "\n";
    if (r.contains("map_marker") && r["map_marker"].is_object())
      std::cout << "  on the map as marker " << r["map_marker"].value("id", 0) << "\n";
    else if (r.contains("map_marker_error"))
      std::cout << "  not on the map: " << r["map_marker_error"].get<std::string>() << "\n";
  });

  struct EventRemoveOptions {
    std::string site, slug;
    bool json = false;
  };
  auto er = std::make_shared<EventRemoveOptions>();
  cmd = event->add_subcommand("remove", "Remove an event (a new version goes live without it)");
  cmd->add_option("site", er->site, "The site")->required()->type_name("NAME");
  cmd->add_option("slug", er->slug, "The event's slug (coop site show lists them)")->required()->type_name("SLUG");
  cmd->add_flag("--json", er->json, "Print the result as JSON");
  cmd->callback([&globals, er] {
    require_site_name(er->site);
    WorkerCall call(globals, "site", er->json);
    const auto r = call.call("DELETE", "/v1/sites/" + er->site + "/events/" + path_segment(er->slug));
    if (er->json) return print_json(r);
    std::cout << "Removed event " << er->slug << "\n";
  });
}

void add_deploy_commands(CLI::App& group, Globals& globals) {
  struct ImageOptions {
    std::string site, out;
    int64_t version = 0;
    bool json = false;
  };
  auto im = std::make_shared<ImageOptions>();
  auto* cmd = group.add_subcommand("image",
                                   "Write a container build context for the site: Dockerfile, nginx.conf, site/\n\n"
                                   "docker build -t IMAGE OUT && docker push IMAGE, then coop site akash --image IMAGE.");
  cmd->add_option("site", im->site, "The site")->required()->type_name("NAME");
  cmd->add_option("-o,--out", im->out, "A new (or empty) folder for the build context")->required()->type_name("DIR");
  cmd->add_option("--version", im->version, "The version (default: the current one)")->type_name("VERSION");
  cmd->add_flag("--json", im->json, "Print what was written as JSON");
  cmd->callback([&globals, im] {
    require_site_name(im->site);
    const fs::path out = im->out;
    std::error_code ec;
    if (fs::exists(out, ec) && !fs::is_empty(out, ec)) throw Error(errc::kNotEmpty, im->out + " exists and is not empty", 1);
    WorkerCall call(globals, "site", im->json);
    const auto manifest =
        call.call("GET", "/v1/sites/" + im->site + "/files" + (im->version > 0 ? "?version=" + std::to_string(im->version) : ""));
    const int64_t version = manifest.value("version", int64_t{0});
    if (version == 0) throw Error(errc::kNothingPublished, "site " + im->site + " has no published version", 1);
    fs::create_directories(out / "site");
    auto write = [](const fs::path& path, const std::string& bytes) {
      fs::create_directories(path.parent_path());
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!f) throw Error(errc::kWriteFailed, "cannot write " + path.string(), 1);
    };
    int64_t files = 0, bytes = 0;
    for (const auto& f : manifest["files"]) {
      const std::string path = f["path"];
      if (!site::valid_file_path(path)) throw Error(errc::kBadPath, "refusing path " + path, 1);
      const auto content = call.call_raw("GET", "/v1/site-blobs/" + f["blob"].get<std::string>());
      write(out / "site" / path, content);
      // nginx's gzip_static serves these to clients that take gzip.
      if (!f.value("gzip", "").empty()) write(out / "site" / (path + ".gz"), call.call_raw("GET", "/v1/site-blobs/" + f["gzip"].get<std::string>()));
      ++files;
      bytes += static_cast<int64_t>(content.size());
    }
    write(out / "Dockerfile", site::dockerfile(im->site, version));
    write(out / "nginx.conf", site::nginx_conf());
    const json result = {{"site", im->site}, {"version", version}, {"out", fs::absolute(out).string()}, {"files", files}, {"bytes", bytes}};
    if (im->json) return print_json(result);
    std::cout << "Wrote the build context of " << im->site << " version " << version << " to " << im->out << " (" << files
              << " files)\n  docker build -t IMAGE " << im->out << " && docker push IMAGE\n";
  });

  struct AkashCliOptions {
    std::string site, out, image, memory = "256Mi", storage = "1Gi";
    double cpu = 0.5;
    int64_t price = 1000;
    int count = 1;
    std::vector<std::string> attributes;
    bool json = false;
  };
  auto ak = std::make_shared<AkashCliOptions>();
  cmd = group.add_subcommand("akash",
                             "Write an Akash SDL (version 2.0) deploying the site's current version\n\n"
                             "The image is the one built from coop site image (default name coop-site-NAME:VERSION;\n"
                             "push it to a registry the providers reach and pass --image). Deploy with the akash\n"
                             "CLI: provider-services tx deployment create deploy.yaml --from KEY, then pick a\n"
                             "bid and send the manifest (see the README).");
  cmd->add_option("site", ak->site, "The site")->required()->type_name("NAME");
  cmd->add_option("-o,--out", ak->out, "Where to write the SDL (default: standard output)")->type_name("FILE.yaml");
  cmd->add_option("--image", ak->image, "The container image to run")->type_name("IMAGE");
  cmd->add_option("--cpu", ak->cpu, "CPU units (default 0.5)")->check(CLI::Range(0.1, 64.0));
  cmd->add_option("--memory", ak->memory, "Memory (default 256Mi)")->type_name("SIZE");
  cmd->add_option("--storage", ak->storage, "Ephemeral storage (default 1Gi)")->type_name("SIZE");
  cmd->add_option("--price", ak->price, "Most uakt per block the deployment pays (default 1000)")->check(CLI::PositiveNumber);
  cmd->add_option("--count", ak->count, "Instances (default 1)")->check(CLI::Range(1, 100));
  cmd->add_option("--attribute", ak->attributes, "A provider attribute to require, KEY=VALUE (repeatable)")->type_name("KEY=VALUE");
  cmd->add_flag("--json", ak->json, "Print the SDL's path and image as JSON");
  cmd->callback([&globals, ak] {
    require_site_name(ak->site);
    // A size above zero: an instance with 0Mi of memory or storage cannot run.
    static const std::regex kSize("[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)?");
    if (!std::regex_match(ak->memory, kSize) || !std::regex_match(ak->storage, kSize))
      throw Error(errc::kUsage, "sizes are above zero, like 512Mi or 1Gi", 400);
    for (const auto& a : ak->attributes)
      if (a.find('=') == std::string::npos || a.find_first_of(" :\n") < a.find('='))
        throw Error(errc::kUsage, "attributes are KEY=VALUE: " + a, 400);
    WorkerCall call(globals, "site", ak->json);
    const auto s = call.call("GET", "/v1/sites/" + ak->site);
    const int64_t version = s.contains("version") ? s["version"].value("version", int64_t{0}) : 0;
    if (version == 0) throw Error(errc::kNothingPublished, "site " + ak->site + " has no published version", 1);
    site::AkashOptions options;
    options.image = ak->image.empty() ? "coop-site-" + ak->site + ":" + std::to_string(version) : ak->image;
    for (const auto& d : s["domains"]) options.domains.push_back(d);
    options.cpu_units = ak->cpu;
    options.memory = ak->memory;
    options.storage = ak->storage;
    options.price_uakt = ak->price;
    options.count = ak->count;
    options.attributes = ak->attributes;
    const std::string sdl = site::akash_sdl(options);
    if (ak->out.empty() || ak->out == "-") {
      std::cout << sdl;
      return;
    }
    std::ofstream f(ak->out, std::ios::binary | std::ios::trunc);
    f << sdl;
    if (!f) throw Error(errc::kWriteFailed, "cannot write " + ak->out, 1);
    if (ak->json) return print_json(json{{"site", ak->site}, {"version", version}, {"out", ak->out}, {"image", options.image}});
    std::cout << "Wrote " << ak->out << " (image " << options.image << ")\n";
  });
}

}  // namespace

void add_site_commands(CLI::App& app, Globals& globals) {
  auto* group = app.add_subcommand("site", kSiteDescription);
  group->require_subcommand(1);
  add_publish_command(*group, globals);
  add_browse_commands(*group, globals);
  add_page_and_event_commands(*group, globals);
  add_deploy_commands(*group, globals);
}

}  // namespace coop::cli
