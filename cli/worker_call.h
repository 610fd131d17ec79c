// Calling a worker's control API from the CLI: errors become coop::Error, --json shows raw bodies.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "cli/cli.h"

namespace coop::cli {

// Percent-encodes one path segment (RFC 3986 2.3 unreserved characters stay).
std::string path_segment(std::string_view text);

class WorkerCall {
 public:
  // worker: "member", "room"...; json: the command's --json flag.
  WorkerCall(const Globals& globals, std::string worker, bool json);

  // Sends the request; on a 4xx/5xx prints the raw error body when --json was given, then
  // throws coop::Error with the worker's message. A stopped worker is coop::Error(errc::kNotRunning).
  nlohmann::json call(std::string_view method, std::string_view path, const nlohmann::json& body = nullptr);
  // The same for a raw body (CSV upload or download).
  std::string call_raw(std::string_view method, std::string_view path, std::string_view body = {});

  bool json() const { return json_; }

 private:
  const Globals& globals_;
  std::string worker_;
  bool json_;
};

// Whether the registry knows the member or group a command names: coop::Error with the
// registry's no_such_member / unknown_group (404) when it does not, so that an export of
// "nobody" fails instead of writing an empty file.
void require_member(const Globals& globals, const std::string& handle);
void require_group(const Globals& globals, const std::string& name);
// "member:HANDLE", "group:NAME" or "everyone", as DAV and docs sharing name someone.
void require_grantee(const Globals& globals, const std::string& who);

}  // namespace coop::cli
