// coop mail queue | dkim | settings: outbound mail, through coop-mail's control socket.
#include <CLI/CLI.hpp>

#include <ctime>
#include <iostream>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"

namespace coop::cli {

namespace {

// RFC 1035 3.3.14 / RFC 7208 3.3: one TXT string holds at most 255 bytes; a longer record
// (an RSA-2048 key) is published as several quoted strings that resolvers join.
std::string txt_strings(const std::string& record) {
  std::string out;
  for (std::size_t i = 0; i < record.size(); i += 255) out += (i ? " \"" : "\"") + record.substr(i, 255) + "\"";
  return out;
}

// How long ago an RFC 3339 time (UTC, "2026-12-06T18:07:00Z") was.
std::string queue_age(const std::string& created_at) {
  std::tm tm{};
  if (!strptime(created_at.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return "?";
  const double seconds = static_cast<double>(::time(nullptr) - timegm(&tm));
  return format_duration(seconds < 0 ? 0 : seconds);
}

void add_queue_commands(CLI::App* mail_cmd, Globals& globals) {
  auto* queue = mail_cmd->add_subcommand("queue", "Mail waiting to go out: list, show, retry, delete");
  queue->require_subcommand(1);
  struct QueueOptions {
    std::string id;
    bool json = false;
  };
  auto list = std::make_shared<QueueOptions>();
  auto* cmd = queue->add_subcommand("list", "Queued messages with their recipients' state");
  cmd->add_flag("--json", list->json, "Print the queue as JSON");
  cmd->callback([&globals, list] {
    WorkerCall call(globals, "mail", list->json);
    const auto entries = call.call("GET", "/v1/queue");
    if (list->json) return print_json(entries);
    Table table({"ID", "AGE", "FROM", "TO", "STATE", "LAST ERROR"});
    for (const auto& e : entries) {
      for (const auto& r : e.value("recipients", nlohmann::json::array())) {
        const auto state = r.value("state", "");
        table.add_row({std::to_string(e.value("id", int64_t{0})), queue_age(e.value("created_at", "")),
                       "<" + e.value("sender", "") + ">", r.value("address", ""),
                       state + " (" + std::to_string(r.value("attempts", 0)) + ")", r.value("last_error", "")},
                      {Colour::none, Colour::none, Colour::none, Colour::none,
                       state == "queued" ? Colour::yellow : state == "failed" ? Colour::red : Colour::green});
      }
    }
    table.print();
    if (entries.empty() && stdout_is_terminal()) std::cout << "The queue is empty\n";
  });
  auto show = std::make_shared<QueueOptions>();
  cmd = queue->add_subcommand("show", "One queued message");
  cmd->add_option("id", show->id, "The queue id")->required()->type_name("ID");
  cmd->add_flag("--json", show->json, "Print it as JSON");
  cmd->callback([&globals, show] {
    WorkerCall call(globals, "mail", show->json);
    const auto e = call.call("GET", "/v1/queue/" + path_segment(show->id));
    if (show->json) return print_json(e);
    std::cout << "Message " << e.value("id", int64_t{0}) << ", queued " << queue_age(e.value("created_at", ""))
              << " ago by " << (e.value("member", "").empty() ? "the shard" : e.value("member", "")) << "\n"
              << "From:    <" << e.value("sender", "") << ">\n"
              << "Size:    " << e.value("size", int64_t{0}) << " bytes\n";
    for (const auto& r : e.value("recipients", nlohmann::json::array())) {
      std::cout << "To:      " << r.value("address", "") << "  " << r.value("state", "") << ", "
                << r.value("attempts", 0) << " attempt(s)";
      if (!r.value("remote", "").empty()) std::cout << ", last via " << r.value("remote", "");
      std::cout << "\n";
      if (!r.value("last_error", "").empty()) std::cout << "         " << r.value("last_error", "") << "\n";
    }
  });
  auto retry = std::make_shared<QueueOptions>();
  cmd = queue->add_subcommand("retry", "Try a queued message now (or every one, with 'all')");
  cmd->add_option("id", retry->id, "The queue id, or all")->required()->type_name("ID|all");
  cmd->add_flag("--json", retry->json, "Print the result as JSON");
  cmd->callback([&globals, retry] {
    WorkerCall call(globals, "mail", retry->json);
    const auto answer = call.call("POST", "/v1/queue/" + path_segment(retry->id) + "/retry");
    if (retry->json) return print_json(answer);
    std::cout << "Retrying " << answer.value("retrying", nlohmann::json::array()).size() << " message(s)\n";
  });
  auto remove = std::make_shared<QueueOptions>();
  cmd = queue->add_subcommand("delete", "Drop a queued message; its sender gets no report");
  cmd->add_option("id", remove->id, "The queue id")->required()->type_name("ID");
  cmd->add_flag("--json", remove->json, "Print the result as JSON");
  cmd->callback([&globals, remove] {
    WorkerCall call(globals, "mail", remove->json);
    const auto answer = call.call("DELETE", "/v1/queue/" + path_segment(remove->id));
    if (remove->json) return print_json(answer);
    std::cout << "Deleted message " << remove->id << " from the queue\n";
  });
}

void add_dkim_commands(CLI::App* mail_cmd, Globals& globals) {
  auto* dkim = mail_cmd->add_subcommand("dkim", "DKIM keys that sign outgoing mail (RFC 6376, RFC 8463)");
  dkim->require_subcommand(1);
  struct DkimOptions {
    std::string domain, algorithm = "rsa", selector;
    bool json = false;
  };
  auto generate = std::make_shared<DkimOptions>();
  auto* cmd = dkim->add_subcommand("generate", "Make a key for a domain and print the TXT record to publish");
  cmd->add_option("--domain", generate->domain, "The domain it signs for")->required()->type_name("DOMAIN");
  cmd->add_option("--algorithm", generate->algorithm, "rsa (2048 bits, default) or ed25519")
      ->check(CLI::IsMember({"rsa", "ed25519"}))
      ->type_name("ALGORITHM");
  cmd->add_option("--selector", generate->selector, "The selector (default: r or e and the year and month)")->type_name("SELECTOR");
  cmd->add_flag("--json", generate->json, "Print the key's record as JSON");
  cmd->callback([&globals, generate] {
    WorkerCall call(globals, "mail", generate->json);
    const auto key = call.call("POST", "/v1/dkim",
                               {{"domain", generate->domain}, {"algorithm", generate->algorithm}, {"selector", generate->selector}});
    if (generate->json) return print_json(key);
    std::cout << "Publish this TXT record; mail from " << key.value("domain", "") << " is signed with it from now on:\n\n"
              << key.value("dns_name", "") << ". IN TXT " << txt_strings(key.value("dns_record", "")) << "\n";
  });
  auto list = std::make_shared<DkimOptions>();
  cmd = dkim->add_subcommand("list", "Keys with their selectors and records");
  cmd->add_option("--domain", list->domain, "Only this domain")->type_name("DOMAIN");
  cmd->add_flag("--json", list->json, "Print the keys as JSON");
  cmd->callback([&globals, list] {
    WorkerCall call(globals, "mail", list->json);
    const auto keys = call.call("GET", "/v1/dkim" + (list->domain.empty() ? std::string() : "?domain=" + path_segment(list->domain)));
    if (list->json) return print_json(keys);
    Table table({"DOMAIN", "SELECTOR", "ALGORITHM", "STATE"});
    for (const auto& k : keys)
      table.add_row({k.value("domain", ""), k.value("selector", ""), k.value("algorithm", ""),
                     k.value("active", false) ? "signing" : "retired"},
                    {Colour::none, Colour::none, Colour::none, k.value("active", false) ? Colour::green : Colour::dim});
    table.print();
  });
  auto retire = std::make_shared<DkimOptions>();
  cmd = dkim->add_subcommand("retire", "Stop signing with a key (after its successor is published)");
  cmd->add_option("--domain", retire->domain, "The domain")->required()->type_name("DOMAIN");
  cmd->add_option("--selector", retire->selector, "The selector")->required()->type_name("SELECTOR");
  cmd->add_flag("--json", retire->json, "Print the result as JSON");
  cmd->callback([&globals, retire] {
    WorkerCall call(globals, "mail", retire->json);
    const auto answer = call.call("DELETE", "/v1/dkim/" + path_segment(retire->domain) + "/" + path_segment(retire->selector));
    if (retire->json) return print_json(answer);
    std::cout << "Retired " << retire->selector << " for " << retire->domain
              << "; remove its TXT record once mail signed with it has been read\n";
  });
}

void add_mail_dns_command(CLI::App* mail_cmd, Globals& globals) {
  struct DnsOptions {
    std::string domain;
    bool check = false, json = false;
  };
  auto o = std::make_shared<DnsOptions>();
  auto* cmd = mail_cmd->add_subcommand("dns", "The DNS records to publish for a hosted domain, and with --check what DNS holds");
  cmd->add_option("domain", o->domain, "A hosted domain")->required()->type_name("DOMAIN");
  cmd->add_flag("--check", o->check, "Look each record up and say which are missing or wrong (exit 1 if any)");
  cmd->add_flag("--json", o->json, "Print the records as JSON");
  cmd->callback([&globals, o] {
    WorkerCall call(globals, "mail", o->json);
    const auto records = call.call("GET", "/v1/dns/" + path_segment(o->domain) + (o->check ? "?check=1" : ""));
    bool bad = false;
    for (const auto& r : records) bad = bad || (o->check && r.value("status", "") != "ok");
    if (o->json) {
      print_json(records);
    } else if (!o->check) {
      // Zone-file lines, each with what it is for.
      for (const auto& r : records) {
        const auto type = r.value("type", "");
        const auto value = type == "TXT" ? txt_strings(r.value("value", "")) : r.value("value", "");
        std::cout << "; " << r.value("purpose", "") << "\n" << r.value("name", "") << ". IN " << type << " " << value << "\n";
      }
      std::cout << "; and a PTR record for the shard's address that names the MX host, set where the address is rented\n";
    } else {
      Table table({"NAME", "TYPE", "STATE", "FOUND"});
      for (const auto& r : records) {
        const auto status = r.value("status", "");
        table.add_row({r.value("name", ""), r.value("type", ""), status, r.value("found", "")},
                      {Colour::none, Colour::none, status == "ok" ? Colour::green : status == "temporary" ? Colour::yellow : Colour::red});
      }
      table.print();
    }
    if (bad) {
      std::cerr << "coop: some records are missing or wrong; `coop mail dns " << o->domain << "` shows what to publish\n";
      globals.exit_code = kExitFailed;
    }
  });
}

void add_mail_settings_command(CLI::App* mail_cmd, Globals& globals) {
  struct SettingsOptions {
    std::string handle, save_sent;
    bool json = false;
  };
  auto o = std::make_shared<SettingsOptions>();
  auto* cmd = mail_cmd->add_subcommand("settings", "Show or change a member's mail settings");
  cmd->add_option("member", o->handle, "The member's handle")->required()->type_name("HANDLE");
  cmd->add_option("--save-sent", o->save_sent,
                  "yes: mail sent through submission is filed in Sent; no: the member's client files it (Thunderbird does)")
      ->check(CLI::IsMember({"yes", "no"}))
      ->type_name("yes|no");
  cmd->add_flag("--json", o->json, "Print the settings as JSON");
  cmd->callback([&globals, o] {
    WorkerCall call(globals, "mail", o->json);
    const auto path = "/v1/settings/" + path_segment(o->handle);
    const auto s = o->save_sent.empty() ? call.call("GET", path) : call.call("PUT", path, {{"save_sent", o->save_sent == "yes"}});
    if (o->json) return print_json(s);
    std::cout << "save-sent: " << (s.value("save_sent", true) ? "yes" : "no") << "\n";
  });
}

}  // namespace

void add_mail_out_commands(CLI::App* mail_cmd, Globals& globals) {
  add_queue_commands(mail_cmd, globals);
  add_dkim_commands(mail_cmd, globals);
  add_mail_settings_command(mail_cmd, globals);
  add_mail_dns_command(mail_cmd, globals);
}

}  // namespace coop::cli
