// Plain WebDAV (RFC 4918) under /dav/files/<handle>/: nested collections, files of any type,
// dead properties, COPY and MOVE, for WebDAV clients and the litmus suite. Each member sees
// only their own tree.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/http/message.h"

namespace coop::dav {

class FileTree {
 public:
  explicit FileTree(const std::filesystem::path& database);
  ~FileTree();
  // path: the request path; handle: the authenticated member.
  http::Response handle(const http::Request& request, const std::string& handle);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::dav
