// coop mail ...: hosted domains, aliases, mailboxes, and a member's mail exported or imported
// as Maildir or mbox, through coop-mail's control socket.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <vector>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/mail/mailbox_formats.h"
#include "common/mail/mailbox_name.h"

namespace coop::cli {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// A one-line progress report of an export or import; nothing under cron.
class Progress {
 public:
  void update(const std::string& what, int64_t count, int64_t total, uint64_t bytes) {
    char text[256];
    std::snprintf(text, sizeof text, "%s: %lld/%lld messages, %s", what.c_str(), static_cast<long long>(count),
                  static_cast<long long>(total), format_bytes(bytes).c_str());
    line_.show(text, count == total);
  }
  void done() { line_.done(); }

 private:
  ProgressLine line_;
};

std::string mailbox_path(const std::string& handle, const std::string& mailbox) {
  return "/v1/messages/" + path_segment(handle) + "/" + path_segment(mailbox);
}

// Where a mailbox goes under out. Maildir++: INBOX at the root, other mailboxes as .Level.Level
// folders. mbox: one file a mailbox, the levels above it as directories named "<level>.sbd"
// (the layout Thunderbird writes; mutt opens the files as they are). A name the store should
// never have accepted ("..", "a//b") is escaped whole into one file name, so that whatever a
// name holds, nothing is written outside out.
fs::path export_path(const fs::path& out, const std::string& name, bool maildir) {
  if (name.empty()) throw Error(errc::kInvalidMailbox, "a mailbox without a name cannot be exported", 500);
  const bool valid = mail::mailbox_name_problem(name).empty();
  fs::path path = out;
  if (maildir) {
    if (name != "INBOX") path /= valid ? mail::maildir_folder(name) : "." + mail::file_name_for_level(name);
  } else if (!valid) {
    path /= mail::file_name_for_level(name);
  } else {
    const auto levels = mail::mailbox_levels(name);
    for (std::size_t i = 0; i + 1 < levels.size(); ++i) path /= mail::file_name_for_level(levels[i]) + ".sbd";
    path /= mail::file_name_for_level(levels.back());
  }
  const auto relative = path.lexically_normal().lexically_relative(out.lexically_normal());
  if (relative.empty() || *relative.begin() == "..")
    throw Error(errc::kInvalidMailbox, "mailbox '" + name + "' would be written outside " + out.string(), 500);
  return path;
}

// The mailbox an mbox file below root stands for: its path's levels, "X.sbd" read as X.
std::optional<std::string> mailbox_of_mbox_file(const fs::path& root, const fs::path& file) {
  std::vector<std::string> parts;
  for (const auto& part : file.lexically_relative(root)) parts.push_back(part.string());
  std::string name;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string level = parts[i];
    const bool directory = i + 1 < parts.size();
    if (directory && level.size() > 4 && level.compare(level.size() - 4, 4, ".sbd") == 0) level.resize(level.size() - 4);
    const auto decoded = mail::level_from_file_name(level);
    if (!decoded) return std::nullopt;
    name += (name.empty() ? "" : "/") + *decoded;
  }
  if (!mail::mailbox_name_problem(name).empty()) return std::nullopt;
  return name;
}

// The envelope sender from the Return-Path that delivery put on top, for mbox From_ lines.
std::string envelope_sender(const std::string& bytes) {
  if (bytes.rfind("Return-Path: <", 0) != 0) return {};
  const auto end = bytes.find('>', 14);
  return end == std::string::npos ? std::string() : bytes.substr(14, end - 14);
}

struct ExportOptions {
  std::string handle, mailbox, format, out;
  bool json = false;
};

}  // namespace

MailExportCount export_mail(const Globals& globals, const std::string& handle, const std::string& format,
                            const std::string& mailbox, const std::filesystem::path& out, bool json_errors) {
  return format == "maildir" ? export_mail_formats(globals, handle, mailbox, out, {}, json_errors)
                             : export_mail_formats(globals, handle, mailbox, {}, out, json_errors);
}

