// coop docs ...: end-to-end encrypted documents. The CLI encrypts and decrypts itself (the key
// lives only in the link's fragment); coop-docs stores and relays ciphertext.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/cli.h"
#include "cli/output.h"
#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/paths.h"
#include "workers/docs/netflux_client.h"
#include "workers/docs/pad.h"

namespace coop::cli {

namespace {

using nlohmann::json;

// The shard's own document server: its docs http listener.
std::string shard_docs_url(const Globals& globals) {
  const auto home = globals.resolve_home();
  const Config config = Config::load(home.config_file());
  for (const auto& listener : config.listeners("docs"))
    if (listener.name == "http") return listener.url();
  throw Error("not_configured", "coop.toml has no docs http listener", 400);
}

struct Opened {
  docs::PadLink link;
  std::unique_ptr<docs::NetfluxClient> client;
  docs::PadState state;
  std::size_t stored = 0;
};

// Connects, joins the document's channel and replays its history into the current text.
Opened open_document(const std::string& link_text, bool create) {
  Opened o;
  o.link = docs::parse_link(link_text);
  o.client = std::make_unique<docs::NetfluxClient>(o.link.ws_url);
  o.client->join(o.link.keys.channel);
  // Only a new document brings metadata: reading a link that leads nowhere creates nothing.
  const auto history = o.client->history(
      o.link.keys.channel, create ? json{{"validateKey", o.link.keys.validate_key}} : json::object(), false);
  if (!create && !history.metadata && history.messages.empty())
    throw Error("no_document", "there is no document behind this link", 404);
  if (history.metadata && history.metadata->value("validateKey", "") != o.link.keys.validate_key)
    throw Error("wrong_key", "this link's key does not belong to that document", 403);
  std::vector<std::string> plaintexts;
  for (const auto& message : history.messages) {
    auto plain = docs::decrypt_message(message, o.link.keys, true);
    if (!plain) throw Error("wrong_key", "the document does not open with this link's key", 403);
    plaintexts.push_back(std::move(*plain));
  }
  o.stored = history.messages.size();
  o.state = docs::replay(plaintexts);
  return o;
}

std::string read_input(const std::string& file) {
  if (file == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("not_found", file + ": cannot read it", 404);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

void add_docs_commands(CLI::App& app, Globals& globals) {
  auto* group = app.add_subcommand(
      "docs",
      "End-to-end encrypted documents\n\n"
      "Documents are encrypted before they leave the browser or this command (NaCl secretbox, as\n"
      "CryptPad's chainpad-crypto does it) and signed by whoever holds the link; the key is only in\n"
      "the link's fragment (#/2/pad/edit/KEY/), which never reaches a server. coop-docs stores and\n"
      "relays ciphertext only, speaking CryptPad's Netflux protocol on /cryptpad_websocket.");
  group->require_subcommand(1);

  struct NewOptions {
    std::string url, from;
    bool json = false;
  };
  auto created = std::make_shared<NewOptions>();
  auto* cmd = group->add_subcommand("new", "Create a document and print its link (keep it: it is the key)");
  cmd->add_option("--url", created->url, "The document server (default: this shard's docs listener)")->type_name("URL");
  cmd->add_option("--from", created->from, "Start it with this file's text (- for stdin)")->type_name("FILE");
  cmd->add_flag("--json", created->json, "Print the link and channel as JSON");
  cmd->callback([&globals, created] {
    const std::string base = created->url.empty() ? shard_docs_url(globals) : created->url;
    const auto keys = docs::new_pad_keys();
    const std::string link = docs::make_link(base, keys);
    auto o = open_document(link, true);
    if (!created->from.empty()) {
      if (auto patch = docs::make_patch(o.state, docs::to_utf16(read_input(created->from))))
        o.client->send(keys.channel, docs::encrypt_message(*patch, keys));
    }
    if (created->json) return print_json(json{{"link", link}, {"channel", keys.channel}});
    std::cout << link << "\n";
  });

  struct PushOptions {
    std::string link, file;
    bool json = false;
  };
  auto push = std::make_shared<PushOptions>();
  cmd = group->add_subcommand("push", "Replace a document's text with a file's, as one edit everyone sees live");
  cmd->add_option("link", push->link, "The document's link")->required()->type_name("LINK");
  cmd->add_option("file", push->file, "The new text (- for stdin)")->required()->type_name("FILE");
  cmd->add_flag("--json", push->json, "Print what changed as JSON");
  cmd->callback([push] {
    const std::string text = read_input(push->file);
    auto o = open_document(push->link, false);
    const auto patch = docs::make_patch(o.state, docs::to_utf16(text));
    if (patch) o.client->send(o.link.keys.channel, docs::encrypt_message(*patch, o.link.keys));
    if (push->json) return print_json(json{{"changed", patch.has_value()}, {"bytes", text.size()}});
    std::cout << (patch ? "Pushed " + std::to_string(text.size()) + " bytes\n" : std::string("Already up to date\n"));
  });

  struct PullOptions {
    std::string link, out;
  };
  auto pull = std::make_shared<PullOptions>();
  cmd = group->add_subcommand("pull", "Print a document's current text (or write it to a file)");
  cmd->add_option("link", pull->link, "The document's link")->required()->type_name("LINK");
  cmd->add_option("--out,-o", pull->out, "Write it here (atomically) instead of stdout")->type_name("FILE");
  cmd->callback([pull] {
    auto o = open_document(pull->link, false);
    const std::string text = docs::to_utf8(o.state.doc);
    if (pull->out.empty()) {
      std::cout << text;
      std::cout.flush();
      return;
    }
    write_file_durably(pull->out, text, 0600);
  });
}

}  // namespace coop::cli
