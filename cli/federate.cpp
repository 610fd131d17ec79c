// coop federate ...: Matrix federation with other homeservers, through coop-federate.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"

namespace coop::cli {

using nlohmann::json;

void add_federate_commands(CLI::App& app, Globals& globals) {
  auto* federate = app.add_subcommand("federate", "Matrix federation: this server's keys and the servers it talks to");
  federate->require_subcommand(1);

  auto keys_json = std::make_shared<bool>(false);
  auto* cmd = federate->add_subcommand("keys", "Show this server's signing keys as other servers fetch them");
  cmd->add_flag("--json", *keys_json, "Print them as JSON (with the signed answer of /_matrix/key/v2/server)");
  cmd->callback([&globals, keys_json] {
    WorkerCall call(globals, "federate", *keys_json);
    const auto r = call.call("GET", "/v1/keys");
    if (*keys_json) return print_json(r);
    std::cout << "server " << r.value("server_name", "") << "\n";
    for (const auto& key : r.value("keys", json::array()))
      std::cout << "  " << key.value("key_id", "") << "  " << key.value("public_key", "") << "\n";
    const auto until = r["published"].value("valid_until_ts", int64_t{0});
    std::cout << "  others may use them until " << utc_time_text(until / 1000) << " before asking again\n";
  });

  auto peers_json = std::make_shared<bool>(false);
  cmd = federate->add_subcommand("peers", "List the servers that contacted this one or whose keys it fetched");
  cmd->add_flag("--json", *peers_json, "Print them as JSON");
  cmd->callback([&globals, peers_json] {
    WorkerCall call(globals, "federate", *peers_json);
    const auto peers = call.call("GET", "/v1/peers");
    if (*peers_json) return print_json(peers);
    Table table({"SERVER", "KEYS", "REQUESTS", "REFUSED", "LAST ERROR"});
    for (const auto& p : peers)
      table.add_row({p.value("server_name", ""), std::to_string(p.value("keys", json::object()).size()),
                     std::to_string(p.value("requests_in", 0)), std::to_string(p.value("refused_in", 0)),
                     p["last_error"].is_string() ? p["last_error"].get<std::string>() : "-"},
                    {Colour::none, Colour::none, Colour::none, p.value("refused_in", 0) ? Colour::yellow : Colour::none,
                     p["last_error"].is_string() ? Colour::red : Colour::none});
    table.print();
  });
}

}  // namespace coop::cli
