// coop member takeout and settings. Takeout: everything one member owns, in standard formats, in one folder they
// can take elsewhere. Each part comes from the worker that keeps it, through the same control
// APIs the other exports use; a part whose worker is disabled in coop.toml is left out and the
// README says so, but a part whose worker should run and does not stops the takeout.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/client_settings.h"
#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/mail/mailbox_name.h"
#include "common/paths.h"

namespace coop::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TakeoutOptions {
  std::string handle, out;
  bool json = false;
};

// A name a member chose (a calendar's, a document's id) as one file name: escaped so that
// it cannot climb out of the folder or hide (mailbox_name.h's rule for mbox files).
std::string file_name(const std::string& chosen, const std::string& extension) {
  return mail::file_name_for_level(chosen.empty() ? "unnamed" : chosen) + extension;
}

void write_private(const fs::path& file, const std::string& content) { write_file_durably(file, content, 0600); }

void make_private_dir(const fs::path& dir) {
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);
}

// Copies a file of the shard's (a document's log, a blob) named by a worker, after checking
// that the path stays under COOP_HOME/docs: what a worker answers is checked like any input.
uint64_t copy_shard_file(const Home& home, const std::string& relative, const fs::path& target) {
  const fs::path rel(relative);
  if (rel.is_absolute() || relative.rfind("docs/", 0) != 0 || relative.find("..") != std::string::npos)
    throw Error(errc::kBadPath, "coop-docs named a file outside its folder: " + relative, 502);
  const auto source = home.root() / rel;
  std::error_code ec;
  if (!fs::exists(source, ec)) return 0;  // a document opened but never written has no log yet
  fs::copy_file(source, target, fs::copy_options::overwrite_existing);
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write);
  return fs::file_size(target);
}

const char* kReadme = R"(Everything {HANDLE} has on the {DOMAIN} coop shard, as of {WHEN}.

Made by `coop member takeout`. Each file is in a standard format that other software reads:

  profile.json          who you are in the member registry: handle, name, addresses, groups,
                        role, status, quota (JSON)
  app-passwords.json    your app passwords' labels, scopes and when they were made and last
                        used; never the passwords themselves (JSON)
  logins.json           the login audit: every sign-in and failed attempt, newest first, with
                        protocol, address and the credential used (JSON)
  mail/maildir/         your mail as Maildir++ (INBOX at the top, other folders as
                        .Folder.Sub); Thunderbird, mutt, Dovecot and offlineimap read it
  mail/mbox/            the same mail, one mbox (mboxrd) file per folder, subfolders in
                        NAME.sbd/ as Thunderbird lays them out
  calendars/NAME.ics    each calendar you own, as one iCalendar file (RFC 5545)
  contacts/NAME.vcf     each address book you own, as one vCard file (RFC 6350)
  chat.json             your Matrix rooms and the history you can see in them, as
                        `coop room export` writes it (JSON, one object per room)
  markers.geojson       the resources and events you marked on the map (GeoJSON, RFC 7946)
  documents/index.json  the documents you own: their channel ids and titles
  documents/CHANNEL.ndjson, CHANNEL.metadata.json
                        each document's log and metadata exactly as the server keeps them:
                        encrypted in your browser, so only the document links you hold
                        (with the key after #) open them
  documents/blobs/ID    your encrypted attachments, as uploaded

File names that came from names you chose are escaped: "." "/" and "%" are written %2E, %2F
and %25.
{MISSING})";

void fill(std::string& text, const std::string& key, const std::string& value) {
  for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
    text.replace(at, key.size(), value);
}

