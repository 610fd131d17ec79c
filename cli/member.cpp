// coop member ...: the member registry, through coop-member's control socket.
#include <CLI/CLI.hpp>
#include <termios.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/auth/member_client.h"
#include "common/error.h"
#include "common/fs.h"

namespace coop::cli {

namespace {

using nlohmann::json;

std::string join_strings(const json& list, const char* separator = ", ") {
  std::string out;
  for (const auto& item : list) out += (out.empty() ? "" : separator) + item.get<std::string>();
  return out;
}

std::string read_stdin_password() {
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

// Prompts on the terminal with echo off, twice; the password never appears on screen.
std::string prompt_password() {
  auto read_hidden = [](const char* prompt) {
    std::cerr << prompt << std::flush;
    termios old{};
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::string line;
    std::getline(std::cin, line);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << '\n';
    return line;
  };
  const auto first = read_hidden("New password: ");
  if (read_hidden("Again: ") != first) throw Error(errc::kUsage, "the passwords differ", 400);
  return first;
}

struct PasswordSource {
  bool from_stdin = false;
  bool generate = false;
};

// Adds the password fields to a request body; returns whether a password was given.
bool add_password(json& body, const PasswordSource& source, bool prompt_when_absent) {
  if (source.generate) {
    body["generate_password"] = true;
    return true;
  }
  if (source.from_stdin) {
    body["password"] = read_stdin_password();
    return true;
  }
  if (prompt_when_absent) {
    body["password"] = ::isatty(STDIN_FILENO) ? prompt_password() : read_stdin_password();
    return true;
  }
  return false;
}

void print_member(const json& m) {
  const std::string status = m.value("status", "");
  std::cout << m.value("handle", "") << (m.value("name", "").empty() ? "" : " (" + m.value("name", "") + ")") << "\n";
  std::cout << "  status    " << paint(status, status == "active" ? Colour::green : Colour::red)
            << (m.contains("status_reason") ? " (" + m.value("status_reason", "") + ")" : "") << "\n"
            << "  role      " << m.value("role", "") << "\n"
            << "  emails    " << join_strings(m.value("emails", json::array())) << "\n"
            << "  groups    " << join_strings(m.value("groups", json::array())) << "\n"
            << "  quota     " << (m.value("quota_bytes", 0) == 0 ? std::string("none") : std::to_string(m.value("quota_bytes", int64_t{0})) + " bytes") << "\n"
            << "  password  " << (m.value("has_password", false) ? "set" : "not set") << "\n"
            << "  created   " << m.value("created_at", "") << "\n"
            << "  updated   " << m.value("updated_at", "") << "\n";
}

void print_members(const json& list) {
  Table table({"HANDLE", "NAME", "STATUS", "ROLE", "GROUPS", "EMAILS"});
  for (const auto& m : list) {
    const std::string status = m.value("status", "");
    table.add_row({m.value("handle", ""), m.value("name", ""), status, m.value("role", ""),
                   join_strings(m.value("groups", json::array()), ","), join_strings(m.value("emails", json::array()), ",")},
                  {Colour::none, Colour::none, status == "active" ? Colour::green : Colour::red});
  }
  table.print();
}

std::string member_path(const std::string& handle) { return "/v1/members/" + path_segment(handle); }

void show_generated(const json& answer) {
  if (answer.contains("password"))
    std::cout << "Password (shown once): " << answer["password"].get<std::string>() << "\n";
}

}  // namespace

void add_member_commands(CLI::App& app, Globals& globals) {
  auto* member = app.add_subcommand("member", "The member registry: one identity for every protocol");
  member->require_subcommand(1);

  {  // member add
    struct Options {
      std::string handle, name, role = "member";
      std::vector<std::string> emails, groups;
      int64_t quota = 0;
      PasswordSource password;
      bool json = false, create_groups = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("add", "Add a member");
    cmd->add_option("handle", o->handle, "Lowercase handle: the Matrix localpart and mail local part")->required()->type_name("HANDLE");
    cmd->add_option("--name", o->name, "Display name")->type_name("NAME");
    cmd->add_option("--email", o->emails, "An email address (repeatable)")->type_name("ADDRESS");
    cmd->add_option("--group", o->groups, "A working group to join (repeatable)")->type_name("GROUP");
    cmd->add_flag("--create-groups", o->create_groups, "Create the groups named by --group that do not exist yet");
    cmd->add_option("--role", o->role, "admin, member or guest")->check(CLI::IsMember({"admin", "member", "guest"}))->capture_default_str()->type_name("ROLE");
    cmd->add_option("--quota", o->quota, "Storage quota in bytes (0: none)")->type_name("BYTES");
    auto* from_stdin = cmd->add_flag("--password-stdin", o->password.from_stdin, "Read the password from stdin");
    cmd->add_flag("--generate-password", o->password.generate, "Generate a password and print it once")->excludes(from_stdin);
    cmd->add_flag("--json", o->json, "Print the member as JSON");
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "member", o->json);
      json body = {{"handle", o->handle}, {"name", o->name}, {"emails", o->emails},
                   {"groups", o->groups}, {"role", o->role}, {"quota_bytes", o->quota},
                   {"create_groups", o->create_groups}};
      add_password(body, o->password, false);
      const auto answer = call.call("POST", "/v1/members", body);
      if (o->json) return print_json(answer);
      std::cout << "Added member " << answer.value("handle", "") << "\n";
      show_generated(answer);
    });
  }
  {  // member list
    struct Options {
      std::string status, group;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("list", "List members");
    cmd->add_option("--status", o->status, "active, suspended or removed")->check(CLI::IsMember({"active", "suspended", "removed"}))->type_name("STATUS");
    cmd->add_option("--group", o->group, "Only members of this group or its subgroups")->type_name("GROUP");
    cmd->add_flag("--json", o->json, "Print the members as JSON");
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "member", o->json);
      std::string query;
      if (!o->status.empty()) query += "status=" + path_segment(o->status);
      if (!o->group.empty()) query += (query.empty() ? "" : "&") + std::string("group=") + path_segment(o->group);
      const auto list = call.call("GET", "/v1/members" + (query.empty() ? "" : "?" + query));
      if (o->json) return print_json(list);
      print_members(list);
    });
  }
  {  // member show
    struct Options {
      std::string handle;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("show", "Show one member");
    cmd->add_option("handle", o->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_flag("--json", o->json, "Print the member as JSON");
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "member", o->json);
      const auto m = call.call("GET", member_path(o->handle));
      if (o->json) return print_json(m);
      print_member(m);
    });
  }
  {  // member set
    struct Options {
      std::string handle;
      std::optional<std::string> name, role;
      std::optional<int64_t> quota;
      std::vector<std::string> emails, add_emails, remove_emails, add_groups, remove_groups;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("set", "Change a member's name, addresses, role, quota or groups");
    cmd->add_option("handle", o->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_option("--name", o->name, "New display name")->type_name("NAME");
    auto* emails = cmd->add_option("--email", o->emails, "Replace all addresses with these (repeatable)")->type_name("ADDRESS");
    cmd->add_option("--add-email", o->add_emails, "Add an address (repeatable)")->type_name("ADDRESS")->excludes(emails);
    cmd->add_option("--remove-email", o->remove_emails, "Remove an address (repeatable)")->type_name("ADDRESS")->excludes(emails);
    cmd->add_option("--role", o->role, "admin, member or guest")->check(CLI::IsMember({"admin", "member", "guest"}))->type_name("ROLE");
    cmd->add_option("--quota", o->quota, "Storage quota in bytes (0: none)")->type_name("BYTES");
    cmd->add_option("--add-group", o->add_groups, "Join a group (repeatable)")->type_name("GROUP");
    cmd->add_option("--remove-group", o->remove_groups, "Leave a group (repeatable)")->type_name("GROUP");
    cmd->add_flag("--json", o->json, "Print the member as JSON");
    cmd->callback([&globals, o] {
      json body = json::object();
      if (o->name) body["name"] = *o->name;
      if (o->role) body["role"] = *o->role;
      if (o->quota) body["quota_bytes"] = *o->quota;
      if (!o->emails.empty()) body["emails"] = o->emails;
      if (!o->add_emails.empty()) body["add_emails"] = o->add_emails;
      if (!o->remove_emails.empty()) body["remove_emails"] = o->remove_emails;
      if (!o->add_groups.empty()) body["add_groups"] = o->add_groups;
      if (!o->remove_groups.empty()) body["remove_groups"] = o->remove_groups;
      if (body.empty()) throw Error(errc::kUsage, "nothing to change: give at least one option (see --help)", 400);
      WorkerCall call(globals, "member", o->json);
      const auto m = call.call("PATCH", member_path(o->handle), body);
      if (o->json) return print_json(m);
      print_member(m);
    });
  }
  {  // member passwd
    struct Options {
      std::string handle;
      PasswordSource password;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("passwd", "Set a member's account password (prompts on a terminal)");
    cmd->add_option("handle", o->handle, "The member's handle")->required()->type_name("HANDLE");
    auto* from_stdin = cmd->add_flag("--password-stdin", o->password.from_stdin, "Read the password from stdin");
    cmd->add_flag("--generate-password", o->password.generate, "Generate a password and print it once")->excludes(from_stdin);
    cmd->add_flag("--json", o->json, "Print the result as JSON");
    cmd->callback([&globals, o] {
      json body = json::object();
      add_password(body, o->password, true);
      WorkerCall call(globals, "member", o->json);
      const auto answer = call.call("PUT", member_path(o->handle) + "/password", body);
      if (o->json) return print_json(answer);
      std::cout << "Password changed for " << o->handle << "\n";
      show_generated(answer);
    });
  }
  {  // member suspend / reinstate / remove
    struct Options {
      std::string handle, reason;
      bool purge = false, json = false;
    };
    auto suspend = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("suspend", "Suspend a member: every protocol refuses them, their sessions end");
    cmd->add_option("handle", suspend->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_option("--reason", suspend->reason, "Why, for the record")->type_name("TEXT");
    cmd->add_flag("--json", suspend->json, "Print the member as JSON");
    cmd->callback([&globals, suspend] {
      WorkerCall call(globals, "member", suspend->json);
      const auto m = call.call("POST", member_path(suspend->handle) + "/suspend", json{{"reason", suspend->reason}});
      if (suspend->json) return print_json(m);
      std::cout << "Suspended " << suspend->handle << "\n";
    });

    auto reinstate = std::make_shared<Options>();
    cmd = member->add_subcommand("reinstate", "Reinstate a suspended member");
    cmd->add_option("handle", reinstate->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_flag("--json", reinstate->json, "Print the member as JSON");
    cmd->callback([&globals, reinstate] {
      WorkerCall call(globals, "member", reinstate->json);
      const auto m = call.call("POST", member_path(reinstate->handle) + "/reinstate", json::object());
      if (reinstate->json) return print_json(m);
      std::cout << "Reinstated " << reinstate->handle << "\n";
    });

    auto remove = std::make_shared<Options>();
    cmd = member->add_subcommand("remove", "Remove a member; the handle is never reused");
    cmd->add_option("handle", remove->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_flag("--purge", remove->purge, "Also erase their name, addresses and group memberships");
    cmd->add_flag("--json", remove->json, "Print the member as JSON");
    cmd->callback([&globals, remove] {
      WorkerCall call(globals, "member", remove->json);
      const auto m = call.call("DELETE", member_path(remove->handle) + (remove->purge ? "?purge=true" : ""));
      if (remove->json) return print_json(m);
      std::cout << (remove->purge ? "Removed and purged " : "Removed ") << remove->handle << "\n";
    });
  }
  {  // member import / export
    struct ImportOptions {
      std::string file;
      bool json = false, create_groups = false;
    };
    auto o = std::make_shared<ImportOptions>();
    auto* cmd = member->add_subcommand(
        "import",
        "Import members from CSV: every row or none\n\n"
        "The file is RFC 4180 CSV in UTF-8 with a header row naming its columns, in any order: handle (required), "
        "name, emails, groups, role, status, quota_bytes. Several addresses or groups in one field are separated by "
        "';' (\"alice@example.org;a.liddell@example.org\"); a field holding a comma or a quote is quoted, with "
        "quotes doubled. role is admin, member (the default) or guest; status is active (the default), suspended or, "
        "in a file `coop member export` wrote, removed (the handle then stays retired); quota_bytes 0 means none. "
        "The file holds no passwords: an imported member cannot log in until `coop member passwd HANDLE` or an "
        "admin sets one. Groups must exist unless --create-groups is given, which creates the missing ones at the "
        "top level (nest them afterwards with `coop member group`). Any bad row (an unknown column, a handle or "
        "address already taken, an unknown group) stops the import with its line number, and nothing is added. "
        "`coop member export --format csv` writes the same columns, so export and import move a registry to a "
        "new shard.");
    cmd->add_option("file", o->file, "CSV with a header: handle,name,emails,groups,role,status,quota_bytes ('-': stdin)")
        ->required()->type_name("FILE");
    cmd->add_flag("--create-groups", o->create_groups, "Create the groups the file names that do not exist yet");
    cmd->add_flag("--json", o->json, "Print the result as JSON");
    // The body is the CSV itself; the worker parses and validates it in one transaction.
    cmd->callback([&globals, o] {
      std::string text;
      if (o->file == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      } else {
        std::ifstream in(o->file, std::ios::binary);
        if (!in) throw Error(errc::kIoError, "cannot read " + o->file, 400);
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      WorkerCall call(globals, "member", o->json);
      const auto answer = json::parse(
          call.call_raw("POST", std::string("/v1/import/members") + (o->create_groups ? "?create_groups=true" : ""), text));
      if (o->json) return print_json(answer);
      const auto imported = answer.value("imported", 0);
      std::cout << "Imported " << imported << (imported == 1 ? " member\n" : " members\n");
    });

    struct ExportOptions {
      std::string format = "csv", output, status;
    };
    auto e = std::make_shared<ExportOptions>();
    cmd = member->add_subcommand("export", "Export every member as CSV or JSON");
    cmd->add_option("--format", e->format, "csv or json")->check(CLI::IsMember({"csv", "json"}))->capture_default_str()->type_name("FORMAT");
    cmd->add_option("--status", e->status, "Only members with this status")->check(CLI::IsMember({"active", "suspended", "removed"}))->type_name("STATUS");
    cmd->add_option("-o,--out", e->output, "Write to this file instead of stdout")->type_name("FILE");
    cmd->callback([&globals, e] {
      WorkerCall call(globals, "member", false);
      std::string path = "/v1/export/members?format=" + e->format;
      if (!e->status.empty()) path += "&status=" + e->status;
      auto text = call.call_raw("GET", path);
      if (e->format == "json") text = json::parse(text).dump(2) + "\n";
      if (e->output.empty())
        std::cout << text;
      else
        write_file_durably(e->output, text, 0600);
    });
  }
  add_takeout_command(*member, globals);
  {  // member group ...
    auto* group = member->add_subcommand("group", "Working groups; groups nest");
    group->require_subcommand(1);
    struct Options {
      std::string name, parent, description;
      bool direct = false, json = false;
    };
    auto add = std::make_shared<Options>();
    auto* cmd = group->add_subcommand("add", "Create a group");
    cmd->add_option("name", add->name, "Group name: a-z, 0-9, '_', '-'")->required()->type_name("GROUP");
    cmd->add_option("--parent", add->parent, "Make it a subgroup of this group")->type_name("GROUP");
    cmd->add_option("--description", add->description, "What the group is for")->type_name("TEXT");
    cmd->add_flag("--json", add->json, "Print the group as JSON");
    cmd->callback([&globals, add] {
      WorkerCall call(globals, "member", add->json);
      const auto g = call.call("POST", "/v1/groups", json{{"name", add->name}, {"parent", add->parent}, {"description", add->description}});
      if (add->json) return print_json(g);
      std::cout << "Created group " << add->name << (add->parent.empty() ? "" : " in " + add->parent) << "\n";
    });

    auto remove = std::make_shared<Options>();
    cmd = group->add_subcommand("remove", "Remove a group (its members stay members)");
    cmd->add_option("name", remove->name, "Group name")->required()->type_name("GROUP");
    cmd->add_flag("--json", remove->json, "Print the result as JSON");
    cmd->callback([&globals, remove] {
      WorkerCall call(globals, "member", remove->json);
      const auto answer = call.call("DELETE", "/v1/groups/" + path_segment(remove->name));
      if (remove->json) return print_json(answer);
      std::cout << "Removed group " << remove->name << "\n";
    });

    auto list = std::make_shared<Options>();
    cmd = group->add_subcommand("list", "List groups");
    cmd->add_flag("--json", list->json, "Print the groups as JSON");
    cmd->callback([&globals, list] {
      WorkerCall call(globals, "member", list->json);
      const auto groups = call.call("GET", "/v1/groups");
      if (list->json) return print_json(groups);
      Table table({"GROUP", "PARENT", "MEMBERS", "DESCRIPTION"});
      for (const auto& g : groups)
        table.add_row({g.value("name", ""), g["parent"].is_string() ? g["parent"].get<std::string>() : "-",
                       std::to_string(g.value("direct_members", 0)), g.value("description", "")});
      table.print();
    });

    auto members = std::make_shared<Options>();
    cmd = group->add_subcommand("members", "List a group's members, including its subgroups'");
    cmd->add_option("name", members->name, "Group name")->required()->type_name("GROUP");
    cmd->add_flag("--direct", members->direct, "Only the group's own members");
    cmd->add_flag("--json", members->json, "Print the members as JSON");
    cmd->callback([&globals, members] {
      WorkerCall call(globals, "member", members->json);
      const auto list = call.call("GET", "/v1/groups/" + path_segment(members->name) + "/members" +
                                             (members->direct ? "?direct=true" : ""));
      if (members->json) return print_json(list);
      print_members(list);
    });
  }
  {  // member app-password ...
    auto* apps = member->add_subcommand("app-password", "Per-device passwords, limited to some protocols");
    apps->require_subcommand(1);
    struct Options {
      std::string handle, label, scope;
      bool json = false;
    };
    auto add = std::make_shared<Options>();
    auto* cmd = apps->add_subcommand("add", "Create an app password (also a Bearer token for HTTP APIs such as JMAP); it is shown once");
    cmd->add_option("handle", add->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_option("--label", add->label, "Which device or program it is for")->required()->type_name("LABEL");
    cmd->add_option("--scope", add->scope, "Comma-separated: mail, dav (or only calendars, contacts, files), room, docs, tiles, site, federate (default: all)")->type_name("SCOPES");
    cmd->add_flag("--json", add->json, "Print the result as JSON");
    cmd->callback([&globals, add] {
      WorkerCall call(globals, "member", add->json);
      const auto answer = call.call("POST", member_path(add->handle) + "/app-passwords",
                                    json{{"label", add->label}, {"scopes", add->scope}});
      if (add->json) return print_json(answer);
      std::cout << "App password for " << add->handle << " (" << add->label << "; "
                << join_strings(answer.value("scopes", json::array()), ",") << "), shown once:\n"
                << answer.value("password", "") << "\n";
    });

    auto list = std::make_shared<Options>();
    cmd = apps->add_subcommand("list", "List a member's app passwords");
    cmd->add_option("handle", list->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_flag("--json", list->json, "Print them as JSON");
    cmd->callback([&globals, list] {
      WorkerCall call(globals, "member", list->json);
      const auto items = call.call("GET", member_path(list->handle) + "/app-passwords");
      if (list->json) return print_json(items);
      Table table({"LABEL", "SCOPES", "CREATED", "LAST USED"});
      for (const auto& p : items)
        table.add_row({p.value("label", ""), join_strings(p.value("scopes", json::array()), ","), p.value("created_at", ""),
                       p["last_used_at"].is_string() ? p["last_used_at"].get<std::string>() : "never"});
      table.print();
    });

    auto revoke = std::make_shared<Options>();
    cmd = apps->add_subcommand("revoke", "Revoke an app password; sessions using it end");
    cmd->add_option("handle", revoke->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_option("--label", revoke->label, "Which one")->required()->type_name("LABEL");
    cmd->add_flag("--json", revoke->json, "Print the result as JSON");
    cmd->callback([&globals, revoke] {
      WorkerCall call(globals, "member", revoke->json);
      const auto answer = call.call("DELETE", member_path(revoke->handle) + "/app-passwords/" + path_segment(revoke->label));
      if (revoke->json) return print_json(answer);
      std::cout << "Revoked app password " << revoke->label << " of " << revoke->handle << "\n";
    });
  }
  {  // member verify
    struct Options {
      std::string user, protocol = "mail", source = "cli";
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("verify", "Check a login as a protocol would (password on stdin); it is audited and throttled like one");
    cmd->add_option("user", o->user, "Handle or email address")->required()->type_name("USER");
    cmd->add_option("--protocol", o->protocol, "mail, dav, room, docs, tiles, site or federate")->capture_default_str()->type_name("PROTOCOL");
    cmd->add_option("--source", o->source, "Client address to record and throttle by")->capture_default_str()->type_name("ADDRESS");
    cmd->add_flag("--json", o->json, "Print the result as JSON");
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "member", o->json);
      const auto answer = call.call("POST", "/v1/auth/verify",
                                    json{{"user", o->user}, {"password", read_stdin_password()},
                                         {"protocol", o->protocol}, {"source", o->source}});
      if (o->json) return print_json(answer);
      std::cout << "ok: " << answer.value("handle", "") << " with " << answer.value("credential", "") << " for "
                << o->protocol << "\n";
    });
  }
  {  // member events
    struct Options {
      int64_t since = 0;
      bool follow = false, json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("events", "The registry's change feed, as every worker follows it");
    cmd->add_option("--since", o->since, "Only events after this sequence number")->capture_default_str()->type_name("SEQ");
    cmd->add_flag("-f,--follow", o->follow, "Keep printing events as they happen");
    cmd->add_flag("--json", o->json, "One JSON object per line");
    cmd->callback([&globals, o] {
      auto print_event = [o](const auth::MemberEvent& e) {
        if (o->json)
          std::cout << json{{"seq", e.seq}, {"kind", e.kind}, {"handle", e.handle}, {"detail", json::parse(e.detail)}}.dump() << "\n";
        else
          std::cout << e.seq << "  " << e.kind << "  " << (e.handle.empty() ? "-" : e.handle) << "  " << e.detail << "\n";
        std::cout.flush();
      };
      if (o->follow) {
        auth::MemberEventFollower follower(globals.resolve_home(), o->since, print_event);
        while (true) std::this_thread::sleep_for(std::chrono::hours(1));  // until Ctrl-C
      }
      WorkerCall call(globals, "member", o->json);
      const auto answer = call.call("GET", "/v1/events?timeout_ms=0&since=" + std::to_string(o->since));
      for (const auto& e : answer.value("events", json::array()))
        print_event({e.value("seq", int64_t{0}), e.value("kind", ""), e.value("handle", ""), e["detail"].dump()});
    });
  }
  {  // member audit
    struct Options {
      std::string handle;
      int limit = 50;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = member->add_subcommand("audit", "Recent logins and failed attempts, newest first");
    cmd->add_option("handle", o->handle, "Only this member")->type_name("HANDLE");
    cmd->add_option("-n,--limit", o->limit, "How many entries")->capture_default_str();
    cmd->add_flag("--json", o->json, "Print the entries as JSON");
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "member", o->json);
      std::string path = "/v1/audit?limit=" + std::to_string(o->limit);
      if (!o->handle.empty()) path += "&handle=" + path_segment(o->handle);
      const auto entries = call.call("GET", path);
      if (o->json) return print_json(entries);
      Table table({"TIME", "MEMBER", "PROTOCOL", "SOURCE", "OUTCOME", "CREDENTIAL"});
      for (const auto& e : entries) {
        const std::string outcome = e.value("outcome", "");
        table.add_row({e.value("at", ""), e.value("handle", ""), e.value("protocol", ""), e.value("source", ""), outcome,
                       e.value("credential", "")},
                      {Colour::none, Colour::none, Colour::none, Colour::none, outcome == "ok" ? Colour::green : Colour::red});
      }
      table.print();
    });
  }
}

}  // namespace coop::cli
