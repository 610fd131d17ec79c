// coop docs ...: end-to-end encrypted documents. The CLI encrypts and decrypts itself (the key
// lives only in the link's fragment); coop-docs stores and relays ciphertext.
#include <CLI/CLI.hpp>
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <ctime>

#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/worker_call.h"
#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/paths.h"
#include "common/text.h"
#include "workers/docs/netflux_client.h"
#include "workers/docs/pad.h"
#include "workers/docs/rich_text.h"
#include "workers/docs/sheet_doc.h"

namespace coop::cli {

namespace {

using nlohmann::json;

// The shard's own document server: its docs http listener.
std::string shard_docs_url(const Globals& globals) {
  const auto home = globals.resolve_home();
  const Config config = Config::load(home.config_file());
  for (const auto& listener : config.listeners("docs"))
    if (listener.name == "http") return listener.url();
  throw Error(errc::kNotConfigured, "coop.toml has no docs http listener", 400);
}

// Where members open documents: [workers.docs] public_url (the proxy's https address), else
// the listener itself. Links are printed with it; the CLI itself talks to the listener.
std::string shard_docs_public_url(const Globals& globals) {
  const auto home = globals.resolve_home();
  std::string url = Config::load(home.config_file()).get_string("workers.docs.public_url", "");
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url.empty() ? shard_docs_url(globals) : url;
}

// A link under this shard's public address, reached through its listener instead (the CLI
// runs beside the shard; the proxy may not even answer from here). Other links stay as they are.
std::string reach_locally(const Globals& globals, const std::string& link) {
  const auto public_url = shard_docs_public_url(globals);
  if (link.rfind(public_url + "/", 0) != 0) return link;
  return shard_docs_url(globals) + link.substr(public_url.size());
}

struct Opened {
  docs::PadLink link;
  std::unique_ptr<docs::NetfluxClient> client;
  docs::PadState state;
  std::size_t stored = 0;
};

// Connects, joins the document's channel and replays its history into the current text.
Opened open_document(const std::string& link_text, bool create, double expire_seconds = 0) {
  Opened o;
  o.link = docs::parse_link(link_text);
  o.client = std::make_unique<docs::NetfluxClient>(o.link.ws_url);
  o.client->join(o.link.keys.channel);
  // Only a new document brings metadata: reading a link that leads nowhere creates nothing.
  json metadata = json::object();
  if (create) metadata["validateKey"] = o.link.keys.validate_key;
  if (create && expire_seconds > 0) metadata["expire"] = expire_seconds;  // seconds from now
  const auto history = o.client->history(o.link.keys.channel, metadata, false);
  if (!create && !history.metadata && history.messages.empty())
    throw Error(errc::kNoDocument, "there is no document behind this link", 404);
  // A view key cannot sign: the channel's own validateKey checks what others signed.
  if (!o.link.keys.can_write() && history.metadata) o.link.keys.validate_key = history.metadata->value("validateKey", "");
  if (history.metadata && history.metadata->value("validateKey", "") != o.link.keys.validate_key)
    throw Error(errc::kWrongKey, "this link's key does not belong to that document", 403);
  std::vector<std::string> plaintexts;
  for (const auto& message : history.messages) {
    auto plain = docs::decrypt_message(message, o.link.keys, true);
    if (!plain) throw Error(errc::kWrongKey, "the document does not open with this link's key", 403);
    plaintexts.push_back(std::move(*plain));
  }
  o.stored = history.messages.size();
  o.state = docs::replay(plaintexts);
  return o;
}

// The document for a Markdown text: rich text (CryptPad's form) with the title it had.
std::u16string rich_from_markdown(const std::string& markdown, const std::string& title) {
  return docs::to_utf16(docs::rich_text_content(docs::markdown_to_children(markdown), title));
}

// Puts a document into a Matrix room of this shard: a widget Element shows in the room's right
// panel and a message with the link. The shard posts both itself, so it can read them: the
// view-only link goes unless the member confirms the edit link (edit_link).
json post_to_room(const Globals& globals, const std::string& room, const std::string& link, const std::string& title,
                  const std::string& as, const std::string& note, bool edit_link) {
  const auto parsed = docs::parse_link(link);
  std::string posted = link;
  if (!edit_link || !parsed.keys.can_write())
    posted = link.substr(0, link.find('#')) + "#/2/" + parsed.type + "/view/" + parsed.keys.view_key + "/";
  // Errors are thrown, not printed here: a refused widget is not the command's failure.
  WorkerCall call(globals, "room", false);
  const std::string name = title.empty() ? std::string("Document") : title;
  // The widget needs the power to change the room's state; without it the message still goes.
  json widget;
  std::string widget_refused;
  try {
    widget = call.call("POST", "/v1/rooms/" + path_segment(room) + "/widgets",
                       json{{"url", posted}, {"name", name}, {"sender", as}, {"type", "m.custom"}});
  } catch (const Error& e) {
    if (e.status() != 403 || std::string(e.what()).find("not in this room") != std::string::npos) throw;
    widget_refused = e.what();
  }
  const std::string text = (note.empty() ? name : note) + ": " + posted;
  const auto message = call.call("POST", "/v1/rooms/" + path_segment(room) + "/messages", json{{"body", text}, {"sender", as}});
  json out{{"room_id", message.value("room_id", "")},
           {"widget_id", widget.is_object() ? widget.value("widget_id", "") : ""},
           {"link", posted},
           {"edit_link", posted == link && parsed.keys.can_write()},
           {"message", message}};
  if (!widget_refused.empty()) out["widget_refused"] = widget_refused;
  return out;
}

// A spreadsheet's sheet by name, or its first.
const json* find_sheet(const json& sheets, const std::string& name) {
  for (const auto& sheet : sheets)
    if (name.empty() || sheet.value("name", "") == name) return &sheet;
  if (!name.empty()) throw Error(errc::kUsage, "the spreadsheet has no sheet named '" + name + "'", 400);
  return nullptr;
}

// What `pull` prints: rich text as Markdown, HTML, plain text or its JSON; a spreadsheet as
// Markdown tables, one sheet as CSV, or its JSON; a document from an older coop (plain text)
// as it is, whatever the format.
std::string render_document(const std::string& content, const std::string& format, const std::string& sheet_name = "") {
  if (const auto sheets = docs::parse_sheet(content)) {
    if (format == "json") return content;
    if (format == "csv" || format == "text") {
      const json* sheet = find_sheet(sheets->first, sheet_name);
      return sheet ? docs::sheet_to_csv(*sheet) : std::string();
    }
    if (format == "html") throw Error(errc::kUsage, "a spreadsheet pulls as markdown, csv or json", 400);
    return docs::sheets_to_markdown(sheets->first);
  }
  if (format == "csv") throw Error(errc::kUsage, "only a spreadsheet pulls as csv", 400);
  const auto rich = docs::parse_rich_text(content);
  if (format == "json" || !rich) {
    if (!rich && format == "html")
      return "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n</head>\n<body>\n<pre>" + html_escape(content) +
             "</pre>\n</body>\n</html>\n";
    return content;
  }
  const std::string title = docs::rich_text_title(rich->first, rich->second);
  if (format == "html") return docs::children_to_html(rich->first, title);
  if (format == "text") return docs::children_to_text(rich->first);
  return docs::children_to_markdown(rich->first);
}

// A member of the cooperative, for what needs their coop credentials (owning documents).
struct Member {
  std::string handle;
  bool password_stdin = false;
  std::string secret;
  void read_secret() {
    if (handle.empty()) throw Error(errc::kUsage, "say who you are: --as HANDLE --password-stdin", 400);
    if (!password_stdin) throw Error(errc::kUsage, "give your password (or an app password for docs) on stdin: --password-stdin", 400);
    std::getline(std::cin, secret);
    if (!secret.empty() && secret.back() == '\r') secret.pop_back();
    if (secret.empty()) throw Error(errc::kUsage, "no password on stdin", 400);
  }
};

void add_member_options(CLI::App* cmd, Member& m) {
  cmd->add_option("--as", m.handle, "Your member handle (documents you own)")->type_name("HANDLE");
  cmd->add_flag("--password-stdin", m.password_stdin, "Read your password or app password (scope docs) from stdin");
}

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// The members' API of coop-docs, with HTTP Basic credentials (libcurl).
json member_call(const std::string& base_url, const Member& m, const std::string& method, const std::string& path,
                 const json& body = nullptr) {
  CURL* curl = curl_easy_init();
  if (!curl) throw Error(errc::kDocsFailed, "libcurl did not start", 500);
  std::string response, payload = body.is_null() ? std::string() : body.dump();
  const std::string url = base_url + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_USERNAME, m.handle.c_str());
  curl_easy_setopt(curl, CURLOPT_PASSWORD, m.secret.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!payload.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  }
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) throw Error(errc::kNotRunning, "the document server at " + base_url + " does not answer", 503);
  json parsed = json::parse(response, nullptr, false);
  if (status >= 400) {
    const std::string message = parsed.is_object() && parsed.contains("error")
                                    ? parsed["error"].value("message", response)
                                    : response;
    throw Error(status == 401 ? "bad_credentials" : "docs_failed", message, static_cast<int>(status));
  }
  return parsed;
}

