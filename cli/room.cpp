// coop room ...: Matrix rooms and Spaces, and a member's chat export, through coop-room.
#include <CLI/CLI.hpp>

#include <ctime>
#include <iostream>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/error.h"
#include "common/fs.h"

namespace coop::cli {

namespace {

using nlohmann::json;

std::string text_or_dash(const json& value) { return value.is_string() && !value.get<std::string>().empty() ? value.get<std::string>() : "-"; }

void print_room(const json& r) {
  std::cout << text_or_dash(r["name"]) << " (" << r.value("type", "") << ")\n"
            << "  id          " << r.value("room_id", "") << "\n"
            << "  alias       " << text_or_dash(r["alias"]) << "\n"
            << "  topic       " << text_or_dash(r["topic"]) << "\n"
            << "  join rule   " << r.value("join_rule", "") << "\n"
            << "  members     " << r.value("joined_members", 0) << " joined\n";
  if (r.contains("managed")) std::cout << "  managed     " << r.value("managed", "") << (r.contains("group") ? " of group " + r.value("group", "") : "") << "\n";
  if (!r.value("children", json::array()).empty()) std::cout << "  children    " << r["children"].size() << "\n";
  if (!r.value("parents", json::array()).empty()) std::cout << "  in Space    " << r["parents"][0].get<std::string>() << "\n";
}

// "90" (seconds), "90s", "30m", "2h", "1d", "1h30m": seconds. Units run from days down to
// seconds, each at most once; coop::Error(kUsage) for anything else ("1h30", "1d1d", "").
int64_t parse_duration(const std::string& text) {
  const auto bad = [&text] { return Error(errc::kUsage, "'" + text + "' is not a time such as 90s, 30m, 2h or 1d"); };
  if (text.empty() || text.size() > 16) throw bad();
  if (text.find_first_not_of("0123456789") == std::string::npos) return std::stoll(text);
  static constexpr std::pair<char, int64_t> kUnits[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
  int64_t total = 0;
  std::size_t at = 0, next_unit = 0;
  while (at < text.size()) {
    const auto digits_end = text.find_first_not_of("0123456789", at);
    if (digits_end == at || digits_end == std::string::npos) throw bad();
    while (next_unit < std::size(kUnits) && kUnits[next_unit].first != text[digits_end]) ++next_unit;
    if (next_unit == std::size(kUnits)) throw bad();
    total += std::stoll(text.substr(at, digits_end - at)) * kUnits[next_unit++].second;
    at = digits_end + 1;
  }
  return total;
}

}  // namespace

void add_room_commands(CLI::App& app, Globals& globals) {
  auto* room = app.add_subcommand("room", "Matrix chat: rooms, Spaces and chat history export");
  room->require_subcommand(1);

  {
    auto* space = room->add_subcommand("space", "Spaces that group rooms; every active member is in the cooperative's");
    space->require_subcommand(1);
    struct Options {
      std::string name, group;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = space->add_subcommand("create", "Create a Space, optionally for a working group's members");
    cmd->add_option("name", o->name, "The Space's name")->required()->type_name("NAME");
    cmd->add_option("--group", o->group, "Admit exactly this group's active members (kept in step)")->type_name("GROUP");
    cmd->add_flag("--json", o->json, "Print the Space as JSON");
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "room", o->json);
      const auto r = call.call("POST", "/v1/spaces", json{{"name", o->name}, {"group", o->group}});
      if (o->json) return print_json(r);
      std::cout << "Created Space " << o->name << " " << r.value("room_id", "") << "\n";
    });
  }
  {
    struct Options {
      std::string name, space;
      bool is_public = false, json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = room->add_subcommand("create", "Create a room, optionally in a Space whose members may join it");
    cmd->add_option("name", o->name, "The room's name")->required()->type_name("NAME");
    cmd->add_option("--space", o->space, "The Space (ID, alias or name) it belongs to")->type_name("SPACE");
    cmd->add_flag("--public", o->is_public, "Anyone on the shard may join and find it in the directory");
    cmd->add_flag("--json", o->json, "Print the room as JSON");
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "room", o->json);
      const auto r = call.call("POST", "/v1/rooms", json{{"name", o->name}, {"space", o->space}, {"public", o->is_public}});
      if (o->json) return print_json(r);
      std::cout << "Created room " << o->name << " " << r.value("room_id", "") << "\n";
    });
  }
  {
    struct Options {
      std::string room;
      bool json = false;
    };
    auto list = std::make_shared<Options>();
    auto* cmd = room->add_subcommand("list", "List rooms and Spaces");
    cmd->add_flag("--json", list->json, "Print them as JSON");
    cmd->callback([&globals, list] {
      WorkerCall call(globals, "room", list->json);
      const auto rooms = call.call("GET", "/v1/rooms");
      if (list->json) return print_json(rooms);
      Table table({"NAME", "TYPE", "JOIN RULE", "MEMBERS", "ROOM ID"});
      for (const auto& r : rooms)
        table.add_row({text_or_dash(r["name"]), r.value("type", ""), r.value("join_rule", ""),
                       std::to_string(r.value("joined_members", 0)), r.value("room_id", "")});
      table.print();
    });
    auto show = std::make_shared<Options>();
    cmd = room->add_subcommand("show", "Show one room or Space");
    cmd->add_option("room", show->room, "Room ID, alias or name")->required()->type_name("ROOM");
    cmd->add_flag("--json", show->json, "Print the room as JSON");
    cmd->callback([&globals, show] {
      WorkerCall call(globals, "room", show->json);
      const auto r = call.call("GET", "/v1/rooms/" + path_segment(show->room));
      if (show->json) return print_json(r);
      print_room(r);
    });
    auto members = std::make_shared<Options>();
    cmd = room->add_subcommand("members", "List a room's members");
    cmd->add_option("room", members->room, "Room ID, alias or name")->required()->type_name("ROOM");
    cmd->add_flag("--json", members->json, "Print them as JSON");
    cmd->callback([&globals, members] {
      WorkerCall call(globals, "room", members->json);
      const auto list = call.call("GET", "/v1/rooms/" + path_segment(members->room) + "/members");
      if (members->json) return print_json(list);
      Table table({"USER", "MEMBERSHIP", "DISPLAY NAME"});
      for (const auto& m : list) table.add_row({m.value("user_id", ""), m.value("membership", ""), m.value("display_name", "")});
      table.print();
    });
  }
  {
    struct Options {
      std::string room, sender, valid, name = "Guest";
      bool audio_only = false, end = false, guest_link = false, json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = room->add_subcommand("call", "Start or end a Jitsi call in a room, or make a guest link to it");
    cmd->add_option("room", o->room, "Room ID, alias or name")->required()->type_name("ROOM");
    auto* audio = cmd->add_flag("--audio-only", o->audio_only, "A voice call: Jitsi starts without video");
    auto* end = cmd->add_flag("--end", o->end, "End the room's call (its widget goes)");
    auto* guest = cmd->add_flag("--guest-link", o->guest_link,
                                "Print a link that admits one guest to the room's call until it expires");
    auto* as = cmd->add_option("--as", o->sender, "Start or end it as this member (default: the shard's @coop)")
                   ->type_name("HANDLE");
    cmd->add_option("--valid", o->valid,
                    "How long a guest link admits (90s, 30m, 2h, 1d; at most 7d; default [workers.room.jitsi] "
                    "guest_lifetime_s, 2h)")
        ->type_name("TIME")
        ->needs(guest);
    cmd->add_option("--name", o->name, "The guest's name in the call (default Guest)")->type_name("NAME")->needs(guest);
    cmd->add_flag("--json", o->json, "Print the result as JSON");
    end->excludes(audio);
    guest->excludes(end);
    guest->excludes(audio);
    guest->excludes(as);
    cmd->callback([&globals, o] {
      WorkerCall call(globals, "room", o->json);
      const std::string path = "/v1/rooms/" + path_segment(o->room) + "/call";
      if (o->guest_link) {
        json body{{"name", o->name}};
        if (!o->valid.empty()) body["valid_s"] = parse_duration(o->valid);
        const auto r = call.call("POST", path + "/guest", body);
        if (o->json) return print_json(r);
        // The link alone on stdout, for scripts and mail; when it expires on a terminal.
        std::cout << r.value("url", "") << "\n";
        if (stdout_is_terminal())
          std::cerr << "Admits " << r.value("name", "") << " to this room's call for "
                    << format_duration(static_cast<double>(r.value("expires_at", int64_t{0}) - std::time(nullptr)))
                    << ", not as a moderator; it cannot be taken back before then.\n";
        return;
      }
      if (o->end) {
        const auto r = call.call("DELETE", path + (o->sender.empty() ? "" : "?sender=" + path_segment(o->sender)));
        if (o->json) return print_json(r);
        if (r.value("ended", json::array()).empty())
          std::cout << "No call was going on in " << o->room << "\n";
        else
          std::cout << "Ended the call in " << o->room << "\n";
        return;
      }
      const auto r = call.call("POST", path, json{{"sender", o->sender}, {"audio_only", o->audio_only}});
      if (o->json) return print_json(r);
      std::cout << (r.value("started", false) ? "Started a call in " : "A call is already going on in ") << o->room
                << ": " << r.value("url", "") << "\n";
    });
  }
  {
    auto* jitsi = room->add_subcommand("jitsi", "Jitsi Meet, which hosts the rooms' calls");
    jitsi->require_subcommand(1);
    auto as_json = std::make_shared<bool>(false);
    auto* cmd = jitsi->add_subcommand("config", "Print the Prosody and Jitsi Meet settings that admit coop's tokens");
    cmd->add_flag("--json", *as_json, "Print the settings as JSON");
    cmd->callback([&globals, as_json] {
      WorkerCall call(globals, "room", *as_json);
      const auto r = call.call("GET", "/v1/jitsi/config");
      if (*as_json) return print_json(r);
      std::cout << r.value("text", "");
    });
  }
  {
    struct Options {
      std::string handle, out;
      bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = room->add_subcommand("export", "Export a member's rooms and visible history as JSON");
    cmd->add_option("member", o->handle, "The member's handle")->required()->type_name("HANDLE");
    cmd->add_option("-o,--out", o->out, "The JSON file to write")->required()->type_name("FILE");
    cmd->add_flag("--json", o->json, "Print a summary as JSON");
    cmd->callback([&globals, o] {
      if (o->handle != "coop") require_member(globals, o->handle);  // "coop": the shard's own Matrix user
      WorkerCall call(globals, "room", o->json);
      const auto text = call.call_raw("GET", "/v1/export/" + path_segment(o->handle));
      write_file_durably(o->out, text, 0600);
      const auto exported = json::parse(text);
      std::size_t events = 0;
      for (const auto& r : exported.value("rooms", json::array())) events += r.value("events", json::array()).size();
      if (o->json)
        print_json({{"member", o->handle}, {"out", o->out}, {"rooms", exported["rooms"].size()}, {"events", events}});
      else if (stdout_is_terminal())
        std::cout << "Exported " << exported["rooms"].size() << " rooms (" << events << " events) of " << o->handle
                  << " to " << o->out << "\n";
    });
  }
}

}  // namespace coop::cli
