// Plain WebDAV (RFC 4918) under /dav/files/<handle>/: nested collections, files of any type,
// dead properties, COPY and MOVE, for WebDAV clients and the litmus suite. Each member sees
// only their own tree.
#pragma once

#include <filesystem>
#include <cstdint>
#include <memory>
#include <string>

#include "common/http/message.h"

namespace coop::dav {

class FileTree {
 public:
  // database: dav-files.db; blob_root: where file contents live (blobs/dav-files).
  FileTree(const std::filesystem::path& database, const std::filesystem::path& blob_root);
  ~FileTree();
  // path: the request path; handle: the authenticated member. A PUT's content is
  // request.body_file when the server spooled it (DavHandler::admit_upload), else body.
  http::Response handle(const http::Request& request, const std::string& handle);
  // The bytes of a member's files, for their quota.
  int64_t usage(const std::string& handle);
  // Where uploads are spooled: on the blob store's filesystem, so keeping one is a rename.
  std::filesystem::path spool_dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::dav