std::string read_input(const std::string& file) {
  if (file == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(errc::kNotFound, file + ": cannot read it", 404);
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
    std::string url, from, title, room, type = "pad";
    double expire_days = 0;
    Member member;
    bool edit_link = false, json = false;
  };
  auto created = std::make_shared<NewOptions>();
  auto* cmd = group->add_subcommand("new", "Create a document and print its link (keep it: it is the key)");
  cmd->add_option("--url", created->url, "The document server (default: this shard's docs listener)")->type_name("URL");
  cmd->add_option("--type", created->type, "pad (rich text, the default) or sheet (a spreadsheet)")
      ->check(CLI::IsMember({"pad", "sheet"}))
      ->type_name("TYPE");
  cmd->add_option("--from", created->from, "Start it with this file: Markdown for rich text, CSV for a spreadsheet (- for stdin)")
      ->type_name("FILE");
  cmd->add_option("--expire-days", created->expire_days, "Remove it from the server this many days from now")
      ->check(CLI::PositiveNumber)->type_name("DAYS");
  cmd->add_option("--title", created->title, "Own it under this title (encrypted; needs --as)")->type_name("TEXT");
  add_member_options(cmd, created->member);
  cmd->add_option("--room", created->room, "Also post it in this Matrix room (ID, alias or name) as a widget and a message")
      ->type_name("ROOM");
  cmd->add_flag("--edit-link", created->edit_link,
                "With --room: post the edit link, so everyone in the room can change it (the shard can read what it posts)");
  cmd->add_flag("--json", created->json, "Print the link, the view-only link and the channel as JSON");
  cmd->callback([&globals, created] {
    const std::string base = created->url.empty() ? shard_docs_url(globals) : created->url;
    const bool owned = !created->title.empty() || !created->member.handle.empty();
    if (owned) created->member.read_secret();
    const auto keys = docs::new_pad_keys();
    const std::string link = docs::make_link(base, keys, created->type);
    const std::string shown =
        created->url.empty() ? docs::make_link(shard_docs_public_url(globals), keys, created->type) : link;
    auto o = open_document(link, true, created->expire_days * 86400.0);
    if (owned) {
      // Owned before anything is written (only a new document can be claimed). The title is
      // sealed with a key made from the member's own secret: the server keeps ciphertext, and
      // `coop docs list` with the same secret opens it.
      const auto key = docs::title_key(created->member.handle, created->member.secret);
      try {
        member_call(base, created->member, "POST", "/docs/api/documents",
                    json{{"channel", keys.channel},
                         {"title", docs::encrypt_title(
                                       json{{"title", created->title}, {"key", keys.edit_key}, {"type", created->type}}.dump(),
                                       key)}});
      } catch (const Error&) {
        std::cerr << "coop: the document exists but is not owned; its link: " << shown << "\n";
        throw;
      }
    }
    if (!created->from.empty()) {
      const std::string input = read_input(created->from);
      const std::u16string first =
          created->type == "sheet"
              ? docs::to_utf16(docs::sheet_content(
                    json::array({docs::csv_to_sheet(input, created->from == "-" ? "" : fs::path(created->from).stem().string())}),
                    created->title))
              : rich_from_markdown(input, created->title);
      if (auto patch = docs::make_patch(o.state, first)) o.client->send(keys.channel, docs::encrypt_message(*patch, keys));
    }
    const std::string view =
        docs::make_view_link(created->url.empty() ? shard_docs_public_url(globals) : base, keys, created->type);
    json posted;
    if (!created->room.empty())
      posted = post_to_room(globals, created->room, shown, created->title, created->member.handle, "", created->edit_link);
    if (created->json) {
      json out{{"link", shown}, {"view_link", view}, {"channel", keys.channel}};
      if (!posted.is_null()) out["room"] = posted;
      return print_json(out);
    }
    std::cout << shown << "\n";
    if (!posted.is_null())
      std::cout << "Posted in " << created->room << " (" << (posted["edit_link"].get<bool>() ? "edit" : "view-only")
                << (posted.contains("widget_refused") ? " link, as a message; no widget: " +
                                                            posted["widget_refused"].get<std::string>() + ")\n"
                                                      : std::string(" link, as a widget and a message)\n"));
  });

  struct PushOptions {
    std::string link, file, sheet;
    bool json = false;
  };
  auto push = std::make_shared<PushOptions>();
  cmd = group->add_subcommand("push", "Replace a document's text with a Markdown file's, as one edit everyone sees live");
  cmd->add_option("link", push->link, "The document's edit link")->required()->type_name("LINK");
  cmd->add_option("file", push->file, "The new text: Markdown, or CSV for a spreadsheet (- for stdin)")
      ->required()
      ->type_name("FILE");
  cmd->add_option("--sheet", push->sheet, "A spreadsheet's sheet the CSV replaces (default: the first; a new name adds one)")
      ->type_name("NAME");
  cmd->add_flag("--json", push->json, "Print what changed as JSON");
  cmd->callback([&globals, push] {
    const std::string text = read_input(push->file);
    if (!docs::parse_link(reach_locally(globals, push->link)).keys.can_write())
      throw Error(errc::kBadLink, "this is a view-only link: only the edit link can change the document", 400);
    auto o = open_document(reach_locally(globals, push->link), false);
    // Rich text keeps its title; a plain-text document from an older coop stays plain text.
    const std::string current = docs::to_utf8(o.state.doc);
    const auto rich = docs::parse_rich_text(current);
    const auto sheets = docs::parse_sheet(current);
    std::u16string next;
    if (sheets || (current.empty() && o.link.type == "sheet")) {
      // The CSV replaces one sheet and leaves the others as they are.
      json all = sheets ? sheets->first : json::array();
      const std::string name = push->sheet.empty() ? (all.empty() ? std::string("Sheet1") : all[0].value("name", "Sheet1"))
                                                   : push->sheet;
      json replacement = docs::csv_to_sheet(text, name);
      bool replaced = false;
      for (auto& sheet : all)
        if (sheet.value("name", "") == name && !replaced) sheet = replacement, replaced = true;
      if (!replaced) all.push_back(replacement);
      next = docs::to_utf16(docs::sheet_content(all, sheets ? sheets->second : std::string()));
    } else if (rich || current.empty()) {
      next = rich_from_markdown(text, rich ? rich->second : std::string());
    } else {
      next = docs::to_utf16(text);
    }
    const auto patch = docs::make_patch(o.state, next);
    if (patch) o.client->send(o.link.keys.channel, docs::encrypt_message(*patch, o.link.keys));
    if (push->json) return print_json(json{{"changed", patch.has_value()}, {"bytes", text.size()}});
    std::cout << (patch ? "Pushed " + std::to_string(text.size()) + " bytes\n" : std::string("Already up to date\n"));
  });

  struct PullOptions {
    std::string link, out, format = "markdown", sheet;
  };
  auto pull = std::make_shared<PullOptions>();
  cmd = group->add_subcommand("pull", "Print a document's current text (or write it to a file)");
  cmd->add_option("link", pull->link, "The document's link (edit or view-only)")->required()->type_name("LINK");
  cmd->add_option("-o,--out", pull->out, "Write it here (atomically) instead of stdout")->type_name("FILE");
  cmd->add_option("--format", pull->format,
                  "markdown (the default), html, text, json (CryptPad's own form); csv for a spreadsheet")
      ->check(CLI::IsMember({"markdown", "html", "text", "json", "csv"}))
      ->type_name("FORMAT");
  cmd->add_option("--sheet", pull->sheet, "With csv: the spreadsheet's sheet (default: the first)")->type_name("NAME");
  cmd->callback([&globals, pull] {
    auto o = open_document(reach_locally(globals, pull->link), false);
    const std::string text = render_document(docs::to_utf8(o.state.doc), pull->format, pull->sheet);
    if (pull->out.empty()) {
      std::cout << text;
      std::cout.flush();
      return;
    }
    write_file_durably(pull->out, text, 0600);
  });

  struct ListOptions {
    std::string url;
    Member member;
    bool json = false;
  };
  auto list = std::make_shared<ListOptions>();
  cmd = group->add_subcommand("list", "List the documents you own, with their titles (decrypted here)");
  cmd->add_option("--url", list->url, "The document server (default: this shard's docs listener)")->type_name("URL");
  add_member_options(cmd, list->member);
  cmd->add_flag("--json", list->json, "Print them as JSON");
  cmd->callback([&globals, list] {
    list->member.read_secret();
    const std::string base = list->url.empty() ? shard_docs_url(globals) : list->url;
    const auto documents = member_call(base, list->member, "GET", "/docs/api/documents");
    const auto key = docs::title_key(list->member.handle, list->member.secret);
    json out = json::array();
    const std::string public_url = shard_docs_public_url(globals);
    for (const auto& d : documents) {
      auto title = docs::decrypt_title(d.value("title", ""), key);
      // What the browser and `new --as` seal: {"title", "key"}, so the drive can open it; an
      // older coop sealed the bare title.
      std::string edit_key, type = "pad";
      if (title && !title->empty() && (*title)[0] == '{') {
        const json sealed = json::parse(*title, nullptr, false);
        if (sealed.is_object()) {
          edit_key = sealed.value("key", "");
          title = sealed.value("title", "");
          if (sealed.value("type", "") == "sheet") type = "sheet";
        }
      }
      json entry{{"channel", d.value("channel", "")},
                 {"title", title.value_or("")},
                 {"title_readable", title.has_value()},
                 {"created_at", d.value("created_at", "")}};
      if (!edit_key.empty()) {
        try {
          entry["link"] = docs::make_link(public_url, docs::pad_keys(edit_key), type);
          entry["type"] = type;
        } catch (const Error&) {
          // A sealed key that is not one: the entry shows without a link.
        }
      }
      out.push_back(std::move(entry));
    }
    if (list->json) return print_json(out);
    Table table({"CHANNEL", "CREATED", "TITLE"});
    for (const auto& d : out) {
      table.add_row({d["channel"], utc_time_text(d["created_at"].get<std::string>()), d["title_readable"] ? d["title"].get<std::string>() : "(sealed with another secret)"});
    }
    table.print();
  });

  struct ShareOptions {
    std::string link, room, as, note, title;
    bool edit_link = false, json = false;
  };
  auto share = std::make_shared<ShareOptions>();
  cmd = group->add_subcommand(
      "share",
      "Post a document in a Matrix room of this shard, as a widget and a message\n\n"
      "Element shows the widget in the room's right panel; it opens the editor. The shard posts\n"
      "both itself, so it can read the link: the view-only link goes unless --edit-link says\n"
      "otherwise. To share an edit link the shard cannot read, post it from a client in an\n"
      "end-to-end encrypted room.");
  cmd->add_option("link", share->link, "The document's link")->required()->type_name("LINK");
  cmd->add_option("--room", share->room, "The room: its ID, alias or name")->required()->type_name("ROOM");
  cmd->add_option("--as", share->as, "Post as this member (who must be in the room); default: the shard")->type_name("HANDLE");
  cmd->add_option("--note", share->note, "A line to put before the link")->type_name("TEXT");
  cmd->add_option("--title", share->title, "The widget's name in the room's panel")->type_name("TEXT");
  cmd->add_flag("--edit-link", share->edit_link,
                "Post the edit link, so everyone in the room can change it (default: the view-only link)");
  cmd->add_flag("--json", share->json, "Print what was posted as JSON");
  cmd->callback([&globals, share] {
    const auto posted = post_to_room(globals, share->room, share->link, share->title, share->as, share->note, share->edit_link);
    if (share->json) return print_json(posted);
    std::cout << "Shared in " << share->room << " (" << (posted["edit_link"].get<bool>() ? "edit" : "view-only")
              << (posted.contains("widget_refused") ? " link, as a message; no widget: " +
                                                          posted["widget_refused"].get<std::string>() + ")\n"
                                                    : std::string(" link, as a widget and a message)\n"));
  });

  struct DeleteOptions {
    std::string link, url;
    Member member;
    bool json = false;
  };
  auto erase = std::make_shared<DeleteOptions>();
  cmd = group->add_subcommand("delete", "Delete a document you own: its history leaves the server's disk");
  cmd->add_option("link", erase->link, "The document's link")->required()->type_name("LINK");
  cmd->add_option("--url", erase->url, "The document server (default: this shard's docs listener)")->type_name("URL");
  add_member_options(cmd, erase->member);
  cmd->add_flag("--json", erase->json, "Print the deleted document as JSON");
  cmd->callback([&globals, erase] {
    erase->member.read_secret();
    const auto link = docs::parse_link(erase->link);
    // The password goes to this shard (or --url), never to whatever host a link names.
    const std::string base = erase->url.empty() ? shard_docs_url(globals) : erase->url;
    const auto deleted = member_call(base, erase->member, "DELETE", "/docs/api/documents/" + link.keys.channel);
    if (erase->json) return print_json(deleted);
    std::cout << "Deleted " << link.keys.channel << "\n";
  });
}

}  // namespace coop::cli