void run_takeout(Globals& globals, const TakeoutOptions& o) {
  const Home home = globals.resolve_home();
  require_shard(home);
  const auto config = Config::load(home.config_file());
  require_member(globals, o.handle);
  const fs::path out(o.out);
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
    throw Error(errc::kExists, o.out + " exists and is not an empty directory; refusing to overwrite", 409);

  // Every worker that should run must: a takeout that silently lacks the mail is worse than none.
  std::vector<std::string> missing;
  for (const char* worker : {"mail", "dav", "room", "tiles", "docs"}) {
    if (!config.worker_enabled(worker)) {
      missing.push_back(worker);
      continue;
    }
    WorkerCall(globals, worker, false).call("GET", "/v1/health");
  }
  const auto enabled = [&](const char* worker) {
    return std::find(missing.begin(), missing.end(), worker) == missing.end();
  };

  make_private_dir(out);
  ProgressLine progress(o.json);
  json summary = {{"member", o.handle}, {"out", o.out}};

  progress.show("profile, app passwords and logins", true);
  WorkerCall member(globals, "member", o.json);
  const auto profile = member.call("GET", "/v1/members/" + path_segment(o.handle));
  write_private(out / "profile.json", profile.dump(2) + "\n");
  write_private(out / "app-passwords.json",
                member.call("GET", "/v1/members/" + path_segment(o.handle) + "/app-passwords").dump(2) + "\n");
  const auto logins = member.call("GET", "/v1/audit?limit=10000&handle=" + path_segment(o.handle));
  write_private(out / "logins.json", logins.dump(2) + "\n");
  summary["logins"] = logins.size();

  if (enabled("mail")) {
    make_private_dir(out / "mail");
    const auto maildir = export_mail_formats(globals, o.handle, "", out / "mail" / "maildir", out / "mail" / "mbox", o.json);
    summary["messages"] = maildir.messages;
    summary["mail_bytes"] = maildir.bytes;
  }

  if (enabled("dav")) {
    progress.show("calendars and address books", true);
    WorkerCall dav(globals, "dav", o.json);
    int calendars = 0, addressbooks = 0;
    for (const auto& c : dav.call("GET", "/v1/collections?owner=" + path_segment(o.handle))) {
      const bool calendar = c.value("kind", "") == "calendar";
      const auto dir = out / (calendar ? "calendars" : "contacts");
      make_private_dir(dir);
      const auto text = dav.call_raw("GET", "/v1/collections/" + path_segment(c.value("kind", "")) + "/" +
                                                path_segment(o.handle) + "/" + path_segment(c.value("name", "")) +
                                                "/export");
      write_private(dir / file_name(c.value("name", ""), calendar ? ".ics" : ".vcf"), text);
      ++(calendar ? calendars : addressbooks);
    }
    summary["calendars"] = calendars;
    summary["addressbooks"] = addressbooks;
  }

  if (enabled("room")) {
    progress.show("chat history", true);
    const auto text = WorkerCall(globals, "room", o.json).call_raw("GET", "/v1/export/" + path_segment(o.handle));
    write_private(out / "chat.json", text);
    const auto chat = json::parse(text, nullptr, false);
    summary["rooms"] = chat.is_object() ? chat.value("rooms", json::array()).size() : 0;
  }

  if (enabled("tiles")) {
    progress.show("map markers", true);
    const auto all = WorkerCall(globals, "tiles", o.json).call("GET", "/v1/markers");
    json mine = {{"type", "FeatureCollection"}, {"features", json::array()}};
    for (const auto& f : all.value("features", json::array()))
      if (f.value("properties", json::object()).value("by", "") == o.handle) mine["features"].push_back(f);
    write_private(out / "markers.geojson", mine.dump(2) + "\n");
    summary["markers"] = mine["features"].size();
  }

  if (enabled("docs")) {
    progress.show("documents", true);
    const auto owned = WorkerCall(globals, "docs", o.json).call("GET", "/v1/owned/" + path_segment(o.handle));
    const auto dir = out / "documents";
    make_private_dir(dir);
    json index = json::array();
    uint64_t bytes = 0;
    for (const auto& d : owned.value("documents", json::array())) {
      const auto channel = d.value("channel", "");
      bytes += copy_shard_file(home, d.value("log", ""), dir / file_name(channel, ".ndjson"));
      bytes += copy_shard_file(home, d.value("metadata", ""), dir / file_name(channel, ".metadata.json"));
      index.push_back({{"channel", channel}, {"title", d.value("title", "")}, {"created_at", d.value("created_at", "")}});
    }
    if (!owned.value("blobs", json::array()).empty()) make_private_dir(dir / "blobs");
    for (const auto& b : owned.value("blobs", json::array()))
      bytes += copy_shard_file(home, b.value("path", ""), dir / "blobs" / file_name(b.value("id", ""), ""));
    write_private(dir / "index.json", index.dump(2) + "\n");
    summary["documents"] = index.size();
    summary["blobs"] = owned.value("blobs", json::array()).size();
    summary["document_bytes"] = bytes;
  }

  std::string readme = kReadme;
  fill(readme, "{HANDLE}", o.handle);
  fill(readme, "{DOMAIN}", config.domain());
  fill(readme, "{WHEN}", utc_time_text(unix_now()));
  std::string missing_text;
  for (const auto& worker : missing) missing_text += (missing_text.empty() ? "" : ", ") + worker;
  fill(readme, "{MISSING}",
       missing_text.empty() ? "" : "\nNot included: what the " + missing_text + " worker(s) keep, which this shard does not run.\n");
  write_private(out / "README.txt", readme);
  fsync_directory(out);
  progress.done();
  summary["not_included"] = missing;

  if (o.json) return print_json(summary);
  std::cout << "Takeout of " << o.handle << " in " << o.out << ": " << summary.value("messages", 0) << " messages, "
            << summary.value("calendars", 0) << " calendars, " << summary.value("addressbooks", 0) << " address books, "
            << summary.value("rooms", 0) << " rooms, " << summary.value("markers", 0) << " markers, "
            << summary.value("documents", 0) << " documents (README.txt says what each file is)\n";
}

