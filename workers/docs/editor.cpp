// The editor page and its script: coop's own page and code (workers/docs/web/app) after the npm
// libraries, each wrapped as a CommonJS module for a few lines of loader.
#include "workers/docs/editor.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "common/digest.h"

namespace fs = std::filesystem;

namespace coop::docs {

namespace {

// CommonJS for the browser: each npm file becomes a function of (module, exports, require).
constexpr const char* kLoader = R"JS(
(function () {
  var definitions = {}, cache = {};
  window.__coopDefine = function (name, factory) { definitions[name] = factory; };
  window.__coopRequire = function require(name) {
    if (cache[name]) { return cache[name].exports; }
    if (!definitions[name]) { throw new Error("coop-docs: no module " + name); }
    var module = { exports: {} };
    cache[name] = module;
    definitions[name].call(module.exports, module, module.exports, require);
    return module.exports;
  };
})();
)JS";

using Modules = std::vector<std::pair<std::string, std::string>>;

// A whole file; empty when it cannot be read (missing names it).
std::string read_app_file(const fs::path& file, std::string& missing) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    missing = file.string();
    return {};
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// npm files as CommonJS modules for the page's loader, then `tail`; empty when a file is
// missing (missing names it).
std::string bundle_modules(const fs::path& web_dir, const Modules& modules, std::string_view head, std::string_view tail,
                           std::string& missing) {
  std::string bundle(head);
  for (const auto& [name, file] : modules) {
    const std::string text = read_app_file(web_dir / file, missing);
    if (text.empty()) return {};
    bundle += "window.__coopDefine(\"" + name + "\", function (module, exports, require) {\n" + text + "\n});\n";
  }
  bundle += tail;
  return bundle;
}

}  // namespace

