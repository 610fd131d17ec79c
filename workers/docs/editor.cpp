// The editor page and its script.
#include "workers/docs/editor.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "common/digest.h"

namespace fs = std::filesystem;

namespace coop::docs {

namespace {

// The editor's own code: keys from the fragment (never sent to the server), then a textarea
// kept in step with the document through chainpad-netflux.
constexpr const char* kEditorScript = R"JS(
(function () {
  "use strict";
  var require = window.__coopRequire;
  var Netflux = require("netflux-websocket");
  var CPNF = require("chainpad-netflux");
  var ChainPad = require("chainpad");
  var Crypto = require("chainpad-crypto");
  var NaclUtil = require("tweetnacl-util");
  var status = document.getElementById("status");
  var area = document.getElementById("text");
  var match = /^#\/2\/[a-z]+\/edit\/([A-Za-z0-9+\-]{24})\/?/.exec(location.hash);
  if (!match) {
    status.textContent = "Open a document link: coop docs new prints one.";
    return;
  }
  var keys = Crypto.createEditCryptor2(match[1]);
  var raw = keys.chanId.replace(/-/g, "/");
  while (raw.length % 4) { raw += "="; }
  var channel = Array.prototype.map.call(NaclUtil.decodeBase64(raw), function (b) {
    return ("0" + b.toString(16)).slice(-2);
  }).join("");
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/cryptpad_websocket";
  var realtime = null;
  CPNF.start({
    network: Netflux.connect(url),
    channel: channel,
    crypto: Crypto.createEncryptor(keys),
    validateKey: keys.validateKey,
    ChainPad: ChainPad,
    initialState: "",
    avgSyncMilliseconds: 100,
    logLevel: 0,
    onReady: function (info) {
      realtime = info.realtime;
      area.value = realtime.getUserDoc();
      area.disabled = false;
      status.textContent = "Connected; end-to-end encrypted";
      realtime.onPatch(function () {
        var doc = realtime.getUserDoc();
        if (doc === area.value) { return; }
        // Keep the cursor where it was, as far as the text before it is unchanged.
        var start = area.selectionStart, end = area.selectionEnd;
        area.value = doc;
        area.setSelectionRange(Math.min(start, doc.length), Math.min(end, doc.length));
      });
      window.coopDocReady = true;
    },
    onConnectionChange: function (info) {
      status.textContent = info.state ? "Connected; end-to-end encrypted" : "Reconnecting...";
    },
    onError: function () { status.textContent = "The document server refused this document."; },
    onChannelError: function () { status.textContent = "This document is gone."; }
  });
  area.addEventListener("input", function () {
    if (realtime) { realtime.contentUpdate(area.value); }
  });
})();
)JS";

constexpr const char* kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Document</title>
<link rel="icon" href="data:,">
<style>
html, body { margin: 0; height: 100%; font: 15px/1.5 system-ui, sans-serif; background: #fafaf7; }
#status { padding: 6px 12px; color: #555; border-bottom: 1px solid #ddd; }
#text { box-sizing: border-box; width: 100%; height: calc(100% - 36px); border: 0; padding: 16px;
        font: 15px/1.6 ui-monospace, monospace; background: #fff; resize: none; outline: none; }
</style>
</head>
<body>
<div id="status">Connecting...</div>
<textarea id="text" disabled spellcheck="true" aria-label="Document text"></textarea>
<script src="/docs/editor.js"></script>
</body>
</html>
)HTML";

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

}  // namespace

Editor::Editor(fs::path web_dir) {
  const std::vector<std::pair<std::string, std::string>> modules = {
      {"tweetnacl/nacl-fast", "tweetnacl/nacl-fast.min.js"},
      {"tweetnacl-util", "tweetnacl-util/nacl-util.min.js"},
      {"netflux-websocket", "netflux-websocket/netflux-client.js"},
      {"chainpad", "chainpad/chainpad.dist.js"},
      {"chainpad-crypto", "chainpad-crypto/crypto.js"},
      {"chainpad-netflux", "chainpad-netflux/chainpad-netflux.js"},
  };
  std::ostringstream bundle;
  bundle << "/* coop-docs editor: CryptPad's libraries from npm (their licences apply), and coop's editor. */\n"
         << kLoader;
  for (const auto& [name, file] : modules) {
    std::ifstream in(web_dir / file, std::ios::binary);
    if (!in) {
      missing_ = (web_dir / file).string();
      return;
    }
    bundle << "window.__coopDefine(\"" << name << "\", function (module, exports, require) {\n"
           << in.rdbuf() << "\n});\n";
  }
  bundle << kEditorScript;
  bundle_ = bundle.str();
  tag_ = "\"" + sha256_hex(bundle_).substr(0, 32) + "\"";
  ready_ = true;
}

http::Response Editor::handle(const http::Request& request) const {
  if (request.method != "GET" && request.method != "HEAD") return http::Response::bytes(405, "GET only\n", "text/plain");
  if (request.path == "/docs" || request.path == "/docs/" || request.path == "/docs/index.html") {
    auto r = http::Response::bytes(200, kPage, "text/html; charset=utf-8");
    // Scripts from this server only; the key in the fragment never leaves the page.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  }
  if (request.path == "/docs/editor.js") {
    if (!ready_)
      return http::Response::bytes(503, "the editor's libraries are not installed (scripts/install-deps)\n", "text/plain");
    if (request.header("if-none-match") == tag_) {
      auto r = http::Response::bytes(304, "", "text/javascript; charset=utf-8");
      r.headers.emplace_back("ETag", tag_);
      return r;
    }
    auto r = http::Response::bytes(200, bundle_, "text/javascript; charset=utf-8");
    r.headers.emplace_back("ETag", tag_);
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return r;
  }
  return http::Response::bytes(404, "not found\n", "text/plain");
}

}  // namespace coop::docs
