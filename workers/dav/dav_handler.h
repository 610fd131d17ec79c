// The WebDAV, CalDAV and CardDAV protocol of coop-dav (RFC 4918, 4791, 6352, 6578, 5397, 3744).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "common/http/router.h"

namespace coop {
class Home;
}

namespace coop::dav {

class DavStore;

class DavHandler {
 public:
  DavHandler(const Home& home, DavStore& store, std::string domain);
  ~DavHandler();
  // Every request under /dav/ and the /.well-known/ redirects; blocks (SQLite, password hashing).
  http::Response handle(const http::Request& request);
  // A member's cached credentials go (suspension, new password, revoked app password, a
  // change of groups or addresses); with no handle, everyone's (a group changed).
  void forget(const std::string& handle);
  // Before a file's body is read (common/http's body gate): who sends it and how many bytes
  // they may store; blocks (password check, registry).
  http::Router::BodyAdmission admit_upload(const http::Request& head, uint64_t max_file_bytes);
  std::filesystem::path spool_dir() const;
  // iMIP that coop-mail received for a member (RFC 6047); what was done, as JSON.
  std::string receive_imip(const std::string& handle, const std::string& from, bool authenticated,
                           const std::string& calendar);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::dav