struct SettingsOptions {
  std::string handle;
  bool json = false;
};

void print_server(const char* label, const json& s) {
  if (!s.is_object()) return;
  std::cout << "  " << label << s.value("host", "") << " port " << s.value("port", 0) << ", " << s.value("security", "")
            << ", login " << s.value("login", "") << "\n";
}

void run_settings(Globals& globals, const SettingsOptions& o) {
  const Home home = globals.resolve_home();
  require_shard(home);
  const auto config = Config::load(home.config_file());
  const auto member = WorkerCall(globals, "member", o.json).call("GET", "/v1/members/" + path_segment(o.handle));
  std::vector<std::string> maps;
  if (config.worker_enabled("tiles")) {
    try {
      for (const auto& a : WorkerCall(globals, "tiles", false).call("GET", "/v1/archives")) maps.push_back(a.value("name", ""));
    } catch (const Error& e) {
      if (e.code() != errc::kNotRunning) throw;  // a stopped map worker leaves the map out, not the rest
    }
  }
  const auto settings =
      client_settings(config, o.handle, member.value("emails", std::vector<std::string>{}), maps);
  if (o.json) return print_json(settings);
  std::cout << "Settings for " << o.handle << " on " << config.domain()
            << " (the password is theirs, or an app password: coop member app-password add)\n";
  if (settings.contains("mail")) {
    const auto& m = settings["mail"];
    std::cout << "\nMail " << (m["address"].is_string() ? m["address"].get<std::string>() : "(no address yet)") << "\n";
    print_server("IMAP        ", m["imap"]);
    print_server("IMAP        ", m["imap_starttls"]);
    print_server("SMTP        ", m["submission"]);
    print_server("SMTP        ", m["submission_starttls"]);
  }
  if (settings.contains("calendars"))
    std::cout << "\nCalendars   " << settings["calendars"].value("url", "") << " (CalDAV, login "
              << settings["calendars"].value("login", "") << ")\n"
              << "Contacts    " << settings["contacts"].value("url", "") << " (CardDAV)\n";
  if (settings.contains("chat"))
    std::cout << "\nChat        homeserver " << settings["chat"].value("homeserver", "") << ", user "
              << settings["chat"].value("user_id", "") << " (Element, FluffyChat, any Matrix client)\n";
  if (settings.contains("map")) {
    if (settings["map"].contains("embed"))
      std::cout << "\nMap         " << settings["map"].value("page", "") << "\n  embed     "
                << settings["map"].value("embed", "") << "\n";
    else
      std::cout << "\nMap         (no map imported yet: coop tiles import)\n";
  }
  if (settings.contains("documents"))
    std::cout << "\nDocuments   " << settings["documents"].value("editor", "") << "\n";
}

}  // namespace

void add_takeout_command(CLI::App& member, Globals& globals) {
  auto s = std::make_shared<SettingsOptions>();
  auto* settings = member.add_subcommand(
      "settings",
      "Print every client setting a member needs: mail, calendars, contacts, chat, map and documents\n\n"
      "Host names, ports and TLS mode of IMAP and submission, the CalDAV and CardDAV URLs, the Matrix "
      "homeserver and user ID, the map page and its embed snippet, and the documents editor: from coop.toml "
      "(each worker's public_url, else its listener; [workers.mail.public] for mail). Mail clients log in with "
      "the member's address, the others with their handle; the password is theirs or an app password.");
  settings->add_option("member", s->handle, "The member's handle")->required()->type_name("HANDLE");
  settings->add_flag("--json", s->json, "Print the settings as JSON");
  settings->callback([&globals, s] { run_settings(globals, *s); });

  auto o = std::make_shared<TakeoutOptions>();
  auto* cmd = member.add_subcommand(
      "takeout",
      "Write everything a member owns to a new folder, in standard formats\n\n"
      "Mail as Maildir and mbox, each calendar as .ics, each address book as .vcf, chat history as JSON (what "
      "`coop room export` writes), map markers as GeoJSON, the documents they own as the server keeps them "
      "(encrypted logs and attachments), their app passwords' labels and scopes, their login audit, and a "
      "README.txt that says what each file is. The folder is 0700 and every file 0600. Every worker that "
      "keeps a part must be running; one disabled in coop.toml is left out and README.txt says so.");
  cmd->add_option("member", o->handle, "The member's handle")->required()->type_name("HANDLE");
  cmd->add_option("-o,--out", o->out, "A new (or empty) folder")->required()->type_name("DIR");
  cmd->add_flag("--json", o->json, "Print a summary as JSON");
  cmd->callback([&globals, o] { run_takeout(globals, *o); });
}

}  // namespace coop::cli
