// coop federate ...: Matrix federation with other homeservers, through coop-federate.
#include <CLI/CLI.hpp>

#include <iomanip>
#include <iostream>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"

namespace coop::cli {

using nlohmann::json;

void add_federate_commands(CLI::App& app, Globals& globals) {
  auto* federate = app.add_subcommand("federate", "Matrix federation: this server's keys and the servers it talks to");
  federate->require_subcommand(1);

  auto status_json = std::make_shared<bool>(false);
  auto* status = federate->add_subcommand("status", "Show the federation at a glance: peers, requests, allow and deny lists, queues");
  status->add_flag("--json", *status_json, "Print it as JSON");
  status->callback([&globals, status_json] {
    WorkerCall call(globals, "federate", *status_json);
    const auto r = call.call("GET", "/v1/summary");
    if (*status_json) return print_json(r);
    auto list = [](const json& servers) {
      std::string out;
      for (const auto& s : servers) out += (out.empty() ? "" : ", ") + s.get<std::string>();
      return out.empty() ? std::string("-") : out;
    };
    std::cout << "server     " << r.value("server_name", "") << " (" << r.value("key_id", "") << ")\n"
              << "mode       " << r.value("mode", "") << "\n"
              << "allowed    " << list(r.value("allowed", json::array())) << "\n"
              << "denied     " << list(r.value("denied", json::array())) << "\n"
              << "peers      " << r.value("peers", 0) << " (requests admitted " << r.value("requests_in", 0)
              << ", refused " << r.value("refused_in", 0) << ")\n";
    const auto destinations = r.value("destinations", json::array());
    if (destinations.empty()) return;
    std::cout << "\nsending to                      pending      edus      sent  state\n";
    for (const auto& d : destinations) {
      std::string state = "ok";
      if (d.value("sending", false)) state = "sending";
      if (d.contains("last_error") && d["last_error"].is_string())
        state = "retrying in " + std::to_string((d.value("backoff_ms", int64_t{0}) + 999) / 1000) + " s: " + d["last_error"].get<std::string>();
      std::cout << std::left << std::setw(30) << d.value("server_name", "") << std::right << std::setw(9) << d.value("pending", 0)
                << std::setw(10) << d.value("pending_edus", 0) << std::setw(10) << d.value("sent", 0) << "  " << state << "\n";
    }
  });

  for (const char* rule : {"allow", "deny"}) {
    struct RuleOptions {
      std::string server;
      bool remove = false, json = false;
    };
    auto o = std::make_shared<RuleOptions>();
    const std::string word = rule;
    auto* c = federate->add_subcommand(word, word == "allow" ? "Federate only with allowed servers (once any is allowed)"
                                                              : "Refuse a server's requests and send it nothing");
    c->add_option("server", o->server, "The server name (example.org or example.org:8448)")->required()->type_name("SERVER");
    c->add_flag("--remove", o->remove, "Take the server off the " + word + " list");
    c->add_flag("--json", o->json, "Print the lists as JSON");
    c->callback([&globals, o, word] {
      WorkerCall call(globals, "federate", o->json);
      const auto r = o->remove ? call.call("DELETE", "/v1/policy/" + path_segment(o->server) + "?policy=" + word)
                               : call.call("POST", "/v1/policy", json{{"server", o->server}, {"policy", word}});
      if (o->json) return print_json(r);
      std::cout << (o->remove ? "Removed " + o->server + " from the " + word + " list" : (word == "allow" ? "Allowed " : "Denied ") + o->server)
                << "\n";
    });
  }

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

  struct ProfileOptions {
    std::string user;
    bool json = false;
  };
  auto profile = std::make_shared<ProfileOptions>();
  cmd = federate->add_subcommand("profile", "Ask another server for one of its users' profile (a signed request)");
  cmd->add_option("user", profile->user, "The Matrix user ID (@name:server)")->required()->type_name("USER");
  cmd->add_flag("--json", profile->json, "Print the answer as JSON");
  cmd->callback([&globals, profile] {
    WorkerCall call(globals, "federate", profile->json);
    const auto r = call.call("GET", "/v1/profile?user_id=" + path_segment(profile->user));
    if (profile->json) return print_json(r);
    // What another server says is shown only when it is text.
    const auto field = [&r](const char* key) {
      const auto& answer = r["answer"];
      return answer.is_object() && answer.contains(key) && answer[key].is_string() ? answer[key].get<std::string>() : "-";
    };
    std::cout << profile->user << "\n  name    " << field("displayname") << "\n  avatar  " << field("avatar_url") << "\n";
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
