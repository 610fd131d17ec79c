// coop mail spam ...: teach the shard's spam classifier from mail an admin has sorted, and
// show what it knows, through coop-mail's control socket.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/error.h"
#include "common/mail/mailbox_formats.h"

namespace coop::cli {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string message_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

constexpr std::uintmax_t kMaxMessageBytes = 64 << 20;  // larger files are no mail to learn from

// Every message under path, with a name for it: a Maildir (cur/ and new/), an mbox file, a
// single message file, or a directory of one-message files (the SpamAssassin corpus, MH),
// whose mbox From_ line, if any, is dropped. Empty files, files over 64 MiB, and what cannot
// be read are skipped with a warning.
void for_each_message(const fs::path& path, const std::function<void(const std::string&, std::string)>& take) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(errc::kIoError, path.string() + " does not exist", 404);
  auto usable = [](const fs::path& file) {
    std::error_code size_ec;
    const auto size = fs::file_size(file, size_ec);
    if (size_ec || size == 0 || size > kMaxMessageBytes) {
      std::cerr << "coop: skipping " << file.string() << (size_ec ? ": cannot be read\n" : size == 0 ? ": empty\n" : ": over 64 MiB\n");
      return false;
    }
    return true;
  };
  if (fs::is_directory(path / "cur", ec) || fs::is_directory(path / "new", ec)) {
    for (const auto& m : mail::maildir_list(path))
      if (usable(m.path)) take(m.path.string(), message_file(m.path));
    return;
  }
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file(ec) && it->path().filename().string().front() != '.') files.push_back(it->path());
    if (ec) std::cerr << "coop: " << path.string() << ": " << ec.message() << "; using what was read\n";
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      if (!usable(file)) continue;
      auto content = message_file(file);
      if (content.starts_with("From ")) content.erase(0, std::min(content.size(), content.find('\n') + 1));
      take(file.string(), std::move(content));
    }
    return;
  }
  if (!fs::is_regular_file(path, ec)) throw Error(errc::kIoError, path.string() + " is not a file or a folder", 400);
  std::ifstream in(path, std::ios::binary);
  char head[5] = {};
  in.read(head, sizeof head);
  const bool mbox = in.gcount() == sizeof head && std::string_view(head, sizeof head) == "From ";
  in.clear();
  in.seekg(0);
  if (!mbox) {  // one message
    if (usable(path)) take(path.string(), message_file(path));
    return;
  }
  mail::MboxReader reader([&in](char* buffer, std::size_t size) {
    in.read(buffer, static_cast<std::streamsize>(size));
    return static_cast<std::size_t>(in.gcount());
  }, mail::MboxLineEnding::kCrlf);
  std::string content, sender;
  unsigned flags = 0;
  int64_t date = 0;
  for (int n = 1; reader.next(content, flags, sender, date); ++n) {
    if (content.size() > kMaxMessageBytes) {
      std::cerr << "coop: skipping message " << n << " of " << path.string() << ": over 64 MiB\n";
      continue;
    }
    take(path.string() + "#" + std::to_string(n), content);
  }
}

struct TrainOptions {
  std::vector<std::string> spam, ham;
  bool json = false;
};

void run_train(const Globals& globals, const TrainOptions& o) {
  if (o.spam.empty() && o.ham.empty()) throw Error(errc::kBadInput, "name mail to learn from: --spam PATH and/or --ham PATH", 400);
  WorkerCall call(globals, "mail", o.json);
  ProgressLine progress(o.json);
  json totals = {{"spam", {{"learnt", 0}, {"already", 0}}}, {"ham", {{"learnt", 0}, {"already", 0}}}};
  int64_t seen = 0;
  // In batches of at most 500 messages or 8 MiB, as import sends them.
  for (const bool spam : {true, false}) {
    const char* kind = spam ? "spam" : "ham";
    std::string batch;
    std::size_t in_batch = 0;
    auto send = [&] {
      if (in_batch == 0) return;
      const auto answer = json::parse(call.call_raw("POST", std::string("/v1/spam/train?as=") + kind, batch));
      totals[kind]["learnt"] = totals[kind]["learnt"].get<int64_t>() + answer.value("learnt", int64_t{0});
      totals[kind]["already"] = totals[kind]["already"].get<int64_t>() + answer.value("already", int64_t{0});
      batch.clear();
      in_batch = 0;
      progress.show("learning: " + std::to_string(seen) + " messages");
    };
    for (const auto& path : spam ? o.spam : o.ham)
      for_each_message(path, [&](const std::string&, std::string content) {
        if (batch.size() + content.size() > (8u << 20) || in_batch >= 500) send();
        batch += mail::import_record(content, 0, 0, "");
        ++in_batch;
        ++seen;
      });
    send();
  }
  progress.done();
  if (o.json) return print_json(totals);
  std::cout << "Learnt " << totals["spam"]["learnt"].get<int64_t>() << " spam and " << totals["ham"]["learnt"].get<int64_t>()
            << " ham (" << totals["spam"]["already"].get<int64_t>() + totals["ham"]["already"].get<int64_t>()
            << " already known)\n";
}

