// coop: the one command people type. Builds the command tree and maps errors to exit codes.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/cli.h"
#include "common/error.h"
#include "common/paths.h"
#include "common/version.h"

namespace coop::cli {

Home Globals::resolve_home() const { return Home::resolve(home); }

}  // namespace coop::cli

int main(int argc, char** argv) {
  using namespace coop::cli;
  CLI::App app{"A cooperative's own communication stack.\n"
               "Chat, mail, calendars, contacts, documents, maps and websites on the\n"
               "cooperative's own hardware, with one member registry for all of them.",
               "coop"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", std::string("coop ") + coop::kVersion);
  Globals globals;
  app.add_option("--home", globals.home, "Shard directory (default: $COOP_HOME, else ./coop-data)")
      ->type_name("DIR");
  add_shard_commands(app, globals);
  add_member_commands(app, globals);
  add_room_commands(app, globals);
  add_mail_commands(app, globals);
  add_dav_commands(app, globals);
  add_tiles_commands(app, globals);
  add_docs_commands(app, globals);
  add_site_commands(app, globals);
  add_tls_commands(app, globals);
  add_backup_commands(app, globals);
  add_doctor_commands(app, globals);
  add_proxy_commands(app, globals);
  add_generate_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 uses 100-114 for parse errors; coop promises 2 for every usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const coop::Error& e) {
    std::cerr << "coop: " << e.what() << '\n';
    return e.code() == coop::errc::kNotRunning ? kExitNotRunning : e.code() == coop::errc::kUsage ? kExitUsage : kExitFailed;
  } catch (const std::exception& e) {
    std::cerr << "coop: " << e.what() << '\n';
    return kExitFailed;
  }
  return globals.exit_code;
}
