// coop: the one command people type. Builds the command tree and maps errors to exit codes.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/cli.h"
#include "common/error.h"
#include "common/paths.h"
#include "common/spelling.h"
#include "common/version.h"

namespace coop::cli {

Home Globals::resolve_home() const { return Home::resolve(home); }

namespace {

// When parsing stopped for want of a subcommand, the word the user typed in its place
// ("coop member has no command 'ad'; did you mean 'coop member add'?"), or the commands
// there are when none was typed. False when argv does not end that way (the parse error
// itself is then the right message).
bool explain_unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* current = &app;
  std::string path = "coop";
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--") return false;
    if (word.rfind("-", 0) == 0) {
      if (word == "--home") ++i;  // its value is not a command
      continue;
    }
    std::vector<std::string> names;
    CLI::App* next = nullptr;
    for (auto* sub : current->get_subcommands([](CLI::App*) { return true; })) {
      if (sub->get_name().empty()) continue;
      if (!sub->get_group().empty()) names.push_back(sub->get_name());  // hidden ones have no group
      if (sub->check_name(word)) next = sub;
    }
    if (next) {
      current = next;
      path += " " + word;
      continue;
    }
    if (names.empty() || current->get_require_subcommand_min() == 0) return false;
    const auto guess = closest_spelling(word, names);
    std::cerr << "coop: " << path << " has no command '" << word << "'";
    if (!guess.empty()) std::cerr << "; did you mean '" << path << " " << guess << "'?";
    std::cerr << "\nRun '" << path << " --help' for its commands.\n";
    return true;
  }
  // Nothing was typed where a command belongs: name the ones there are.
  std::string names;
  for (auto* sub : current->get_subcommands([](CLI::App*) { return true; }))
    if (!sub->get_name().empty() && !sub->get_group().empty()) names += (names.empty() ? "" : ", ") + sub->get_name();
  if (names.empty() || current->get_require_subcommand_min() == 0) return false;
  std::cerr << "coop: " << path << " needs a command: " << names << "\nRun '" << path << " --help' for what each does.\n";
  return true;
}

// A command's description is one line in its parent's list; the paragraphs after its first
// line go to the end of its own --help (and, through generate.cpp, its man page).
void one_line_summaries(CLI::App& app) {
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    const std::string text = sub->get_description();
    if (const auto end = text.find('\n'); end != std::string::npos) {
      const auto rest = text.find_first_not_of('\n', end);
      sub->description(text.substr(0, end));
      if (rest != std::string::npos) sub->footer(text.substr(rest));
    }
    one_line_summaries(*sub);
  }
}

}  // namespace

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
  add_federate_commands(app, globals);
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
  one_line_summaries(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 uses 100-114 for parse errors; coop promises 2 for every usage error.
    if ((dynamic_cast<const CLI::RequiredError*>(&e) || dynamic_cast<const CLI::ExtrasError*>(&e)) &&
        explain_unknown_command(app, argc, argv))
      return kExitUsage;
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
