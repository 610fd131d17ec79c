// coop-docs' rich-text editor. ProseMirror edits the document; the document travels as
// CryptPad's pad does (JSON.sortify of ["BODY", attributes, hyper-json children, {metadata}])
// through CryptPad's own chainpad-netflux, chainpad and chainpad-crypto, so CryptPad's client
// libraries read what this page writes. Everything is encrypted here; the key is in the
// link's fragment. Who else is in the document, and where their cursors are, goes over an
// ephemeral Netflux channel (never stored), encrypted with the same key.
(function () {
  "use strict";
  var require = window.__coopRequire;
  var Netflux = require("netflux-websocket");
  var CPNF = require("chainpad-netflux");
  var ChainPad = require("chainpad");
  var Crypto = require("chainpad-crypto");
  var Nacl = require("tweetnacl/nacl-fast");
  var NaclUtil = require("tweetnacl-util");
  var Hyperjson = require("hyper-json");
  var Sortify = require("json.sortify");
  var MarkdownIt = require("markdown-it");
  var M = require("prosemirror-model");
  var S = require("prosemirror-state");
  var V = require("prosemirror-view");
  var commands = require("prosemirror-commands");
  var keymap = require("prosemirror-keymap").keymap;
  var history = require("prosemirror-history");
  var basic = require("prosemirror-schema-basic");
  var lists = require("prosemirror-schema-list");
  var tables = require("prosemirror-tables");
  var rules = require("prosemirror-inputrules");
  var dropCursor = require("prosemirror-dropcursor").dropCursor;
  var gapCursor = require("prosemirror-gapcursor").gapCursor;
  var PMMarkdown = require("prosemirror-markdown");

  var $ = function (id) { return document.getElementById(id); };
  var SESSION = "coop-docs-session", PENDING = "coop-docs-pending-claim";
  // CryptPad's pad editor normalizes BODY's attributes to these.
  var BODY = { "class": "cke_editable cke_editable_themed cke_contents_ltr cke_show_borders",
               "contenteditable": "true", "spellcheck": "false" };
  // Documents are built and read in a document of their own: nothing in it loads or runs.
  var inert = document.implementation.createHTMLDocument("");
  // What older coop documents hold (Markdown text): raw HTML in them stays text.
  var markdown = new MarkdownIt({ html: false, linkify: true });

  var realtime = null, view = null, sheet = null, type = "pad", channel = null, keys = null, canEdit = false, ready = false;
  var lastContent = null, title = "", historyMode = false, owned = [];

  function say(text) { $("status").textContent = text; }
  function b64url(bytes) { return NaclUtil.encodeBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""); }
  function fromB64url(text) {
    var raw = text.replace(/-/g, "+").replace(/_/g, "/");
    while (raw.length % 4) { raw += "="; }
    return NaclUtil.decodeBase64(raw);
  }
  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function channelOf(k) { return hex(fromB64url(k.chanId.replace(/-/g, "/").replace(/\//g, "_"))); }

  // --- The schema: ProseMirror's basic nodes and lists, checklists, tables, strikethrough ---

  // Where links and images may point: the web, mail, this server's paths and attachments.
  function safeAddress(url) {
    if (typeof url !== "string" || !url) { return false; }
    var lower = url.trim().toLowerCase();
    if (/^(https?:|mailto:)/.test(lower)) { return true; }
    var colon = lower.indexOf(":"), stop = lower.search(/[\/?#]/);
    return colon === -1 || (stop !== -1 && stop < colon);
  }
  var nodes = lists.addListNodes(basic.schema.spec.nodes, "paragraph block*", "block");
  nodes = nodes.update("image", {
    inline: true, group: "inline", draggable: true,
    attrs: { src: {}, alt: { default: null }, title: { default: null } },
    parseDOM: [{ tag: "img[src]", getAttrs: function (dom) {
      var src = dom.getAttribute("src");
      return safeAddress(src) ? { src: src, alt: dom.getAttribute("alt"), title: dom.getAttribute("title") } : false;
    } }],
    toDOM: function (node) { return ["img", { src: node.attrs.src, alt: node.attrs.alt, title: node.attrs.title }]; }
  });
  nodes = nodes.append({
    checklist: {
      group: "block", content: "checklist_item+",
      parseDOM: [{ tag: "ul[data-checklist]", priority: 60 }],
      toDOM: function () { return ["ul", { "data-checklist": "true" }, 0]; }
    },
    checklist_item: {
      content: "paragraph block*", defining: true, attrs: { checked: { default: false } },
      parseDOM: [{ tag: "li[data-checked]", priority: 60,
                   getAttrs: function (dom) { return { checked: dom.getAttribute("data-checked") === "true" }; } }],
      toDOM: function (node) { return ["li", { "data-checked": node.attrs.checked ? "true" : "false" }, 0]; }
    }
  });
  nodes = nodes.append(tables.tableNodes({ tableGroup: "block", cellContent: "block+", cellAttributes: {} }));
  var marks = basic.schema.spec.marks.update("link", {
    attrs: { href: {}, title: { default: null } }, inclusive: false,
    parseDOM: [{ tag: "a[href]", getAttrs: function (dom) {
      var href = dom.getAttribute("href");
      return safeAddress(href) ? { href: href, title: dom.getAttribute("title") } : false;
    } }],
    toDOM: function (mark) { return ["a", { href: mark.attrs.href, title: mark.attrs.title }, 0]; }
  }).addToEnd("strike", {
    parseDOM: [{ tag: "s" }, { tag: "del" }, { tag: "strike" }, { style: "text-decoration=line-through" }],
    toDOM: function () { return ["s", 0]; }
  });
  var schema = new M.Schema({ nodes: nodes, marks: marks });
  var parser = M.DOMParser.fromSchema(schema);
  var serializer = M.DOMSerializer.fromSchema(schema);

  // --- The document: ProseMirror's doc to CryptPad's pad content and back ---

  function hyperjsonToInert(hj, depth) {
    if (typeof hj === "string") { return inert.createTextNode(hj); }
    if (depth > 200 || !Array.isArray(hj) || typeof hj[0] !== "string" || !/^[A-Za-z][A-Za-z0-9-]*$/.test(hj[0])) { return null; }
    var el = inert.createElement(hj[0]);
    var attrs = hj[1] && typeof hj[1] === "object" ? hj[1] : {};
    Object.keys(attrs).forEach(function (k) {
      if (/^[A-Za-z][A-Za-z0-9_:-]*$/.test(k) && typeof attrs[k] === "string") { el.setAttribute(k, attrs[k]); }
    });
    (Array.isArray(hj[2]) ? hj[2] : []).forEach(function (c) {
      var child = hyperjsonToInert(c, depth + 1);
      if (child) { el.appendChild(child); }
    });
    return el;
  }
  function parseContent(content) {
    var holder = inert.createElement("div"), found = "";
    if (content) {
      var parsed = null;
      try { parsed = JSON.parse(content); } catch (e) { parsed = null; }
      if (Array.isArray(parsed) && parsed[0] === "BODY" && Array.isArray(parsed[2])) {
        var last = parsed[parsed.length - 1];
        if (last && typeof last === "object" && !Array.isArray(last) && last.metadata &&
            typeof last.metadata.title === "string") { found = last.metadata.title; }
        parsed[2].forEach(function (child) {
          var n = hyperjsonToInert(child, 0);
          if (n) { holder.appendChild(n); }
        });
      } else {
        // A document from an older coop: Markdown text.
        holder.innerHTML = markdown.render(content);
      }
    }
    return { doc: parser.parse(holder), title: found };
  }
  function serialize(doc) {
    var holder = inert.createElement("div");
    holder.appendChild(serializer.serializeFragment(doc.content, { document: inert }));
    var hj = Hyperjson.fromDOM(holder);
    var metadata = { defaultTitle: "Rich text", type: "pad" };
    if (title) { metadata.title = title; }
    return Sortify(["BODY", BODY, hj[2], { metadata: metadata }]);
  }
  function firstLine(doc) {
    var text = "";
    doc.forEach(function (node) { if (!text) { text = node.textContent.trim(); } });
    return text.slice(0, 120);
  }
  function showTitle() {
    if (document.activeElement !== $("title")) { $("title").value = title; }
    $("title").placeholder = (view && firstLine(view.state.doc)) || (type === "sheet" ? "Untitled spreadsheet" : "Untitled document");
    var shown = title || (view && firstLine(view.state.doc)) || (sheet ? "Untitled spreadsheet" : "Untitled document");
    document.title = shown + " · coop";
  }

  // --- Exports: HTML and Markdown files made here ---

  var mdSerializer = new PMMarkdown.MarkdownSerializer(Object.assign({}, PMMarkdown.defaultMarkdownSerializer.nodes, {
    checklist: function (state, node) { state.renderList(node, "  ", function () { return "- "; }); },
    checklist_item: function (state, node) { state.write(node.attrs.checked ? "[x] " : "[ ] "); state.renderContent(node); },
    table: function (state, node) {
      var rows = [];
      node.forEach(function (row) {
        var cells = [];
        row.forEach(function (cell) { cells.push(cell.textContent.replace(/\|/g, "\\|").replace(/\n/g, " ")); });
        rows.push(cells);
      });
      var width = Math.max.apply(null, rows.map(function (r) { return r.length; }));
      var lines = rows.map(function (r) {
        var cells = r.slice();
        while (cells.length < width) { cells.push(""); }
        return "| " + cells.join(" | ") + " |";
      });
      lines.splice(1, 0, "|" + new Array(width + 1).join(" --- |"));
      state.text(lines.join("\n"), false);
      state.closeBlock(node);
    }
  }), Object.assign({}, PMMarkdown.defaultMarkdownSerializer.marks, {
    strike: { open: "~~", close: "~~", mixable: true, expelEnclosingWhitespace: true }
  }));
  function toMarkdown() { return mdSerializer.serialize(view.state.doc) + "\n"; }
  function escapeHtml(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function toHtml() {
    var holder = inert.createElement("div");
    holder.appendChild(serializer.serializeFragment(view.state.doc.content, { document: inert }));
    return "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>" + escapeHtml(title || firstLine(view.state.doc)) +
           "</title>\n</head>\n<body>\n" + holder.innerHTML + "\n</body>\n</html>\n";
  }
  function download(name, text, type) {
    var a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: type }));
    a.download = name;
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
  }
  function fileName(extension) {
    return ((title || (view ? firstLine(view.state.doc) : "") || (sheet ? "spreadsheet" : "document")).replace(/[\\\/:*?"<>|\x00-\x1f]+/g, "_").slice(0, 80)) + extension;
  }
  $("export-html").addEventListener("click", function () { download(fileName(".html"), toHtml(), "text/html"); });
  $("export-md").addEventListener("click", function () { download(fileName(".md"), toMarkdown(), "text/markdown"); });

  // --- Attachments: encrypted here (NaCl secretbox, nonce first), uploaded in chunks ---

  var blobCache = {};
  var BLOB = /^\/docs\/blob\/([0-9a-f]{48})#([A-Za-z0-9_-]{43})$/;
  function openBlob(src) {
    var match = BLOB.exec(src || "");
    if (!match) { return Promise.reject(new Error("not an attachment of this server")); }
    if (!blobCache[src]) {
      blobCache[src] = fetch("/docs/blob/" + match[1]).then(function (r) {
        if (r.status !== 200) { throw new Error("the attachment is gone (HTTP " + r.status + ")"); }
        return r.arrayBuffer();
      }).then(function (buffer) {
        var bytes = new Uint8Array(buffer);
        var plain = Nacl.secretbox.open(bytes.subarray(24), bytes.subarray(0, 24), fromB64url(match[2]));
        if (!plain) { throw new Error("the attachment does not open with this link's key"); }
        return plain;
      });
    }
    return blobCache[src];
  }
  var CHUNK = 4 << 20;
  function upload(file) {
    say("Encrypting " + file.name + "...");
    return file.arrayBuffer().then(function (buffer) {
      var key = Nacl.randomBytes(32), nonce = Nacl.randomBytes(24);
      var box = Nacl.secretbox(new Uint8Array(buffer), nonce, key);
      var sealed = new Uint8Array(nonce.length + box.length);
      sealed.set(nonce, 0);
      sealed.set(box, nonce.length);
      return api("POST", "/docs/api/blobs", { size: sealed.length }).then(function (result) {
        if (result.status !== 201) { throw new Error(failure(result)); }
        var id = result.json.id;
        var send = function (offset) {
          if (offset >= sealed.length) { return Promise.resolve("/docs/blob/" + id + "#" + b64url(key)); }
          say("Uploading " + file.name + ": " + Math.round(100 * offset / sealed.length) + "%");
          return api("PUT", "/docs/api/blobs/" + id + "?offset=" + offset, sealed.subarray(offset, offset + CHUNK))
            .then(function (put) {
              if (put.status !== 200) { throw new Error(failure(put)); }
              return send(offset + CHUNK);
            });
        };
        return send(0);
      });
    });
  }
  $("attach").addEventListener("change", function () {
    var file = $("attach").files[0];
    $("attach").value = "";
    if (!file || !view) { return; }
    upload(file).then(function (src) {
      var name = file.name.replace(/[\x00-\x1f]/g, "_");
      var text = schema.text(name, [schema.marks.link.create({ href: src })]);
      view.dispatch(view.state.tr.replaceSelectionWith(text, false));
      say("Attached " + file.name);
    }).catch(function (error) { say("Not attached: " + error.message); });
  });
  $("image-input").addEventListener("change", function () {
    var file = $("image-input").files[0];
    $("image-input").value = "";
    if (!file || !view) { return; }
    upload(file).then(function (src) {
      view.dispatch(view.state.tr.replaceSelectionWith(schema.nodes.image.create({ src: src, alt: file.name })));
      say("Inserted " + file.name);
    }).catch(function (error) { say("Not inserted: " + error.message); });
  });

  // Images show decrypted (a blob: URL); the document keeps the attachment's link.
  function ImageView(node) {
    this.dom = document.createElement("img");
    this.dom.alt = node.attrs.alt || "";
    if (node.attrs.title) { this.dom.title = node.attrs.title; }
    var img = this.dom;
    openBlob(node.attrs.src).then(function (plain) {
      img.src = URL.createObjectURL(new Blob([plain]));
    }).catch(function () { img.title = node.attrs.src; });
  }
  function ChecklistItemView(node, editorView, getPos) {
    this.node = node;
    this.dom = document.createElement("li");
    this.dom.setAttribute("data-checked", node.attrs.checked ? "true" : "false");
    var box = this.box = document.createElement("input");
    box.type = "checkbox";
    box.checked = node.attrs.checked;
    box.contentEditable = "false";
    box.setAttribute("aria-label", "Done");
    var self = this;
    box.addEventListener("mousedown", function (e) { e.preventDefault(); });
    box.addEventListener("click", function (e) {
      e.preventDefault();
      if (!editorView.editable) { return; }
      editorView.dispatch(editorView.state.tr.setNodeMarkup(getPos(), null, { checked: !self.node.attrs.checked }));
    });
    this.contentDOM = document.createElement("div");
    this.dom.appendChild(box);
    this.dom.appendChild(this.contentDOM);
  }
  ChecklistItemView.prototype.update = function (node) {
    if (node.type !== this.node.type) { return false; }
    this.node = node;
    this.box.checked = node.attrs.checked;
    this.dom.setAttribute("data-checked", node.attrs.checked ? "true" : "false");
    return true;
  };
  ChecklistItemView.prototype.stopEvent = function (event) { return event.target === this.box; };
  ChecklistItemView.prototype.ignoreMutation = function (mutation) {
    return mutation.target === this.box || (mutation.type === "attributes" && mutation.target === this.dom);
  };

  // --- People and their cursors ---

  var cursorKey = new S.PluginKey("coop-cursors");
  var cursorPlugin = new S.Plugin({
    key: cursorKey,
    state: {
      init: function () { return V.DecorationSet.empty; },
      apply: function (tr, set) {
        var fresh = tr.getMeta(cursorKey);
        return fresh || set.map(tr.mapping, tr.doc);
      }
    },
    props: { decorations: function (state) { return cursorKey.getState(state); } }
  });
  var peers = {}, presence = null, myId = null, myName = "guest";
  var COLOURS = ["#d9480f", "#2b8a3e", "#1971c2", "#9c36b5", "#c2255c", "#5c940d", "#0c8599", "#e67700"];
  function colourOf(id) {
    var h = 0;
    for (var i = 0; i < id.length; i++) { h = (h * 31 + id.charCodeAt(i)) >>> 0; }
    return COLOURS[h % COLOURS.length];
  }
  function drawPeople() {
    var list = $("people");
    list.replaceChildren();
    var names = [];
    Object.keys(peers).forEach(function (id) {
      var p = peers[id];
      names.push(p.name);
      var chip = document.createElement("span");
      chip.className = "person";
      chip.style.background = p.colour;
      chip.textContent = p.name;
      chip.title = p.name + " is here" + (p.cell ? " (at " + p.cell + ")" : "");
      list.appendChild(chip);
    });
    window.coopPeople = names;
    if (!view) { return; }
    var size = view.state.doc.content.size, decorations = [];
    Object.keys(peers).forEach(function (id) {
      var p = peers[id];
      if (typeof p.from !== "number" || typeof p.to !== "number") { return; }
      var from = Math.max(0, Math.min(p.from, size)), to = Math.max(0, Math.min(p.to, size));
      if (from !== to) {
        decorations.push(V.Decoration.inline(Math.min(from, to), Math.max(from, to),
                                             { style: "background: " + p.colour + "33" }));
      }
      decorations.push(V.Decoration.widget(to, function () {
        var caret = document.createElement("span");
        caret.className = "coop-caret";
        caret.style.borderColor = p.colour;
        caret.setAttribute("data-person", p.name);
        var label = document.createElement("span");
        label.style.background = p.colour;
        label.textContent = p.name;
        caret.appendChild(label);
        return caret;
      }, { key: id + ":" + p.name + ":" + p.colour, side: 1 }));
    });
    var set;
    try { set = V.DecorationSet.create(view.state.doc, decorations); } catch (e) { set = V.DecorationSet.empty; }
    view.dispatch(view.state.tr.setMeta(cursorKey, set).setMeta("remote", true));
  }
  // NaCl secretbox as "base64(nonce)|base64(box)": presence messages (the document's key) and
  // drive entries (the member's title key) alike.
  function sealText(text, key) {
    var nonce = Nacl.randomBytes(24);
    return NaclUtil.encodeBase64(nonce) + "|" + NaclUtil.encodeBase64(Nacl.secretbox(NaclUtil.decodeUTF8(text), nonce, key));
  }
  function openText(sealed, key) {
    try {
      var parts = String(sealed).split("|");
      var plain = Nacl.secretbox.open(NaclUtil.decodeBase64(parts[1]), NaclUtil.decodeBase64(parts[0]), key);
      return plain ? NaclUtil.encodeUTF8(plain) : null;
    } catch (e) { return null; }
  }
  function seal(object) { return sealText(JSON.stringify(object), keys.cryptKey); }
  function unseal(text) {
    var plain = openText(text, keys.cryptKey);
    try { return plain === null ? null : JSON.parse(plain); } catch (e) { return null; }
  }
  var cursorTimer = null;
  function sendCursor() {
    if (!presence || (!view && !sheet)) { return; }
    var where = { name: myName, at: Date.now() };
    if (view) { where.from = view.state.selection.anchor; where.to = view.state.selection.head; }
    if (sheet && sheetSelection) { where.sheet = sheetSelection.sheet; where.cell = sheetSelection.cell; }
    presence.bcast(seal(where)).catch(function () {});
  }
  function scheduleCursor() {
    if (cursorTimer) { return; }
    cursorTimer = setTimeout(function () { cursorTimer = null; sendCursor(); }, 80);
  }
  function joinPresence(network) {
    // The document's channel and two more hex digits: 34 characters, which the server relays
    // without keeping (CryptPad's ephemeral channels).
    network.join(channel + "ee").then(function (wc) {
      presence = wc;
      myId = wc.myID || network.uid || "me";
      wc.on("message", function (message, sender) {
        var data = unseal(message);
        if (!data || typeof data.name !== "string") { return; }
        var known = peers[sender];
        peers[sender] = { name: data.name.slice(0, 40), colour: colourOf(sender), from: data.from, to: data.to,
                          cell: typeof data.cell === "string" ? data.cell.slice(0, 12) : null, seen: Date.now() };
        drawPeople();
        if (!known) { sendCursor(); }  // a newcomer learns who is here at once
      });
      wc.on("leave", function (sender) { delete peers[sender]; drawPeople(); });
      sendCursor();
      setInterval(function () {
        sendCursor();
        var stale = Date.now() - 20000, changed = false;
        Object.keys(peers).forEach(function (id) { if (peers[id].seen < stale) { delete peers[id]; changed = true; } });
        if (changed) { drawPeople(); }
      }, 5000);
    }).catch(function () { /* no presence: editing still works */ });
  }

  // --- The editor ---

  function makeView(doc) {
    var listItem = schema.nodes.list_item, checkItem = schema.nodes.checklist_item;
    var plugins = [
      rules.inputRules({ rules: [
        rules.textblockTypeInputRule(/^(#{1,3})\s$/, schema.nodes.heading, function (m) { return { level: m[1].length }; }),
        rules.wrappingInputRule(/^\s*([-+*])\s$/, schema.nodes.bullet_list),
        rules.wrappingInputRule(/^(\d+)\.\s$/, schema.nodes.ordered_list, function (m) { return { order: +m[1] }; },
                                function (m, node) { return node.childCount + node.attrs.order === +m[1]; }),
        rules.wrappingInputRule(/^\s*>\s$/, schema.nodes.blockquote),
        rules.textblockTypeInputRule(/^```$/, schema.nodes.code_block),
        rules.wrappingInputRule(/^\[( |x)\]\s$/, schema.nodes.checklist)
      ] }),
      keymap({
        "Mod-z": history.undo, "Mod-y": history.redo, "Shift-Mod-z": history.redo,
        "Mod-b": commands.toggleMark(schema.marks.strong), "Mod-i": commands.toggleMark(schema.marks.em),
        "Mod-`": commands.toggleMark(schema.marks.code), "Mod-k": function () { openLinkDialog(); return true; },
        "Enter": commands.chainCommands(lists.splitListItem(listItem), lists.splitListItem(checkItem)),
        "Tab": commands.chainCommands(tables.goToNextCell(1), lists.sinkListItem(listItem), lists.sinkListItem(checkItem)),
        "Shift-Tab": commands.chainCommands(tables.goToNextCell(-1), lists.liftListItem(listItem), lists.liftListItem(checkItem)),
        "Shift-Enter": function (state, dispatch) {
          if (dispatch) { dispatch(state.tr.replaceSelectionWith(schema.nodes.hard_break.create()).scrollIntoView()); }
          return true;
        }
      }),
      keymap(commands.baseKeymap),
      history.history(),
      dropCursor(),
      gapCursor(),
      tables.tableEditing(),
      cursorPlugin
    ];
    view = new V.EditorView($("editor"), {
      state: S.EditorState.create({ doc: doc, plugins: plugins }),
      editable: function () { return canEdit && ready && !historyMode; },
      nodeViews: {
        image: function (node) { return new ImageView(node); },
        checklist_item: function (node, v, getPos) { return new ChecklistItemView(node, v, getPos); }
      },
      attributes: { "aria-label": "Document", spellcheck: "true" },
      // Paste from a word processor: ProseMirror keeps what the schema knows (headings, bold,
      // italic, lists, tables, links); Word's own markup and comments go first.
      transformPastedHTML: function (html) {
        return html.replace(/<!--[\s\S]*?-->/g, "").replace(/<\/?o:p>/g, "").replace(/<\/?(xml|w:[a-z]+|m:[a-z]+)[^>]*>/gi, "");
      },
      handleClickOn: function (v, pos, node, nodePos, event) {
        var a = event.target.closest && event.target.closest("a");
        if (!a) { return false; }
        var href = a.getAttribute("href") || "";
        if (BLOB.test(href)) {
          event.preventDefault();
          openBlob(href).then(function (plain) { download(a.textContent || "attachment", plain, "application/octet-stream"); })
            .catch(function (error) { say(error.message); });
          return true;
        }
        if ((event.ctrlKey || event.metaKey || !v.editable) && safeAddress(href)) {
          window.open(href, "_blank", "noopener");
          return true;
        }
        return false;
      },
      dispatchTransaction: function (tr) {
        view.updateState(view.state.apply(tr));
        if (tr.docChanged && !tr.getMeta("remote")) { send(); }
        if ((tr.docChanged || tr.selectionSet) && !tr.getMeta("remote")) { scheduleCursor(); }
        if (tr.docChanged) { showTitle(); }
        updateToolbar();
      }
    });
    window.coopView = view;
  }
  function send() {
    if (!realtime || !canEdit || historyMode) { return; }
    var content = sheet ? sheet.content(title) : serialize(view.state.doc);
    if (content === lastContent) { return; }
    lastContent = content;
    realtime.contentUpdate(content);
  }
  // Puts doc in the editor, changing only the part that differs, so selections and cursors
  // elsewhere stay where they were.
  function replaceDoc(doc) {
    var state = view.state;
    var start = state.doc.content.findDiffStart(doc.content);
    if (start === null || start === undefined) { return; }
    var end = state.doc.content.findDiffEnd(doc.content);
    var endA = end.a, endB = end.b, overlap = start - Math.min(endA, endB);
    if (overlap > 0) { endA += overlap; endB += overlap; }
    var tr = state.tr.replace(start, endA, doc.slice(start, endB));
    tr.setMeta("remote", true);
    tr.setMeta("addToHistory", false);
    view.dispatch(tr);
  }
  function applyRemote() {
    if (historyMode) { return; }
    var content = realtime.getUserDoc();
    if (content === lastContent) { return; }
    lastContent = content;
    try {
      if (sheet) {
        sheet.load(content);
        title = sheetTitle(content);
      } else {
        var parsed = parseContent(content);
        title = parsed.title;
        replaceDoc(parsed.doc);
      }
      showTitle();
    } catch (e) { say("This version of the document could not be read: " + e.message); }
  }

  function sheetTitle(content) {
    try {
      var parsed = JSON.parse(content || "{}");
      return parsed && parsed.metadata && typeof parsed.metadata.title === "string" ? parsed.metadata.title : "";
    } catch (e) { return ""; }
  }

  // --- Spreadsheets: their own script, loaded for a spreadsheet only ---

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = function () { reject(new Error(src + " did not load")); };
      document.head.appendChild(script);
    });
  }
  function startSheet() {
    return loadScript("/docs/sheet.js").then(function () {
      $("editor").hidden = true;
      $("sheet").hidden = false;
      sheet = window.__coopSheet({
        container: $("sheet"), canEdit: canEdit, onLocalChange: send, ask: ask,
        onSelect: function (where) { sheetSelection = where; scheduleCursor(); }
      });
    });
  }
  var sheetSelection = null;
  $("export-csv").addEventListener("click", function () { download(fileName(".csv"), sheet.toCsv(), "text/csv"); });
  $("export-xlsx").addEventListener("click", function () {
    say("Making the XLSX file...");
    sheet.toXlsx().then(function (buffer) {
      download(fileName(".xlsx"), buffer, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
      say("Exported.");
    }).catch(function (error) { say("Not exported: " + error.message); });
  });
  $("import-sheet").addEventListener("change", function () {
    var file = $("import-sheet").files[0];
    $("import-sheet").value = "";
    if (!file || !sheet) { return; }
    var name = file.name.replace(/\.(csv|xlsx)$/i, "");
    var done = function () { say("Imported " + file.name); window.coopImported = file.name; };
    if (/\.xlsx$/i.test(file.name)) {
      file.arrayBuffer().then(sheet.importXlsx).then(done).catch(function (error) { say("Not imported: " + error.message); });
    } else {
      file.text().then(function (text) { sheet.importCsv(text, name); done(); });
    }
  });

  // --- The toolbar ---

  function run(command) {
    return function () {
      if (!view || !view.editable) { return; }
      command(view.state, view.dispatch, view);
      view.focus();
    };
  }
  function markActive(type) {
    var state = view.state, sel = state.selection;
    if (sel.empty) { return !!type.isInSet(state.storedMarks || sel.$from.marks()); }
    return state.doc.rangeHasMark(sel.from, sel.to, type);
  }
  function updateToolbar() {
    if (!view) { return; }
    [["tb-bold", "strong"], ["tb-italic", "em"], ["tb-strike", "strike"], ["tb-code", "code"], ["tb-link", "link"]]
      .forEach(function (pair) { $(pair[0]).setAttribute("aria-pressed", markActive(schema.marks[pair[1]]) ? "true" : "false"); });
    var parent = view.state.selection.$from.parent, value = "paragraph";
    if (parent.type === schema.nodes.heading) { value = "h" + parent.attrs.level; }
    if (parent.type === schema.nodes.code_block) { value = "code_block"; }
    $("tb-block").value = value;
  }
  $("tb-block").addEventListener("change", function () {
    var value = $("tb-block").value, command;
    if (value === "paragraph") { command = commands.setBlockType(schema.nodes.paragraph); }
    else if (value === "code_block") { command = commands.setBlockType(schema.nodes.code_block); }
    else { command = commands.setBlockType(schema.nodes.heading, { level: +value.slice(1) }); }
    run(command)();
  });
  $("tb-bold").addEventListener("click", run(commands.toggleMark(schema.marks.strong)));
  $("tb-italic").addEventListener("click", run(commands.toggleMark(schema.marks.em)));
  $("tb-strike").addEventListener("click", run(commands.toggleMark(schema.marks.strike)));
  $("tb-code").addEventListener("click", run(commands.toggleMark(schema.marks.code)));
  $("tb-bullet").addEventListener("click", run(lists.wrapInList(schema.nodes.bullet_list)));
  $("tb-ordered").addEventListener("click", run(lists.wrapInList(schema.nodes.ordered_list)));
  $("tb-checklist").addEventListener("click", run(lists.wrapInList(schema.nodes.checklist)));
  $("tb-quote").addEventListener("click", run(commands.wrapIn(schema.nodes.blockquote)));
  $("tb-rule").addEventListener("click", run(function (state, dispatch) {
    if (dispatch) { dispatch(state.tr.replaceSelectionWith(schema.nodes.horizontal_rule.create())); }
    return true;
  }));
  $("tb-table").addEventListener("click", run(function (state, dispatch) {
    var cell = function (header) {
      return (header ? schema.nodes.table_header : schema.nodes.table_cell).createAndFill();
    };
    var rows = [0, 1, 2].map(function (r) {
      return schema.nodes.table_row.create(null, [cell(r === 0), cell(r === 0), cell(r === 0)]);
    });
    if (dispatch) {
      var tr = state.tr.replaceSelectionWith(schema.nodes.table.create(null, rows));
      // Into the first cell: the table ends where the selection now stands.
      var at = null;
      tr.doc.nodesBetween(0, tr.selection.from, function (node, pos) { if (node.type === schema.nodes.table) { at = pos; } });
      if (at !== null) { tr.setSelection(S.TextSelection.near(tr.doc.resolve(at + 4))); }
      dispatch(tr.scrollIntoView());
    }
    return true;
  }));
  $("tb-row").addEventListener("click", run(tables.addRowAfter));
  $("tb-column").addEventListener("click", run(tables.addColumnAfter));
  $("tb-delete-row").addEventListener("click", run(tables.deleteRow));
  $("tb-delete-column").addEventListener("click", run(tables.deleteColumn));
  $("tb-undo").addEventListener("click", run(history.undo));
  $("tb-redo").addEventListener("click", run(history.redo));

  function openLinkDialog() {
    if (!view || !view.editable) { return; }
    var found = null;
    view.state.doc.nodesBetween(view.state.selection.from, view.state.selection.to, function (node) {
      var mark = schema.marks.link.isInSet(node.marks);
      if (mark && !found) { found = mark.attrs.href; }
    });
    $("link-url").value = found || "";
    $("link-dialog").showModal();
  }
  $("tb-link").addEventListener("click", openLinkDialog);
  $("link-cancel").addEventListener("click", function () { $("link-dialog").close(); });
  $("link-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var href = $("link-url").value.trim();
    $("link-dialog").close();
    var state = view.state, sel = state.selection, tr = state.tr;
    if (!href) {
      view.dispatch(tr.removeMark(sel.from, sel.to, schema.marks.link));
    } else if (!safeAddress(href)) {
      say("Links go to http(s), mailto or this server's own addresses.");
      return;
    } else if (sel.empty) {
      view.dispatch(tr.replaceSelectionWith(schema.text(href, [schema.marks.link.create({ href: href })]), false));
    } else {
      view.dispatch(tr.addMark(sel.from, sel.to, schema.marks.link.create({ href: href })));
    }
    view.focus();
  });

  // --- The title ---

  var titleTimer = null;
  $("title").addEventListener("input", function () {
    clearTimeout(titleTimer);
    titleTimer = setTimeout(function () {
      title = $("title").value.trim().slice(0, 200);
      showTitle();
      lastContent = null;
      send();
    }, 300);
  });

  // --- History: step back through the versions ChainPad holds, and restore one ---

  var blocks = [], shown = 0;
  function showVersion() {
    var block = blocks[shown];
    var content = block.getContent().doc || "";
    try {
      if (sheet) { sheet.load(content); } else { replaceDoc(parseContent(content).doc); }
    } catch (e) { say("That version could not be read."); }
    $("history-range").max = String(blocks.length);
    $("history-range").value = String(blocks.length - shown);
    $("history-where").textContent = "Version " + (blocks.length - shown) + " of " + blocks.length +
      (block.time ? " · " + new Date(block.time).toLocaleString() : "");
    window.coopHistoryShown = { version: blocks.length - shown, of: blocks.length };
  }
  $("history-button").addEventListener("click", function () {
    if (!realtime || historyMode) { return; }
    blocks = [];
    for (var b = realtime.getAuthBlock(); b; b = b.getParent()) { blocks.push(b); }
    // ChainPad's own first state, before anyone wrote, is no version worth showing.
    if (blocks.length > 1 && !blocks[blocks.length - 1].getContent().doc) { blocks.pop(); }
    if (!blocks.length) { say("No history yet."); return; }
    historyMode = true;
    if (view) { view.setProps({}); }
    if (sheet) { sheet.setEditable(false); }
    $("history-bar").hidden = false;
    $("history-restore").hidden = !canEdit;
    shown = 0;
    showVersion();
  });
  $("history-back").addEventListener("click", function () { if (shown < blocks.length - 1) { shown++; showVersion(); } });
  $("history-forward").addEventListener("click", function () { if (shown > 0) { shown--; showVersion(); } });
  $("history-range").addEventListener("input", function () { shown = blocks.length - +$("history-range").value; showVersion(); });
  function editableAgain() {
    if (view) { view.setProps({}); }
    if (sheet) { sheet.setEditable(canEdit); }
  }
  function closeHistory() {
    historyMode = false;
    $("history-bar").hidden = true;
    editableAgain();
    lastContent = null;
    applyRemote();
  }
  $("history-close").addEventListener("click", closeHistory);
  $("history-restore").addEventListener("click", function () {
    var content = blocks[shown].getContent().doc || "";
    historyMode = false;
    $("history-bar").hidden = true;
    editableAgain();
    if (content !== realtime.getUserDoc()) { realtime.contentUpdate(content); }
    lastContent = null;
    applyRemote();
    say("Restored version " + (blocks.length - shown));
  });

  // --- Members: session, drive, new documents ---

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
  function ask(text) {
    return new Promise(function (resolve) {
      $("confirm-text").textContent = text;
      var dialog = $("confirm-dialog");
      dialog.returnValue = "";
      dialog.addEventListener("close", function once() {
        dialog.removeEventListener("close", once);
        resolve(dialog.returnValue === "yes");
      });
      dialog.showModal();
    });
  }
  function showSession() {
    var s = session();
    $("who").textContent = s ? s.handle : "";
    ["signout", "newdoc", "drive-button"].forEach(function (id) { $(id).hidden = !s; });
    $("room-button").hidden = !s || !ready;
    ["attach-label", "tb-image-label"].forEach(function (id) { $(id).hidden = !s || !canEdit; });
    $("signin").hidden = !!s;
    $("delete").hidden = !s || !channel || owned.indexOf(channel) === -1;
    myName = s ? s.handle : "guest";
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
  // A drive entry is sealed as {"title", "key"}: only the member opens it, and with the key the
  // drive can open the document. Older entries hold the bare title.
  function sealEntry(entry) { return sealText(JSON.stringify(entry), NaclUtil.decodeBase64(session().titleKey)); }
  function openEntry(sealed) {
    try {
      var text = openText(sealed, NaclUtil.decodeBase64(session().titleKey));
      if (text === null) { return null; }
      if (text.charAt(0) === "{") {
        var entry = JSON.parse(text);
        return { title: String(entry.title || ""), key: typeof entry.key === "string" ? entry.key : "",
                 type: entry.type === "sheet" ? "sheet" : "pad" };
      }
      return { title: text, key: "", type: "pad" };
    } catch (e) { return null; }
  }
  function loadOwned() {
    if (!session()) { return Promise.resolve([]); }
    return api("GET", "/docs/api/documents").then(function (result) {
      if (result.status !== 200) { return []; }
      owned = result.json.map(function (d) { return d.channel; });
      showSession();
      return result.json;
    });
  }

  $("signin-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var handle = $("handle").value.trim(), password = $("password").value;
    var basicAuth = "Basic " + btoa(unescape(encodeURIComponent(handle + ":" + password)));
    say("Signing in...");
    api("POST", "/docs/api/session", {}, { Authorization: basicAuth }).then(function (result) {
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
        sendCursor();
        return loadOwned();
      });
    }).catch(function (error) { say(error.message); });
  });
  $("signin").addEventListener("click", function () { $("signin-dialog").showModal(); });
  $("signin-cancel").addEventListener("click", function () { $("signin-dialog").close(); });
  $("signout").addEventListener("click", function () {
    api("DELETE", "/docs/api/session").then(function () {
      localStorage.removeItem(SESSION);
      owned = [];
      showSession();
      say("Signed out");
    });
  });

  // A new document is owned before anything is written in it: it opens, sends its keys'
  // public half with its first history request, then the claim goes in (see onReady).
  $("newdoc").addEventListener("click", function () { $("new-title").value = ""; $("new-dialog").showModal(); });
  $("new-cancel").addEventListener("click", function () { $("new-dialog").close(); });
  $("new-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var newTitle = $("new-title").value.trim(), newType = $("new-type").value === "sheet" ? "sheet" : "pad";
    $("new-dialog").close();
    var k = Crypto.createEditCryptor2();
    sessionStorage.setItem(PENDING, JSON.stringify({ channel: channelOf(k), title: newTitle, key: k.editKeyStr, type: newType }));
    location.hash = "#/2/" + newType + "/edit/" + k.editKeyStr + "/";
    location.reload();
  });
  function claimIfPending() {
    var pending = null;
    try { pending = JSON.parse(sessionStorage.getItem(PENDING)); } catch (e) { pending = null; }
    if (!pending || pending.channel !== channel || !session()) { return; }
    sessionStorage.removeItem(PENDING);
    if (pending.title && !title) {
      title = pending.title;
      showTitle();
      lastContent = null;
      send();
    }
    api("POST", "/docs/api/documents",
        { channel: channel, title: sealEntry({ title: pending.title, key: pending.key, type: type }) })
      .then(function (result) {
        say(result.status === 201 ? "Yours: " + pending.title + " (end-to-end encrypted)" : "Not owned: " + failure(result));
        window.coopDocOwned = result.status === 201;
        return loadOwned();
      });
  }

  function deleteDocument(target, name) {
    return ask("Delete " + (name ? "\u201c" + name + "\u201d" : "this document") +
               " for everyone? Its history is removed from the server.").then(function (yes) {
      if (!yes) { return false; }
      return api("DELETE", "/docs/api/documents/" + target).then(function (result) {
        say(result.status === 200 ? "Deleted." : "Not deleted: " + failure(result));
        return loadOwned().then(function () { return result.status === 200; });
      });
    });
  }
  $("delete").addEventListener("click", function () { deleteDocument(channel, title); });

  function button(text, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }
  // The list is replaced in one go once the new one is known: it never shows half a drive.
  function fillDrive() {
    return loadOwned().then(function (documents) {
      var items = [], shown = [];
      if (!documents.length) {
        var none = document.createElement("li");
        none.textContent = "No documents yet.";
        items.push(none);
      }
      documents.forEach(function (d) {
        var entry = openEntry(d.title || "") || { title: "(sealed with another password)", key: "" };
        shown.push({ channel: d.channel, title: entry.title });
        var item = document.createElement("li");
        item.setAttribute("data-channel", d.channel);
        var name = document.createElement("span");
        name.className = "name";
        name.textContent = entry.title || "Untitled";
        item.appendChild(name);
        if (entry.key) {
          item.appendChild(button("Open", function () {
            location.hash = "#/2/" + entry.type + "/edit/" + entry.key + "/";
            location.reload();
          }));
        }
        item.appendChild(button("Rename", function () {
          var input = document.createElement("input");
          input.value = entry.title;
          input.setAttribute("aria-label", "New title");
          name.replaceChildren(input, button("Save", function () {
            var next = input.value.trim();
            api("PUT", "/docs/api/documents/" + d.channel,
                { title: sealEntry({ title: next, key: entry.key, type: entry.type }) })
              .then(function (result) {
                say(result.status === 200 ? "Renamed to " + next : "Not renamed: " + failure(result));
                return fillDrive();
              });
          }));
          input.focus();
        }));
        item.appendChild(button("Delete", function () {
          deleteDocument(d.channel, entry.title).then(function (done) { if (done) { fillDrive(); } });
        }));
        items.push(item);
      });
      $("drive-list").replaceChildren.apply($("drive-list"), items);
      window.coopDrive = shown;
    });
  }
  $("drive-button").addEventListener("click", function () { $("drive-dialog").showModal(); fillDrive(); });

  // --- Sharing ---

  $("share").addEventListener("click", function () {
    var base = location.origin + "/docs/#/2/" + type + "/";
    $("share-edit-row").hidden = !canEdit;
    $("share-edit").value = canEdit ? base + "edit/" + keys.editKeyStr + "/" : "";
    $("share-view").value = base + "view/" + keys.viewKeyStr + "/";
    $("share-dialog").showModal();
  });
  function copyFrom(id) {
    return function () {
      var input = $(id);
      input.select();
      var done = function () { say("Copied."); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    };
  }
  $("copy-edit").addEventListener("click", copyFrom("share-edit"));
  $("copy-view").addEventListener("click", copyFrom("share-view"));

  // --- Posting into a Matrix room ---

  var rooms = [];
  function roomWarning() {
    var room = rooms[$("room-select").selectedIndex] || {};
    var edit = canEdit && $("room-edit").checked;
    $("room-warning").textContent = edit
      ? "The edit link goes: the shard posts it itself and can read it" +
        (room.encrypted ? ", even in this end-to-end encrypted room." : ", and this room is not end-to-end encrypted.")
      : "The view-only link goes: the shard posts the widget and the message itself, so it can read the link.";
  }
  $("room-button").addEventListener("click", function () {
    api("GET", "/docs/api/rooms").then(function (result) {
      if (result.status !== 200) { say("No rooms: " + failure(result)); return; }
      rooms = result.json;
      var select = $("room-select");
      select.replaceChildren();
      rooms.forEach(function (room) {
        var option = document.createElement("option");
        option.value = room.room_id;
        option.textContent = room.name + (room.encrypted ? " (encrypted)" : "");
        select.appendChild(option);
      });
      if (!rooms.length) { say("You are in no room of this shard."); return; }
      $("room-edit").checked = false;
      $("room-edit-row").hidden = !canEdit;
      roomWarning();
      $("room-dialog").showModal();
    });
  });
  $("room-select").addEventListener("change", roomWarning);
  $("room-edit").addEventListener("change", roomWarning);
  $("room-cancel").addEventListener("click", function () { $("room-dialog").close(); });
  $("room-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var room = rooms[$("room-select").selectedIndex];
    var base = location.origin + "/docs/#/2/" + type + "/";
    var link = canEdit && $("room-edit").checked ? base + "edit/" + keys.editKeyStr + "/" : base + "view/" + keys.viewKeyStr + "/";
    $("room-dialog").close();
    api("POST", "/docs/api/rooms/post", { room: room.room_id, link: link, title: title || (view ? firstLine(view.state.doc) : "Spreadsheet") })
      .then(function (result) {
        say(result.status === 201 ? "Posted in " + room.name : "Not posted: " + failure(result));
        window.coopPosted = result.status === 201 ? { room: room.room_id, link: link } : null;
      });
  });

  // --- Start ---

  showSession();
  loadOwned();
  var match = /^#\/2\/([a-z]+)\/(edit|view)\/([A-Za-z0-9+\-]{24,44})\/?/.exec(location.hash);
  if (!match) {
    say("Open a document link: coop docs new prints one" + (session() ? ", or make a new one." : "."));
    return;
  }
  try {
    keys = match[2] === "edit" ? Crypto.createEditCryptor2(match[3]) : Crypto.createViewCryptor2(match[3]);
  } catch (e) {
    say("This link's key is not a document key.");
    return;
  }
  canEdit = match[2] === "edit";
  type = match[1] === "sheet" ? "sheet" : "pad";
  channel = channelOf(keys);
  var prepared = Promise.resolve();
  if (type === "sheet") { prepared = startSheet(); } else { makeView(parseContent("").doc); }
  prepared.then(connect, function (error) { say("The spreadsheet could not start: " + error.message); });
  function connect() {
  var signedIn = session();
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/cryptpad_websocket" +
            (signedIn ? "?session=" + encodeURIComponent(signedIn.token) : "");
  var network = Netflux.connect(url);
  CPNF.start({
    network: network,
    channel: channel,
    crypto: Crypto.createEncryptor(keys),
    validateKey: keys.validateKey,
    readOnly: !canEdit,
    ChainPad: ChainPad,
    // As CryptPad: a pad merges as text of JSON; a spreadsheet, cell by cell, as JSON.
    patchTransformer: type === "sheet" ? ChainPad.SmartJSONTransformer : ChainPad.NaiveJSONTransformer,
    initialState: "",
    avgSyncMilliseconds: 50,
    logLevel: 0,
    onReady: function (info) {
      realtime = info.realtime;
      ready = true;
      lastContent = null;
      applyRemote();
      if (view) { view.setProps({}); }
      $("title").disabled = !canEdit;
      $("toolbar").hidden = !canEdit || !!sheet;
      ["share", "history-button"].forEach(function (id) { $(id).hidden = false; });
      (sheet ? ["export-csv", "export-xlsx"] : ["export-html", "export-md"]).forEach(function (id) { $(id).hidden = false; });
      $("import-label").hidden = !sheet || !canEdit;
      showSession();
      say((canEdit ? "Connected" : "View only") + "; end-to-end encrypted");
      realtime.onPatch(applyRemote);
      claimIfPending();
      window.coopDocReady = true;
      window.coopDoc = {
        content: function () { return realtime.getUserDoc(); },
        markdown: toMarkdown,
        html: toHtml,
        sheet: sheet,
        canEdit: canEdit
      };
      network.then(joinPresence);
    },
    onConnectionChange: function (info) {
      say(info.state ? (canEdit ? "Connected" : "View only") + "; end-to-end encrypted" : "Reconnecting...");
    },
    onError: function () { say("The document server refused this document."); },
    onChannelError: function () { say("This document is gone."); }
  });
  }
})();