MailExportCount export_mail_formats(const Globals& globals, const std::string& handle, const std::string& mailbox,
                                    const std::filesystem::path& maildir_out, const std::filesystem::path& mbox_out,
                                    bool json_errors) {
  require_member(globals, handle);
  WorkerCall call(globals, "mail", json_errors);
  std::vector<json> boxes;
  for (const auto& b : call.call("GET", "/v1/mailboxes/" + path_segment(handle)))
    if (mailbox.empty() || b.value("name", "") == mailbox) boxes.push_back(b);
  if (!mailbox.empty() && boxes.empty()) throw Error(errc::kNoSuchMailbox, handle + " has no mailbox '" + mailbox + "'", 404);
  const bool single = !mailbox.empty();
  for (const auto& out : {maildir_out, mbox_out}) {
    if (out.empty()) continue;
    if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
      throw Error(errc::kExists, out.string() + " exists and is not an empty directory; refusing to overwrite", 409);
    // A member's mail is theirs: the export is 0700 folders and 0600 files, whatever the umask.
    if (!single) {
      fs::create_directories(out);
      fs::permissions(out, fs::perms::owner_all);
    }
  }

  Progress progress;
  int64_t messages = 0;
  uint64_t bytes = 0;
  for (const auto& box : boxes) {
    const std::string name = box.value("name", "");
    const int64_t total = box.value("messages", int64_t{0});
    fs::path maildir;
    std::unique_ptr<std::ofstream> mbox_file;
    std::unique_ptr<mail::MboxWriter> mbox;
    mail::MaildirKeywords folder_keywords;  // this folder's dovecot-keywords
    if (!maildir_out.empty()) {
      maildir = single ? maildir_out : export_path(maildir_out, name, true);
      mail::maildir_create(maildir);
    }
    if (!mbox_out.empty()) {
      const fs::path file = single ? mbox_out : export_path(mbox_out, name, false);
      fs::create_directories(file.parent_path());
      if (const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); fd >= 0) ::close(fd);
      mbox_file = std::make_unique<std::ofstream>(file, std::ios::binary | std::ios::trunc);
      if (!*mbox_file) throw Error(errc::kIoError, "cannot write " + file.string(), 500);
      mbox = std::make_unique<mail::MboxWriter>([f = mbox_file.get()](std::string_view chunk) {
        f->write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      });
    }
    int64_t after = 0, done = 0;
    while (true) {
      const auto page = call.call("GET", mailbox_path(handle, name) + "?after_uid=" + std::to_string(after) + "&limit=500");
      if (page.empty()) break;
      for (const auto& m : page) {
        after = m.value("uid", int64_t{0});
        // Fetched once, written in every format asked for.
        const auto content = call.call_raw("GET", "/v1/blobs/" + m.value("blob", ""));
        const auto flags = m.value("flags", 0u);
        const auto date = m.value("internal_date", int64_t{0});
        const auto keywords = m.value("keywords", "");
        if (mbox) {
          mbox->begin_message(envelope_sender(content), date, flags, keywords);
          mbox->write(content);
          mbox->end_message();
        }
        if (!maildir.empty()) {
          // Named from the arrival time and UID, not the exporting process, so exporting the
          // same mailbox twice gives the same files.
          mail::maildir_deliver(maildir, std::to_string(date) + ".U" + std::to_string(after) + ".coop", flags, content,
                                folder_keywords.letters_for(keywords), mail::Durability::batch);
        }
        ++messages;
        ++done;
        bytes += content.size();
        progress.update(handle + " " + name, done, total, bytes);
      }
    }
    if (mbox_file) {
      mbox_file->flush();
      if (!*mbox_file) throw Error(errc::kIoError, "writing the mbox failed (disk full?)", 500);
    }
    if (!maildir.empty()) {
      folder_keywords.write(maildir);
      if (folder_keywords.dropped() > 0)
        std::cerr << "coop: " << name << ": " << folder_keywords.dropped()
                  << " keyword(s) past the 26 a Maildir folder can name were left out\n";
    }
  }
  progress.done();
  // One flush of the whole file system instead of two fsyncs a message (what made an export
  // of 10,000 messages spend most of its time in the kernel): the export is on disk before
  // the command says it is done.
  const auto& any = maildir_out.empty() ? mbox_out : maildir_out;
  const int dir_fd = ::open((single ? fs::absolute(any).parent_path() : any).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0 || ::syncfs(dir_fd) != 0) {
    if (dir_fd >= 0) ::close(dir_fd);
    throw Error(errc::kIoError, "cannot flush the export to disk", 500);
  }
  ::close(dir_fd);
  return {messages, bytes};
}

