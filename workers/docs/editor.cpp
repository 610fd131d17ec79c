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
// kept in step with the document through chainpad-netflux; a Markdown preview; and, for a
// signed-in member, new owned documents, encrypted attachments and deletion.
constexpr const char* kEditorScript = R"JS(
(function () {
  "use strict";
  var require = window.__coopRequire;
  var Netflux = require("netflux-websocket");
  var CPNF = require("chainpad-netflux");
  var ChainPad = require("chainpad");
  var Crypto = require("chainpad-crypto");
  var Nacl = require("tweetnacl/nacl-fast");
  var NaclUtil = require("tweetnacl-util");
  var MarkdownIt = require("markdown-it");
  // Raw HTML stays text: what another editor typed must never run as script on this page,
  // which holds the document's key.
  var markdown = new MarkdownIt({ html: false, linkify: true });
  var $ = function (id) { return document.getElementById(id); };
  var status = $("status"), area = $("text"), preview = $("preview");
  var SESSION = "coop-docs-session", PENDING = "coop-docs-pending-claim";
  var realtime = null, channel = null, previewing = false;

  function say(text) { status.textContent = text; }
  function b64url(bytes) { return NaclUtil.encodeBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""); }
  function fromB64url(text) {
    var raw = text.replace(/-/g, "+").replace(/_/g, "/");
    while (raw.length % 4) { raw += "="; }
    return NaclUtil.decodeBase64(raw);
  }
  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function channelOf(keys) { return hex(fromB64url(keys.chanId.replace(/-/g, "/").replace(/\//g, "_"))); }

  // The member's session: the token, their handle and the key their titles are sealed with
  // (Argon2id of the password they signed in with, as `coop docs` derives it).
  function session() {
    try { return JSON.parse(localStorage.getItem(SESSION)); } catch (e) { return null; }
  }
  function api(method, path, body, headers) {
    headers = headers || {};
    var s = session();
    if (s && !headers.Authorization) { headers.Authorization = "Bearer " + s.token; }
    var init = { method: method, headers: headers };
    if (body instanceof Uint8Array) {
      headers["Content-Type"] = "application/octet-stream";
      init.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var json = null;
        try { json = JSON.parse(text); } catch (e) { json = null; }
        return { status: response.status, json: json };
      });
    });
  }
  function failure(result) {
    return (result.json && result.json.error && result.json.error.message) || ("HTTP " + result.status);
  }
  function showSession() {
    var s = session();
    $("who").textContent = s ? s.handle : "";
    ["signout", "newdoc", "attach-label", "delete"].forEach(function (id) { $(id).hidden = !s; });
    $("signin").hidden = !!s;
  }
  function loadSodium() {
    if (window.__coopSodium) { return window.__coopSodium; }
    window.__coopSodium = new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = "/docs/sodium.js";
      script.onload = function () {
        var sodium = require("libsodium-wrappers-sumo");
        sodium.ready.then(function () { resolve(sodium); }, reject);
      };
      script.onerror = reject;
      document.head.appendChild(script);
    });
    return window.__coopSodium;
  }
  function titleKey(sodium, handle, password) {
    var salt = sodium.crypto_hash_sha256(sodium.from_string("coop-docs titles:" + handle)).slice(0, sodium.crypto_pwhash_SALTBYTES);
    return sodium.crypto_pwhash(32, password, salt, sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE, sodium.crypto_pwhash_ALG_ARGON2ID13);
  }
  function sealTitle(title, key) {
    var nonce = Nacl.randomBytes(24);
    var box = Nacl.secretbox(NaclUtil.decodeUTF8(title), nonce, key);
    return NaclUtil.encodeBase64(nonce) + "|" + NaclUtil.encodeBase64(box);
  }

  $("signin-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var handle = $("handle").value.trim(), password = $("password").value;
    var basic = "Basic " + btoa(unescape(encodeURIComponent(handle + ":" + password)));
    say("Signing in...");
    api("POST", "/docs/api/session", {}, { Authorization: basic }).then(function (result) {
      if (result.status !== 201) { throw new Error(result.status === 401 ? "Wrong handle or password." : failure(result)); }
      return loadSodium().then(function (sodium) {
        localStorage.setItem(SESSION, JSON.stringify({
          token: result.json.token, handle: result.json.handle, expires_at: result.json.expires_at,
          titleKey: NaclUtil.encodeBase64(titleKey(sodium, result.json.handle, password))
        }));
        $("password").value = "";
        $("signin-dialog").close();
        showSession();
        say("Signed in as " + result.json.handle);
      });
    }).catch(function (error) { say(error.message); });
  });
  $("signin").addEventListener("click", function () { $("signin-dialog").showModal(); });
  $("signin-cancel").addEventListener("click", function () { $("signin-dialog").close(); });
  $("signout").addEventListener("click", function () {
    api("DELETE", "/docs/api/session").then(function () {
      localStorage.removeItem(SESSION);
      showSession();
      say("Signed out");
    });
  });

  // A new document is owned before anything is written in it: it opens, sends its keys'
  // public half with its first history request, then the claim goes in (see onReady).
  $("newdoc").addEventListener("click", function () {
    var title = prompt("Title of the new document (only you can read it):", "");
    if (title === null) { return; }
    var keys = Crypto.createEditCryptor2();
    sessionStorage.setItem(PENDING, JSON.stringify({ channel: channelOf(keys), title: title }));
    location.hash = "#/2/pad/edit/" + keys.editKeyStr + "/";
    location.reload();
  });
  function claimIfPending() {
    var pending = null;
    try { pending = JSON.parse(sessionStorage.getItem(PENDING)); } catch (e) { pending = null; }
    var s = session();
    if (!pending || pending.channel !== channel || !s) { return; }
    sessionStorage.removeItem(PENDING);
    var title = sealTitle(pending.title, NaclUtil.decodeBase64(s.titleKey));
    api("POST", "/docs/api/documents", { channel: channel, title: title }).then(function (result) {
      say(result.status === 201 ? "Yours: " + pending.title + " (end-to-end encrypted)" : "Not owned: " + failure(result));
      window.coopDocOwned = result.status === 201;
    });
  }

  $("delete").addEventListener("click", function () {
    if (!channel || !confirm("Delete this document for everyone? Its history is removed from the server.")) { return; }
    api("DELETE", "/docs/api/documents/" + channel).then(function (result) {
      say(result.status === 200 ? "Deleted." : "Not deleted: " + failure(result));
    });
  });

  // Attachments: encrypted here with a fresh key (NaCl secretbox, the nonce first), uploaded
  // in chunks, and linked from the text with the key in the link's fragment.
  var CHUNK = 4 << 20;
  $("attach").addEventListener("change", function () {
    var file = $("attach").files[0];
    $("attach").value = "";
    if (!file || !realtime) { return; }
    say("Encrypting " + file.name + "...");
    file.arrayBuffer().then(function (buffer) {
      var key = Nacl.randomBytes(32), nonce = Nacl.randomBytes(24);
      var box = Nacl.secretbox(new Uint8Array(buffer), nonce, key);
      var sealed = new Uint8Array(nonce.length + box.length);
      sealed.set(nonce, 0);
      sealed.set(box, nonce.length);
      return api("POST", "/docs/api/blobs", { size: sealed.length }).then(function (result) {
        if (result.status !== 201) { throw new Error(failure(result)); }
        var id = result.json.id;
        var send = function (offset) {
          if (offset >= sealed.length) { return Promise.resolve(id); }
          say("Uploading " + file.name + ": " + Math.round(100 * offset / sealed.length) + "%");
          return api("PUT", "/docs/api/blobs/" + id + "?offset=" + offset, sealed.subarray(offset, offset + CHUNK))
            .then(function (put) {
              if (put.status !== 200) { throw new Error(failure(put)); }
              return send(offset + CHUNK);
            });
        };
        return send(0).then(function () {
          var name = file.name.replace(/[\[\]\\]/g, "_");
          var link = "[" + name + "](/docs/blob/" + id + "#" + b64url(key) + ")";
          var at = area.selectionEnd;
          area.value = area.value.slice(0, at) + (at > 0 && area.value[at - 1] !== "\n" ? "\n" : "") + link + "\n" + area.value.slice(at);
          realtime.contentUpdate(area.value);
          if (previewing) { render(); }
          say("Attached " + file.name);
        });
      });
    }).catch(function (error) { say("Not attached: " + error.message); });
  });
  preview.addEventListener("click", function (event) {
    var link = event.target.closest("a");
    var match = link && /^\/docs\/blob\/([0-9a-f]{48})#([A-Za-z0-9_-]{43})$/.exec(link.getAttribute("href"));
    if (!match) { return; }
    event.preventDefault();
    fetch("/docs/blob/" + match[1]).then(function (r) { return r.arrayBuffer(); }).then(function (buffer) {
      var bytes = new Uint8Array(buffer);
      var plain = Nacl.secretbox.open(bytes.subarray(24), bytes.subarray(0, 24), fromB64url(match[2]));
      if (!plain) { throw new Error("the attachment does not open with this link's key"); }
      var a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([plain]));
      a.download = link.textContent;
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
    }).catch(function (error) { say(error.message); });
  });

  function render() { preview.innerHTML = markdown.render(area.value); }
  $("mode").addEventListener("click", function () {
    previewing = !previewing;
    if (previewing) { render(); }
    preview.hidden = !previewing;
    area.hidden = previewing;
    $("mode").textContent = previewing ? "Edit" : "Preview";
  });

  showSession();
  var match = /^#\/2\/[a-z]+\/edit\/([A-Za-z0-9+\-]{24})\/?/.exec(location.hash);
  if (!match) {
    say("Open a document link: coop docs new prints one" + (session() ? ", or make a new one." : "."));
    return;
  }
  var keys = Crypto.createEditCryptor2(match[1]);
  channel = channelOf(keys);
  var signedIn = session();
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/cryptpad_websocket" +
            (signedIn ? "?session=" + encodeURIComponent(signedIn.token) : "");
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
      say("Connected; end-to-end encrypted");
      realtime.onPatch(function () {
        var doc = realtime.getUserDoc();
        if (doc === area.value) { return; }
        // Keep the cursor where it was, as far as the text before it is unchanged.
        var start = area.selectionStart, end = area.selectionEnd;
        area.value = doc;
        area.setSelectionRange(Math.min(start, doc.length), Math.min(end, doc.length));
        if (previewing) { render(); }
      });
      claimIfPending();
      window.coopDocReady = true;
    },
    onConnectionChange: function (info) {
      say(info.state ? "Connected; end-to-end encrypted" : "Reconnecting...");
    },
    onError: function () { say("The document server refused this document."); },
    onChannelError: function () { say("This document is gone."); }
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
header { display: flex; gap: 8px; align-items: center; padding: 4px 12px; border-bottom: 1px solid #ddd; }
#status { flex: 1; color: #555; }
#who { color: #333; font-weight: 600; }
button, .button { font: inherit; padding: 2px 10px; border: 1px solid #bbb; border-radius: 4px; background: #fff; cursor: pointer; }
#attach { display: none; }
main { height: calc(100% - 38px); }
#text, #preview { box-sizing: border-box; width: 100%; height: 100%; border: 0; padding: 16px 24px; background: #fff; overflow: auto; }
#text { font: 15px/1.6 ui-monospace, monospace; resize: none; outline: none; }
#preview { max-width: 48rem; margin: 0 auto; }
dialog form { display: grid; gap: 8px; min-width: 18rem; }
</style>
</head>
<body>
<header>
<span id="status">Connecting...</span>
<button id="mode" type="button">Preview</button>
<span id="who"></span>
<button id="signin" type="button">Sign in</button>
<button id="newdoc" type="button" hidden>New document</button>
<label id="attach-label" class="button" hidden>Attach a file<input id="attach" type="file"></label>
<button id="delete" type="button" hidden>Delete</button>
<button id="signout" type="button" hidden>Sign out</button>
</header>
<main>
<textarea id="text" disabled spellcheck="true" aria-label="Document text"></textarea>
<article id="preview" hidden></article>
</main>
<dialog id="signin-dialog">
<form id="signin-form">
<strong>Sign in with your coop handle</strong>
<input id="handle" autocomplete="username" placeholder="handle" required>
<input id="password" type="password" autocomplete="current-password" placeholder="password or app password" required>
<div><button type="submit">Sign in</button> <button id="signin-cancel" type="button">Cancel</button></div>
</form>
</dialog>
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

namespace {

using Modules = std::vector<std::pair<std::string, std::string>>;

// npm files as CommonJS modules for the page's loader, then `tail`; empty when a file is
// missing (missing names it).
std::string bundle_modules(const fs::path& web_dir, const Modules& modules, std::string_view head, std::string_view tail,
                           std::string& missing) {
  std::ostringstream bundle;
  bundle << head;
  for (const auto& [name, file] : modules) {
    std::ifstream in(web_dir / file, std::ios::binary);
    if (!in) {
      missing = (web_dir / file).string();
      return {};
    }
    bundle << "window.__coopDefine(\"" << name << "\", function (module, exports, require) {\n"
           << in.rdbuf() << "\n});\n";
  }
  bundle << tail;
  return bundle.str();
}

}  // namespace

Editor::Editor(fs::path web_dir) {
  const Modules modules = {
      {"tweetnacl/nacl-fast", "tweetnacl/nacl-fast.min.js"},
      {"tweetnacl-util", "tweetnacl-util/nacl-util.min.js"},
      {"netflux-websocket", "netflux-websocket/netflux-client.js"},
      {"chainpad", "chainpad/chainpad.dist.js"},
      {"chainpad-crypto", "chainpad-crypto/crypto.js"},
      {"chainpad-netflux", "chainpad-netflux/chainpad-netflux.js"},
      {"markdown-it", "markdown-it/dist/markdown-it.min.js"},
  };
  const std::string head =
      std::string("/* coop-docs editor: CryptPad's libraries and markdown-it from npm (their licences apply), and coop's editor. */\n") +
      kLoader;
  editor_.body = bundle_modules(web_dir, modules, head, kEditorScript, missing_);
  // libsodium (for Argon2id, the title key) is a megabyte: only a member signing in loads it.
  const Modules sodium = {
      {"libsodium-sumo", "libsodium-sumo/dist/modules-sumo/libsodium-sumo.js"},
      {"libsodium-wrappers-sumo", "libsodium-wrappers-sumo/dist/modules-sumo/libsodium-wrappers.js"},
  };
  if (!editor_.body.empty()) sodium_.body = bundle_modules(web_dir, sodium, "/* libsodium.js from npm (ISC licence). */\n", "", missing_);
  ready_ = !editor_.body.empty() && !sodium_.body.empty();
  for (auto* script : {&editor_, &sodium_}) script->tag = "\"" + sha256_hex(script->body).substr(0, 32) + "\"";
}

http::Response Editor::handle(const http::Request& request) const {
  if (request.method != "GET" && request.method != "HEAD") return http::Response::bytes(405, "GET only\n", "text/plain");
  if (request.path == "/docs" || request.path == "/docs/" || request.path == "/docs/index.html") {
    auto r = http::Response::bytes(200, kPage, "text/html; charset=utf-8");
    // Scripts from this server only (WebAssembly allowed for libsodium's Argon2id); the key
    // in the fragment never leaves the page.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
                           "style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  }
  const Script* script = request.path == "/docs/editor.js" ? &editor_ : request.path == "/docs/sodium.js" ? &sodium_ : nullptr;
  if (!script) return http::Response::bytes(404, "not found\n", "text/plain");
  if (!ready_)
    return http::Response::bytes(503, "the editor's libraries are not installed (scripts/install-deps): " + missing_ + "\n",
                                 "text/plain");
  if (request.header("if-none-match") == script->tag) {
    auto r = http::Response::bytes(304, "", "text/javascript; charset=utf-8");
    r.headers.emplace_back("ETag", script->tag);
    return r;
  }
  auto r = http::Response::bytes(200, script->body, "text/javascript; charset=utf-8");
  r.headers.emplace_back("ETag", script->tag);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

}  // namespace coop::docs
