// The document editor coop-docs serves at /docs/: a text editor on CryptPad's own browser
// libraries (chainpad-netflux, chainpad, chainpad-crypto, netflux-websocket from npm, served
// from this machine), wrapped with a few lines of CommonJS loader into one script.
#pragma once

#include <filesystem>
#include <string>

#include "common/http/message.h"

namespace coop::docs {

class Editor {
 public:
  // web_dir: the npm packages' node_modules.
  explicit Editor(std::filesystem::path web_dir);
  // GET /docs/ (the page) and /docs/editor.js (the libraries and the editor's code).
  http::Response handle(const http::Request& request) const;

 private:
  std::string bundle_, bundle_gz_, tag_;
  bool ready_ = false;
  std::string missing_;
};

}  // namespace coop::docs