namespace {

void run_export(const Globals& globals, const ExportOptions& o) {
  const auto count = export_mail(globals, o.handle, o.format, o.mailbox, o.out, o.json);
  if (o.json)
    print_json({{"member", o.handle}, {"format", o.format}, {"out", o.out}, {"messages", count.messages}, {"bytes", count.bytes}});
  else if (stdout_is_terminal())
    std::cout << "Exported " << count.messages << (count.messages == 1 ? " message (" : " messages (")
              << format_bytes(count.bytes) << ") of " << o.handle << " to " << o.out << "\n";
}

struct ImportOptions {
  std::string handle, mailbox, format, path;
  bool json = false;
};

void run_import(const Globals& globals, const ImportOptions& o) {
  require_member(globals, o.handle);
  WorkerCall call(globals, "mail", o.json);
  const fs::path path(o.path);
  if (!fs::exists(path)) throw Error(errc::kIoError, o.path + " does not exist", 404);
  // (mailbox name, source) pairs: one Maildir or Maildir++ tree, one mbox file or a folder of them.
  std::vector<std::pair<std::string, fs::path>> sources;
  const std::string target = o.mailbox.empty() ? "INBOX" : o.mailbox;
  if (o.format == "maildir") {
    if (!fs::is_directory(path / "cur") && !fs::is_directory(path / "new"))
      throw Error(errc::kBadMaildir, o.path + " is not a Maildir (no cur/ or new/)", 400);
    sources.emplace_back(target, path);
    if (o.mailbox.empty())
      for (const auto& entry : fs::directory_iterator(path)) {
        const auto folder = entry.path().filename().string();
        if (!entry.is_directory() || folder.size() < 2 || folder[0] != '.') continue;
        if (const auto name = mail::mailbox_from_maildir_folder(folder)) sources.emplace_back(*name, entry.path());
        else std::cerr << "coop: skipping " << entry.path().string() << ": not a Maildir++ folder name\n";
      }
  } else if (fs::is_directory(path)) {
    // Dovecot's and mutt's layout (Projects/2026) and Thunderbird's (Projects.sbd/2026) alike.
    for (const auto& entry : fs::recursive_directory_iterator(path)) {
      // Dotfiles are the MUA's own (.subscriptions, .mutt_cache); exported names never start with ".".
      if (!entry.is_regular_file() || entry.path().filename().string().front() == '.') continue;
      if (const auto name = mailbox_of_mbox_file(path, entry.path())) sources.emplace_back(*name, entry.path());
      else std::cerr << "coop: skipping " << entry.path().string() << ": not a mailbox name\n";
    }
  } else {
    sources.emplace_back(target, path);
  }
  std::sort(sources.begin(), sources.end());

  Progress progress;
  int64_t added = 0, skipped = 0;
  uint64_t bytes = 0;
  // Messages go in batches: the worker makes a whole batch durable at once (one filesystem
  // sync and one index transaction) and only then answers, so nothing counted is lost.
  constexpr std::size_t kBatchBytes = 8 << 20, kBatchMessages = 1000;
  std::string batch, batch_mailbox;
  std::size_t in_batch = 0;
  auto send = [&] {
    if (in_batch == 0) return;
    const auto answer = json::parse(call.call_raw("POST", "/v1/import/" + path_segment(o.handle) + "/" + path_segment(batch_mailbox), batch));
    added += answer.value("added", int64_t{0});
    skipped += answer.value("existed", int64_t{0});
    batch.clear();
    in_batch = 0;
    progress.update("importing " + batch_mailbox, added + skipped, -1, bytes);
  };
  auto store = [&](const std::string& mailbox, const std::string& content, unsigned flags, int64_t date,
                   const std::string& keywords) {
    if (mailbox != batch_mailbox || batch.size() + content.size() > kBatchBytes || in_batch >= kBatchMessages) send();
    batch_mailbox = mailbox;
    batch += mail::import_record(content, flags, date, keywords);
    ++in_batch;
    bytes += content.size();
  };
  for (const auto& [mailbox, source] : sources) {
    if (o.format == "maildir") {
      const auto keyword_names = mail::MaildirKeywords::read(source);
      for (const auto& m : mail::maildir_list(source)) {
        std::ifstream in(m.path, std::ios::binary);
        const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        // The delivery time is the leading number of a Maildir unique name.
        int64_t date = std::strtoll(m.path.filename().c_str(), nullptr, 10);
        if (date <= 0) date = std::chrono::duration_cast<std::chrono::seconds>(
                                  fs::last_write_time(m.path).time_since_epoch()).count();
        store(mailbox, content, m.flags, date, keyword_names.keywords_of(mail::maildir_keyword_letters(m.path.filename().string())));
      }
    } else {
      std::ifstream in(source, std::ios::binary);
      mail::MboxReader reader([&in](char* buffer, std::size_t size) {
        in.read(buffer, static_cast<std::streamsize>(size));
        return static_cast<std::size_t>(in.gcount());
      }, mail::MboxLineEnding::kCrlf);
      std::string content, sender, keywords;
      unsigned flags = 0;
      int64_t date = 0;
      while (reader.next(content, flags, sender, date, keywords)) store(mailbox, content, flags, date, keywords);
    }
  }
  send();
  progress.done();
  if (o.json)
    print_json({{"member", o.handle}, {"format", o.format}, {"added", added}, {"already_there", skipped}, {"bytes", bytes}});
  else if (stdout_is_terminal())
    std::cout << "Imported " << added << " messages into " << o.handle << " (" << skipped << " already there)\n";
}

}  // namespace

