// coop dav ...: calendars and address books through coop-dav's control socket.
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/error.h"
#include "common/fs.h"

namespace coop::cli {

namespace {

using nlohmann::json;

std::string collection_path(const std::string& kind, const std::string& owner, const std::string& name) {
  return "/v1/collections/" + kind + "/" + path_segment(owner) + "/" + path_segment(name);
}

// coop dav calendar ... and coop dav addressbook ... are the same commands for two kinds.
void add_collection_commands(CLI::App& parent, Globals& globals, const std::string& kind, const std::string& word,
                             const std::string& extension) {
  auto* group = parent.add_subcommand(word, kind == "calendar" ? "Calendars (CalDAV)" : "Address books (CardDAV)");
  group->require_subcommand(1);
  struct Options {
    std::string name, owner, group, components, with, file, out, displayname;
    bool read_write = false, json = false;
  };
  auto add_target = [](CLI::App* cmd, Options& o) {
    cmd->add_option("name", o.name, "Its name (the last part of its path)")->required()->type_name("NAME");
    cmd->add_option("--owner", o.owner, "The member who owns it (coop for group and directory ones)")->required()->type_name("HANDLE");
  };

  auto create = std::make_shared<Options>();
  auto* cmd = group->add_subcommand("create", "Create one for a member, or for a working group");
  cmd->add_option("name", create->name, "Its name (the last part of its path)")->required()->type_name("NAME");
  auto* owner = cmd->add_option("--owner", create->owner, "The member who owns it")->type_name("HANDLE");
  cmd->add_option("--group", create->group, "A working group's own, writable by the group")->type_name("GROUP")->excludes(owner);
  cmd->add_option("--displayname", create->displayname, "The name clients show")->type_name("TEXT");
  if (kind == "calendar")
    cmd->add_option("--components", create->components, "Comma-separated: VEVENT,VTODO,VJOURNAL (default: all)")->type_name("LIST");
  cmd->add_flag("--json", create->json, "Print it as JSON");
  cmd->callback([&globals, create, kind] {
    if (!create->owner.empty()) require_member(globals, create->owner);
    if (!create->group.empty()) require_group(globals, create->group);
    WorkerCall call(globals, "dav", create->json);
    const auto c = call.call("POST", "/v1/collections",
                             json{{"kind", kind}, {"name", create->name}, {"owner", create->owner}, {"group", create->group},
                                  {"displayname", create->displayname.empty() ? create->name : create->displayname},
                                  {"components", create->components}});
    if (create->json) return print_json(c);
    std::cout << "Created " << c.value("path", "") << "\n";
  });

  auto list = std::make_shared<Options>();
  cmd = group->add_subcommand("list", "List them, with their sharing");
  cmd->add_option("--owner", list->owner, "Only this member's")->type_name("HANDLE");
  cmd->add_flag("--json", list->json, "Print them as JSON");
  cmd->callback([&globals, list, kind] {
    WorkerCall call(globals, "dav", list->json);
    const auto items = call.call("GET", "/v1/collections?kind=" + kind + (list->owner.empty() ? "" : "&owner=" + path_segment(list->owner)));
    if (list->json) return print_json(items);
    Table table({"PATH", "NAME", "OBJECTS", "SHARED WITH"});
    for (const auto& c : items) {
      std::string shares;
      for (const auto& s : c["shares"]) shares += (shares.empty() ? "" : " ") + s.value("with", "") + "(" + s.value("access", "") + ")";
      table.add_row({c.value("path", ""), c.value("displayname", ""), std::to_string(c.value("objects", 0)), shares.empty() ? "-" : shares});
    }
    table.print();
  });

  auto share = std::make_shared<Options>();
  cmd = group->add_subcommand("share", "Share with a member, a group or everyone");
  add_target(cmd, *share);
  cmd->add_option("--with", share->with, "member:HANDLE, group:NAME or everyone")->required()->type_name("WHO");
  cmd->add_flag("--read-write", share->read_write, "Let them change it (default: read-only)");
  cmd->add_flag("--json", share->json, "Print it as JSON");
  cmd->callback([&globals, share, kind] {
    require_grantee(globals, share->with);
    WorkerCall call(globals, "dav", share->json);
    const auto c = call.call("POST", collection_path(kind, share->owner, share->name) + "/shares",
                             json{{"with", share->with}, {"access", share->read_write ? "read-write" : "read"}});
    if (share->json) return print_json(c);
    std::cout << "Shared " << c.value("path", "") << " with " << share->with << "\n";
  });

  auto unshare = std::make_shared<Options>();
  cmd = group->add_subcommand("unshare", "Stop sharing with someone");
  add_target(cmd, *unshare);
  cmd->add_option("--with", unshare->with, "member:HANDLE, group:NAME or everyone")->required()->type_name("WHO");
  cmd->add_flag("--json", unshare->json, "Print it as JSON");
  cmd->callback([&globals, unshare, kind] {
    WorkerCall call(globals, "dav", unshare->json);
    const auto c = call.call("DELETE", collection_path(kind, unshare->owner, unshare->name) + "/shares/" + path_segment(unshare->with));
    if (unshare->json) return print_json(c);
    std::cout << "No longer shared with " << unshare->with << "\n";
  });

  auto remove = std::make_shared<Options>();
  cmd = group->add_subcommand("remove", "Remove it with everything in it");
  add_target(cmd, *remove);
  cmd->add_flag("--json", remove->json, "Print the result as JSON");
  cmd->callback([&globals, remove, kind] {
    WorkerCall call(globals, "dav", remove->json);
    const auto answer = call.call("DELETE", collection_path(kind, remove->owner, remove->name));
    if (remove->json) return print_json(answer);
    std::cout << "Removed " << remove->owner << "/" << remove->name << "\n";
  });

  auto import = std::make_shared<Options>();
  cmd = group->add_subcommand("import", "Import a " + extension + " file: every object or none");
  add_target(cmd, *import);
  cmd->add_option("file", import->file, "The " + extension + " file ('-': stdin)")->required()->type_name("FILE");
  cmd->add_flag("--json", import->json, "Print the result as JSON");
  cmd->callback([&globals, import, kind] {
    std::string text;
    if (import->file == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::ifstream in(import->file, std::ios::binary);
      if (!in) throw Error(errc::kIoError, "cannot read " + import->file, 400);
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    WorkerCall call(globals, "dav", import->json);
    const auto answer = json::parse(call.call_raw("POST", collection_path(kind, import->owner, import->name) + "/import", text));
    if (import->json) return print_json(answer);
    std::cout << "Imported " << answer.value("imported", 0) << " objects\n";
  });

  auto export_ = std::make_shared<Options>();
  cmd = group->add_subcommand("export", "Export it as one " + extension + " file");
  add_target(cmd, *export_);
  cmd->add_option("-o,--out", export_->out, "Write here instead of stdout")->type_name("FILE");
  cmd->callback([&globals, export_, kind] {
    WorkerCall call(globals, "dav", false);
    const auto text = call.call_raw("GET", collection_path(kind, export_->owner, export_->name) + "/export");
    if (export_->out.empty())
      std::cout << text;
    else
      write_file_durably(export_->out, text, 0600);
  });
}

}  // namespace

void add_dav_commands(CLI::App& app, Globals& globals) {
  auto* dav = app.add_subcommand("dav", "Shared calendars and contacts (CalDAV, CardDAV)");
  dav->require_subcommand(1);
  add_collection_commands(*dav, globals, "calendar", "calendar", ".ics");
  add_collection_commands(*dav, globals, "addressbook", "addressbook", ".vcf");
}

}  // namespace coop::cli