Editor::Editor(fs::path web_dir, fs::path app_dir, std::string frame_ancestors)
    : frame_ancestors_(std::move(frame_ancestors)) {
  const Modules modules = {
      {"tweetnacl/nacl-fast", "tweetnacl/nacl-fast.min.js"},
      {"tweetnacl-util", "tweetnacl-util/nacl-util.min.js"},
      {"netflux-websocket", "netflux-websocket/netflux-client.js"},
      {"chainpad", "chainpad/chainpad.dist.js"},
      {"chainpad-crypto", "chainpad-crypto/crypto.js"},
      {"chainpad-netflux", "chainpad-netflux/chainpad-netflux.js"},
      {"hyper-json", "hyper-json/hyperjson.js"},
      {"json.sortify", "json.sortify/dist/JSON.sortify.js"},
      {"markdown-it", "markdown-it/dist/markdown-it.min.js"},
      {"orderedmap", "orderedmap/dist/index.cjs"},
      {"rope-sequence", "rope-sequence/dist/index.cjs"},
      {"w3c-keyname", "w3c-keyname/index.cjs"},
      {"prosemirror-model", "prosemirror-model/dist/index.cjs"},
      {"prosemirror-transform", "prosemirror-transform/dist/index.cjs"},
      {"prosemirror-state", "prosemirror-state/dist/index.cjs"},
      {"prosemirror-view", "prosemirror-view/dist/index.cjs"},
      {"prosemirror-keymap", "prosemirror-keymap/dist/index.cjs"},
      {"prosemirror-commands", "prosemirror-commands/dist/index.cjs"},
      {"prosemirror-history", "prosemirror-history/dist/index.cjs"},
      {"prosemirror-schema-basic", "prosemirror-schema-basic/dist/index.cjs"},
      {"prosemirror-schema-list", "prosemirror-schema-list/dist/index.cjs"},
      {"prosemirror-tables", "prosemirror-tables/dist/index.cjs"},
      {"prosemirror-inputrules", "prosemirror-inputrules/dist/index.cjs"},
      {"prosemirror-dropcursor", "prosemirror-dropcursor/dist/index.cjs"},
      {"prosemirror-gapcursor", "prosemirror-gapcursor/dist/index.cjs"},
      {"prosemirror-markdown", "prosemirror-markdown/dist/index.cjs"},
  };
  const std::string head =
      std::string("/* coop-docs editor: CryptPad's libraries, ProseMirror, hyper-json, json.sortify and markdown-it from npm\n"
                  "   (their licences apply), and coop's editor (workers/docs/web/app). */\n") +
      kLoader;
  const std::string script = read_app_file(app_dir / "editor.js", missing_);
  page_ = read_app_file(app_dir / "page.html", missing_);
  if (!script.empty()) editor_.body = bundle_modules(web_dir, modules, head, script, missing_);
  // libsodium (for Argon2id, the title key) is a megabyte: only a member signing in loads it.
  const Modules sodium = {
      {"libsodium-sumo", "libsodium-sumo/dist/modules-sumo/libsodium-sumo.js"},
      {"libsodium-wrappers-sumo", "libsodium-wrappers-sumo/dist/modules-sumo/libsodium-wrappers.js"},
  };
  if (!editor_.body.empty()) sodium_.body = bundle_modules(web_dir, sodium, "/* libsodium.js from npm (ISC licence). */\n", "", missing_);
  // Spreadsheets: formulas (HyperFormula, which parses them and never runs them as code) and
  // CSV, loaded by a spreadsheet's page only; ExcelJS (a megabyte) only for XLSX files.
  const Modules sheet = {
      {"hyperformula", "hyperformula/dist/hyperformula.full.min.js"},
      {"papaparse", "papaparse/papaparse.min.js"},
  };
  const std::string sheet_script = read_app_file(app_dir / "sheet.js", missing_);
  if (!sheet_script.empty())
    sheet_.body = bundle_modules(web_dir, sheet,
                                 "/* HyperFormula (GPL-3.0) and Papa Parse (MIT) from npm, and coop's spreadsheet "
                                 "(workers/docs/web/app/sheet.js). */\n",
                                 sheet_script, missing_);
  xlsx_.body = bundle_modules(web_dir, {{"exceljs", "exceljs/dist/exceljs.min.js"}}, "/* ExcelJS from npm (MIT). */\n", "",
                              missing_);
  ready_ = !editor_.body.empty() && !sodium_.body.empty() && !page_.empty() && !sheet_.body.empty() && !xlsx_.body.empty();
  for (auto* script : {&editor_, &sodium_, &sheet_, &xlsx_})
    script->tag = "\"" + sha256_hex(script->body).substr(0, 32) + "\"";
}

http::Response Editor::handle(const http::Request& request) const {
  if (request.method != "GET" && request.method != "HEAD") return http::Response::bytes(405, "GET only\n", "text/plain");
  if (request.path == "/docs" || request.path == "/docs/" || request.path == "/docs/index.html") {
    if (!ready_)
      return http::Response::bytes(503, "the editor is not installed (scripts/install-deps): " + missing_ + "\n", "text/plain");
    auto r = http::Response::bytes(200, page_, "text/html; charset=utf-8");
    // Scripts from this server only (WebAssembly allowed for libsodium's Argon2id); the key
    // in the fragment never leaves the page.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
                           "style-src 'unsafe-inline'; img-src 'self' data: blob:; frame-ancestors " +
                               frame_ancestors_);
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  }
  const Script* script = nullptr;
  const char* type = "text/javascript; charset=utf-8";
  if (request.path == "/docs/editor.js") script = &editor_;
  else if (request.path == "/docs/sodium.js") script = &sodium_;
  else if (request.path == "/docs/sheet.js") script = &sheet_;
  else if (request.path == "/docs/xlsx.js") script = &xlsx_;
  if (!script) return http::Response::bytes(404, "not found\n", "text/plain");
  if (!ready_)
    return http::Response::bytes(503, "the editor's libraries are not installed (scripts/install-deps): " + missing_ + "\n",
                                 "text/plain");
  if (request.header("if-none-match") == script->tag) {
    auto r = http::Response::bytes(304, "", type);
    r.headers.emplace_back("ETag", script->tag);
    return r;
  }
  auto r = http::Response::bytes(200, script->body, type);
  r.headers.emplace_back("ETag", script->tag);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

}  // namespace coop::docs
