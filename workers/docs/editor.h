// The document editor coop-docs serves at /docs/: a rich-text editor (ProseMirror) on CryptPad's
// own browser libraries (chainpad-netflux, chainpad, chainpad-crypto, netflux-websocket,
// hyper-json), from npm, served from this machine, wrapped with a few lines of CommonJS loader
// into one script with coop's own page code; libsodium in a second one.
#pragma once

#include <filesystem>
#include <string>

#include "common/http/message.h"

namespace coop::docs {

class Editor {
 public:
  // web_dir: the npm packages' node_modules; app_dir: coop's page.html and editor.js.
  // frame_ancestors: who may show the editor in a frame (CSP), such as Element's widgets.
  Editor(std::filesystem::path web_dir, std::filesystem::path app_dir, std::string frame_ancestors = "'self'");
  // GET /docs/ (the page), /docs/editor.js (the libraries and the editor's code),
  // /docs/sodium.js (libsodium, loaded when a member signs in), /docs/sheet.js (the
  // spreadsheet, for spreadsheets only) and /docs/xlsx.js (ExcelJS, for XLSX files only).
  http::Response handle(const http::Request& request) const;

 private:
  struct Script {
    std::string body, tag;
  };
  Script editor_, sodium_, sheet_, xlsx_;
  std::string page_, frame_ancestors_;
  bool ready_ = false;
  std::string missing_;
};

}  // namespace coop::docs