void run_score(const Globals& globals, const std::vector<std::string>& paths, bool as_json) {
  WorkerCall call(globals, "mail", as_json);
  json all = json::array();
  std::vector<std::string> names;
  std::string batch;
  std::size_t in_batch = 0;
  auto send = [&] {
    if (in_batch == 0) return;
    for (auto& s : json::parse(call.call_raw("POST", "/v1/spam/score", batch))) all.push_back(std::move(s));
    batch.clear();
    in_batch = 0;
  };
  for (const auto& path : paths)
    for_each_message(path, [&](const std::string& name, std::string content) {
      if (batch.size() + content.size() > (8u << 20) || in_batch >= 500) send();
      names.push_back(name);
      batch += mail::import_record(content, 0, 0, "");
      ++in_batch;
    });
  send();
  for (std::size_t i = 0; i < all.size() && i < names.size(); ++i) all[i]["message"] = names[i];
  if (as_json) return print_json(all);
  for (const auto& s : all) {
    std::string tests;
    for (const auto& [name, points] : s["tests"].items()) {
      char one[64];
      std::snprintf(one, sizeof one, "%s%s=%.1f", tests.empty() ? "" : ",", name.c_str(), points.get<double>());
      tests += one;
    }
    char line[96];
    std::snprintf(line, sizeof line, "%6.1f  %-6s ", s["score"].get<double>(), s["verdict"].get<std::string>().c_str());
    std::cout << line << s["message"].get<std::string>() << "  " << tests << "\n";
  }
}

void run_status(const Globals& globals, const std::string& member, bool as_json) {
  WorkerCall call(globals, "mail", as_json);
  const auto status = call.call("GET", "/v1/spam" + (member.empty() ? std::string() : "?member=" + path_segment(member)));
  if (as_json) return print_json(status);
  if (!status.value("enabled", false)) {
    std::cout << "The spam filter is off ([workers.mail.spam] enabled = false).\n";
    return;
  }
  const auto& c = status["classifier"];
  char line[160];
  std::snprintf(line, sizeof line, "Junk at %.1f, refused at %.1f; greylisting %s; per-member classifiers %s\n",
                status["junk"].get<double>(), status["reject"].get<double>(), status["greylist"].get<bool>() ? "on" : "off",
                status["per_member"].get<bool>() ? "on" : "off");
  std::cout << line;
  std::cout << (member.empty() ? "Shard classifier" : member + "'s classifier") << ": " << c["spam_messages"].get<int64_t>()
            << " spam and " << c["ham_messages"].get<int64_t>() << " ham learnt, " << c["tokens"].get<int64_t>() << " tokens\n";
  if (c["recent_trainings"].get<int64_t>() > 0) {
    std::snprintf(line, sizeof line, "Of the last %lld messages taught, it had judged %lld right before learning (%.1f %%)\n",
                  static_cast<long long>(c["recent_trainings"].get<int64_t>()), static_cast<long long>(c["recent_right"].get<int64_t>()),
                  100.0 * c["recent_accuracy"].get<double>());
    std::cout << line;
  }
  for (const char* list : {"dnsbl", "uribl"})
    for (const auto& zone : status[list]) std::cout << (std::string(list) == "dnsbl" ? "DNS blocklist: " : "URI blocklist: ") << zone.get<std::string>() << "\n";
}

}  // namespace

void add_mail_spam_commands(CLI::App* mail_cmd, Globals& globals) {
  auto* spam = mail_cmd->add_subcommand("spam", "The spam filter: teach its classifier, see what it knows");
  spam->require_subcommand(1);
  {
    auto o = std::make_shared<TrainOptions>();
    auto* cmd = spam->add_subcommand("train", "Teach the shard's classifier from sorted mail; a message taught twice counts once");
    cmd->add_option("--spam", o->spam, "Spam: a Maildir, an mbox file, or a directory of one-message files (repeatable)")->type_name("PATH");
    cmd->add_option("--ham", o->ham, "Good mail, in the same forms (repeatable)")->type_name("PATH");
    cmd->add_flag("--json", o->json, "Print the counts as JSON");
    cmd->callback([&globals, o] { run_train(globals, *o); });
  }
  {
    auto paths = std::make_shared<std::vector<std::string>>();
    auto as_json = std::make_shared<bool>(false);
    auto* cmd = spam->add_subcommand("score", "Score messages as inbound mail is scored, and say why; nothing is delivered or learnt");
    cmd->add_option("path", *paths, "A message file, a Maildir, an mbox file, or a directory of one-message files")->required()->type_name("PATH");
    cmd->add_flag("--json", *as_json, "Print each message's score, verdict and tests as JSON");
    cmd->callback([&globals, paths, as_json] { run_score(globals, *paths, *as_json); });
  }
  {
    auto member = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto* cmd = spam->add_subcommand("status", "Thresholds, token counts and accuracy on recent training");
    cmd->add_option("--member", *member, "That member's own classifier (with per_member on)")->type_name("HANDLE");
    cmd->add_flag("--json", *as_json, "Print as JSON, with the rules and their points");
    cmd->callback([&globals, member, as_json] { run_status(globals, *member, *as_json); });
  }
}

}  // namespace coop::cli
