// What the coop CLI's command files share: global options and the command registrars.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace CLI {
class App;
}

namespace coop {
class Home;
}

namespace coop::cli {

// Exit codes (issue #2): 0 done, 1 failed, 2 usage, 3 shard not running.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotRunning = 3;

struct Globals {
  std::string home;  // --home; empty means $COOP_HOME or ./coop-data
  int exit_code = kExitOk;
  Home resolve_home() const;
};

// The supervisor's /v1/status: coop::Error kNotAShard without coop.toml, kNotRunning when
// coop is down (cli/shard.cpp).
nlohmann::json supervisor_status(const Home& home);
// coop::Error(kNotAShard) naming the directory when home holds no coop.toml.
void require_shard(const Home& home);

// coop init, up, down, status, logs
void add_shard_commands(CLI::App& app, Globals& globals);
// coop member ...
void add_member_commands(CLI::App& app, Globals& globals);
// coop member takeout and settings (cli/takeout.cpp), under `coop member`.
void add_takeout_command(CLI::App& member, Globals& globals);
// coop room ...
void add_room_commands(CLI::App& app, Globals& globals);
// coop federate keys, peers, profile
void add_federate_commands(CLI::App& app, Globals& globals);
// coop dav ...
void add_dav_commands(CLI::App& app, Globals& globals);
// coop mail ...
void add_mail_commands(CLI::App& app, Globals& globals);
// coop mail queue, dkim and settings (cli/mail_out.cpp), under the mail command.
void add_mail_out_commands(CLI::App* mail_cmd, Globals& globals);
void add_mail_spam_commands(CLI::App* mail_cmd, Globals& globals);
// coop tiles ...
void add_tiles_commands(CLI::App& app, Globals& globals);
// coop docs ...
void add_docs_commands(CLI::App& app, Globals& globals);
// coop site ...
void add_site_commands(CLI::App& app, Globals& globals);
// coop backup [verify], coop restore
void add_backup_commands(CLI::App& app, Globals& globals);
// coop proxy nginx|caddy
void add_proxy_commands(CLI::App& app, Globals& globals);
// coop doctor
void add_doctor_commands(CLI::App& app, Globals& globals);
// coop tls status, install
void add_tls_commands(CLI::App& app, Globals& globals);
// A member's mail (every mailbox, or only `mailbox`) written under out as Maildir++ or mbox,
// 0700/0600 (cli/mail.cpp); progress on a terminal.
struct MailExportCount {
  int64_t messages = 0;
  uint64_t bytes = 0;
};
MailExportCount export_mail(const Globals& globals, const std::string& handle, const std::string& format,
                            const std::string& mailbox, const std::filesystem::path& out, bool json_errors);
// Both formats from one pass over the messages (each fetched once); an empty path skips one.
MailExportCount export_mail_formats(const Globals& globals, const std::string& handle, const std::string& mailbox,
                                    const std::filesystem::path& maildir_out, const std::filesystem::path& mbox_out,
                                    bool json_errors);

// One line on the supervisor's ACME renewer (its status "acme" member), for coop status.
std::string acme_summary(const nlohmann::json& acme);
// Hidden: coop __generate completion bash|zsh|fish, coop __generate man
void add_generate_commands(CLI::App& app);

}  // namespace coop::cli