void add_mail_commands(CLI::App& app, Globals& globals) {
  auto* mail_cmd = app.add_subcommand("mail", "Email: hosted domains, aliases, mailbox export and import, the outbound queue, DKIM");
  mail_cmd->require_subcommand(1);
  add_mail_out_commands(mail_cmd, globals);
  add_mail_spam_commands(mail_cmd, globals);

  {
    auto* domain = mail_cmd->add_subcommand("domain", "Domains the shard receives mail for");
    domain->require_subcommand(1);
    struct Options {
      std::string name, catch_all;
      bool json = false;
    };
    auto add = std::make_shared<Options>();
    auto* cmd = domain->add_subcommand("add", "Receive mail for a domain");
    cmd->add_option("domain", add->name, "The domain")->required()->type_name("DOMAIN");
    cmd->add_option("--catch-all", add->catch_all, "Member who gets mail for unknown addresses")->type_name("HANDLE");
    cmd->add_flag("--json", add->json, "Print the domain as JSON");
    cmd->callback([&globals, add] {
      WorkerCall call(globals, "mail", add->json);
      const auto d = call.call("POST", "/v1/domains", json{{"name", add->name}, {"catch_all", add->catch_all}});
      if (add->json) return print_json(d);
      std::cout << "Hosting mail for " << d.value("name", "") << "\n";
    });
    auto list = std::make_shared<Options>();
    cmd = domain->add_subcommand("list", "List hosted domains");
    cmd->add_flag("--json", list->json, "Print the domains as JSON");
    cmd->callback([&globals, list] {
      WorkerCall call(globals, "mail", list->json);
      const auto domains = call.call("GET", "/v1/domains");
      if (list->json) return print_json(domains);
      Table table({"DOMAIN", "CATCH-ALL"});
      for (const auto& d : domains)
        table.add_row({d.value("name", ""), d["catch_all"].is_string() ? d["catch_all"].get<std::string>() : "-"});
      table.print();
    });
    auto remove = std::make_shared<Options>();
    cmd = domain->add_subcommand("remove", "Stop receiving mail for a domain (stored mail stays)");
    cmd->add_option("domain", remove->name, "The domain")->required()->type_name("DOMAIN");
    cmd->add_flag("--json", remove->json, "Print the result as JSON");
    cmd->callback([&globals, remove] {
      WorkerCall call(globals, "mail", remove->json);
      const auto answer = call.call("DELETE", "/v1/domains/" + path_segment(remove->name));
      if (remove->json) return print_json(answer);
      std::cout << "No longer hosting " << remove->name << "\n";
    });
  }
  {
    auto* alias = mail_cmd->add_subcommand("alias", "Addresses that deliver to members, groups or other addresses");
    alias->require_subcommand(1);
    struct Options {
      std::string address;
      std::vector<std::string> targets;
      bool json = false;
    };
    auto add = std::make_shared<Options>();
    auto* cmd = alias->add_subcommand("add", "Add an alias");
    cmd->add_option("address", add->address, "The alias, on a hosted domain")->required()->type_name("ADDRESS");
    cmd->add_option("targets", add->targets, "Member handles, group names or hosted addresses")->required()->type_name("TARGET");
    cmd->add_flag("--json", add->json, "Print the alias as JSON");
    cmd->callback([&globals, add] {
      WorkerCall call(globals, "mail", add->json);
      const auto a = call.call("POST", "/v1/aliases", json{{"address", add->address}, {"targets", add->targets}});
      if (add->json) return print_json(a);
      std::cout << "Alias " << a.value("address", "") << " delivers to " << add->targets.size() << " target(s)\n";
    });
    auto list = std::make_shared<Options>();
    cmd = alias->add_subcommand("list", "List aliases");
    cmd->add_flag("--json", list->json, "Print the aliases as JSON");
    cmd->callback([&globals, list] {
      WorkerCall call(globals, "mail", list->json);
      const auto aliases = call.call("GET", "/v1/aliases");
      if (list->json) return print_json(aliases);
      Table table({"ALIAS", "TARGETS"});
      for (const auto& a : aliases) {
        std::string targets;
        for (const auto& t : a.value("targets", json::array())) targets += (targets.empty() ? "" : " ") + t.get<std::string>();
        table.add_row({a.value("address", ""), targets});
      }
      table.print();
    });
    auto remove = std::make_shared<Options>();
    cmd = alias->add_subcommand("remove", "Remove an alias");
    cmd->add_option("address", remove->address, "The alias")->required()->type_name("ADDRESS");
    cmd->add_flag("--json", remove->json, "Print the result as JSON");
    cmd->callback([&globals, remove] {
      WorkerCall call(globals, "mail", remove->json);
      const auto answer = call.call("DELETE", "/v1/aliases/" + path_segment(remove->address));
      if (remove->json) return print_json(answer);
      std::cout << "Removed alias " << remove->address << "\n";
    });
  }
  {
    struct Options {
      std::string handle;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = mail_cmd->add_subcommand("mailboxes", "A member's mailboxes with message counts");
    cmd->add_option("member", o->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_flag("--json", o->json, "Print the mailboxes as JSON");
    cmd->callback([&globals, o] {
      require_member(globals, o->handle);
      WorkerCall call(globals, "mail", o->json);
      const auto boxes = call.call("GET", "/v1/mailboxes/" + path_segment(o->handle));
      if (o->json) return print_json(boxes);
      Table table({"MAILBOX", "SPECIAL-USE", "MESSAGES", "UNSEEN", "BYTES", "UIDVALIDITY", "UIDNEXT"});
      for (const auto& b : boxes)
        table.add_row({b.value("name", ""), b.value("special_use", ""), std::to_string(b.value("messages", 0)),
                       std::to_string(b.value("unseen", 0)), std::to_string(b.value("bytes", 0)),
                       std::to_string(b.value("uidvalidity", 0)), std::to_string(b.value("uidnext", 0))});
      table.print();
    });
  }
  {
    auto o = std::make_shared<ExportOptions>();
    auto* cmd = mail_cmd->add_subcommand("export", "Export a member's mail as Maildir or mbox (mboxrd)");
    cmd->add_option("member", o->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_option("--mailbox", o->mailbox, "Only this mailbox; PATH is then one Maildir or one mbox file")->type_name("MAILBOX");
    cmd->add_option("--format", o->format, "maildir or mbox")->required()->check(CLI::IsMember({"maildir", "mbox"}))->type_name("FORMAT");
    cmd->add_option("-o,--out", o->out, "Where to write: a new directory; Maildir++ (folders .Projects.2026) or one mbox file a mailbox (children of Projects in Projects.sbd/)")->required()->type_name("PATH");
    cmd->add_flag("--json", o->json, "Print a summary as JSON");
    cmd->callback([&globals, o] { run_export(globals, *o); });
  }
  {
    auto o = std::make_shared<ImportOptions>();
    auto* cmd = mail_cmd->add_subcommand("import", "Import Maildir or mbox into a member's mail; a second run adds nothing");
    cmd->add_option("member", o->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_option("--format", o->format, "maildir or mbox")->required()->check(CLI::IsMember({"maildir", "mbox"}))->type_name("FORMAT");
    cmd->add_option("--mailbox", o->mailbox, "Into this mailbox (default: INBOX, and Maildir++ folders by name)")->type_name("MAILBOX");
    cmd->add_option("path", o->path, "A Maildir (and its Maildir++ folders), an mbox file, or a directory of mbox files (Projects/2026 or Projects.sbd/2026)")->required()->type_name("PATH");
    cmd->add_flag("--json", o->json, "Print a summary as JSON");
    cmd->callback([&globals, o] { run_import(globals, *o); });
  }
}

}  // namespace coop::cli
