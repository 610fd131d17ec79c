// libFuzzer target: the WebDAV headers coop-dav reads itself (If, Depth, Destination,
// Overwrite, Lock-Token, Timeout), through FileTree, the plain WebDAV tree under /dav/files/.
// The input is requests separated by an empty line: "METHOD target", "Name: value" lines, then
// the body (from the first line that is not a header). Checked: an If header without a list
// is false and fails the request with 412 (RFC 4918 10.4.1), a stored PUT reads back, a DELETE
// leaves nothing, a COPY or MOVE leaves its destination, and the only errors thrown are the
// ones DavHandler answers with 400 or 413.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "common/error.h"
#include "common/http/message.h"
#include "common/text.h"
#include "workers/dav/file_tree.h"

using coop::http::Request;
using coop::http::Response;

namespace {

constexpr const char* kMember = "alice";
constexpr std::size_t kMaxRequests = 24;

bool is_header_name(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  return true;
}

// Up to the next empty line (LF LF or LF CR LF), which is dropped.
std::string_view take_block(std::string_view& text) {
  for (auto at = text.find('\n'); at != std::string_view::npos; at = text.find('\n', at + 1)) {
    auto after = at + 1;
    if (after < text.size() && text[after] == '\r') ++after;
    if (after < text.size() && text[after] == '\n') {
      const auto block = text.substr(0, at);
      text.remove_prefix(after + 1);
      return block;
    }
  }
  return std::exchange(text, {});
}

std::string_view take_line(std::string_view& text) {
  const auto eol = text.find('\n');
  auto line = text.substr(0, eol);
  text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// False when the target is not one the HTTP server would pass on.
bool parse_request(std::string_view block, Request& q) {
  const auto first = take_line(block);
  const auto space = first.find(' ');
  if (space == std::string_view::npos) return false;
  q.method = std::string(first.substr(0, space));
  if (!coop::http::parse_target(first.substr(space + 1), q)) return false;
  while (!block.empty()) {
    std::string_view rest = block;
    const auto line = take_line(rest);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_header_name(line.substr(0, colon))) break;
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    // Lowercase names, repeats joined with ", ", as common/http/message.h says.
    const auto [it, added] = q.headers.emplace(coop::ascii_lower(line.substr(0, colon)), std::string(value));
    if (!added) it->second += ", " + std::string(value);
    block = rest;
  }
  q.body = std::string(block);
  return true;
}

Response send(coop::dav::FileTree& tree, const Request& q) {
  try {
    return tree.handle(q, kMember);
  } catch (const coop::Error& e) {
    // DavHandler::handle answers these with 400 or 413; any other error would be a 500.
    if (e.code() != "bad_xml" && e.code() != "bad_request" && e.code() != "body_too_large") std::abort();
    return Response::bytes(400, "", "");
  }
}

std::optional<Response> get(coop::dav::FileTree& tree, std::string_view target) {
  Request q;
  q.method = "GET";
  if (!coop::http::parse_target(target, q)) return std::nullopt;
  auto r = send(tree, q);
  if (r.file) {  // a file body, as the server would send it
    r.body.resize(r.file->size);
    if (::pread(r.file->fd, r.body.data(), r.body.size(), 0) != static_cast<ssize_t>(r.body.size())) std::abort();
  }
  return r;
}

std::string header_of(const Response& r, std::string_view name) {
  for (const auto& [key, value] : r.headers)
    if (key == name) return value;
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Each tree migrates its database, which spdlog would announce once per input.
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::warn);
    return true;
  }();
  (void)quiet;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // File contents go to a blob store: one scratch directory for the whole run.
  static const std::filesystem::path blobs = std::filesystem::temp_directory_path() /
                                             ("coop-fuzz-dav-files-" + std::to_string(::getpid()));
  coop::dav::FileTree tree(":memory:", blobs);
  for (std::size_t n = 0; n < kMaxRequests && !input.empty(); ++n) {
    Request q;
    if (!parse_request(take_block(input), q)) continue;
    const Response r = send(tree, q);
    if (r.status < 200 || r.status > 599) std::abort();

    // RFC 4918 10.4.2: only a list "(...)" can make an If header true; without one the request
    // fails (LOCK aside, which names its lock there) unless its URL is not in the member's tree.
    const std::string if_header = q.header("if");
    if (q.method != "LOCK" && !if_header.empty() && if_header.find('(') == std::string::npos && r.status != 403 &&
        r.status != 404 && r.status != 412)
      std::abort();

    const bool done = r.status == 201 || r.status == 204;
    if (q.method == "PUT" && done) {
      const auto back = get(tree, q.target);
      if (!back || back->status != 200 || back->body != q.body || header_of(*back, "ETag") != header_of(r, "ETag"))
        std::abort();
    }
    if (q.method == "DELETE" && r.status == 204) {
      const auto back = get(tree, q.target);
      if (!back || back->status != 404) std::abort();
    }
    // RFC 4918 9.8.5, 9.9.4: 201 or 204 means the destination resource is there.
    const std::string destination = q.header("destination");
    if ((q.method == "COPY" || q.method == "MOVE") && done && destination.starts_with('/') &&
        destination.find('?') == std::string::npos && destination.find("://") == std::string::npos)
      if (const auto back = get(tree, destination); back && back->status != 200) std::abort();
  }
  return 0;
}
