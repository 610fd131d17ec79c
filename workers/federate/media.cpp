// See media.h.
#include "workers/federate/media.h"

#include <openssl/rand.h>
#include <cstdlib>
#include <spdlog/spdlog.h>

#include "common/blob_store.h"
#include "common/error.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/federate/context.h"
#include "workers/federate/remote_keys.h"
#include "workers/federate/server_policy.h"
#include "workers/matrix/base64.h"
#include "workers/room/store/room_store.h"
#include "workers/room/thumbnail.h"

namespace coop::federate {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

// m.upload.size, as coop-room advertises it.
constexpr std::size_t kMaxMediaBytes = 50 << 20;

// A media ID as servers make them: letters, digits, '-' and '_' (no '/' or '.').
bool valid_media_id(const std::string& id) {
  if (id.empty() || id.size() > 255) return false;
  for (char ch : id)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
  return true;
}

std::string header_value(std::string_view headers, std::string_view name) {
  // Lines "Name: value"; names case-insensitive.
  std::size_t at = 0;
  while (at < headers.size()) {
    auto end = headers.find("\r\n", at);
    if (end == std::string_view::npos) end = headers.size();
    const auto line = headers.substr(at, end - at);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && colon == name.size()) {
      bool same = true;
      for (std::size_t i = 0; i < colon && same; ++i)
        same = std::tolower(static_cast<unsigned char>(line[i])) == std::tolower(static_cast<unsigned char>(name[i]));
      if (same) {
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        return std::string(value);
      }
    }
    at = end + 2;
  }
  return "";
}

// Authenticated media over federation (spec v1.11): multipart/mixed, a JSON metadata part
// (empty) and the content.
Response multipart_answer(const std::string& content_type, const std::string& bytes) {
  std::string random(12, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), static_cast<int>(random.size()));
  const std::string boundary = "coop" + matrix::unpadded_base64_url(random);
  std::string body = "--" + boundary + "\r\nContent-Type: application/json\r\n\r\n{}\r\n--" + boundary +
                     "\r\nContent-Type: " + content_type + "\r\n\r\n";
  body += bytes;
  body += "\r\n--" + boundary + "--\r\n";
  return Response::bytes(200, std::move(body), "multipart/mixed; boundary=" + boundary);
}

}  // namespace

std::optional<MediaPart> parse_media_download(std::string_view body) {
  // RFC 2046 5.1: "--boundary" CRLF part ... CRLF "--boundary" ... "--boundary--".
  if (body.substr(0, 2) != "--") return std::nullopt;
  const auto first_line = body.find("\r\n");
  if (first_line == std::string_view::npos || first_line < 3 || first_line > 72) return std::nullopt;
  const std::string delimiter = "\r\n" + std::string(body.substr(0, first_line));
  std::vector<std::string_view> parts;
  std::size_t at = first_line + 2;
  while (parts.size() < 3) {
    const auto next = body.find(delimiter, at);
    if (next == std::string_view::npos) return std::nullopt;
    parts.push_back(body.substr(at, next - at));
    at = next + delimiter.size();
    if (body.substr(at, 2) == "--") break;  // the closing delimiter
    if (body.substr(at, 2) != "\r\n") return std::nullopt;
    at += 2;
  }
  if (parts.size() != 2) return std::nullopt;
  // Headers, a blank line, the content; a part without headers starts with the blank line.
  const bool bare = parts[1].substr(0, 2) == "\r\n";
  const auto split = bare ? 0 : parts[1].find("\r\n\r\n");
  if (split == std::string_view::npos) return std::nullopt;
  const auto headers = parts[1].substr(0, split);
  if (!header_value(headers, "Location").empty()) return std::nullopt;  // redirects are not followed
  MediaPart part{header_value(headers, "Content-Type"), std::string(parts[1].substr(bare ? 2 : split + 4))};
  if (part.content_type.empty()) part.content_type = "application/octet-stream";
  return part;
}

void add_media_routes(http::Router& federation, http::Router& control, Context& c, const http::Runner& run) {
  auto blobs = std::make_shared<BlobStore>(c.runtime.home().root() / "blobs" / "room");

  federation.add_blocking("GET", "/_matrix/federation/v1/media/download/{mediaId}", run,
                          signed_by_peer(c, [&c, blobs](const Request& q, const std::string&) {
                            const auto id = q.param("mediaId");
                            const auto media = valid_media_id(id) ? c.store.media(id) : std::nullopt;
                            if (!media) return matrix_error(404, "M_NOT_FOUND", "no such media");
                            return multipart_answer(media->content_type, blobs->read(media->blob));
                          }),
                          "one of our members' uploads, for a server whose users are shown it");
  // Server-Server API GET /media/thumbnail/{mediaId}: what a server asks when its members'
  // clients want a small picture of one of our uploads, made as coop-room makes its own.
  federation.add_blocking("GET", "/_matrix/federation/v1/media/thumbnail/{mediaId}", run,
                          signed_by_peer(c, [&c, blobs](const Request& q, const std::string&) {
                            const auto id = q.param("mediaId");
                            const auto media = valid_media_id(id) ? c.store.media(id) : std::nullopt;
                            if (!media) return matrix_error(404, "M_NOT_FOUND", "no such media");
                            const int width = std::atoi(q.query_value("width", "0").c_str());
                            const int height = std::atoi(q.query_value("height", "0").c_str());
                            if (width < 1 || height < 1) return matrix_error(400, "M_MISSING_PARAM", "width and height are required");
                            auto thumb = room::make_thumbnail(blobs->read(media->blob), width, height,
                                                              q.query_value("method", "scale") == "crop");
                            if (!thumb) return matrix_error(400, "M_UNKNOWN", "this media cannot be thumbnailed");
                            return multipart_answer(thumb->content_type, thumb->bytes);
                          }),
                          "a thumbnail of one of our members' uploaded images");

  // coop-room asks for other servers' media once per item: fetched, checked, stored.
  control.add_blocking("POST", "/v1/media/fetch", run, [&c, blobs](const Request& q) {
    const auto body = q.json();
    const std::string server = body.value("server", ""), id = body.value("media_id", "");
    if (!valid_server_name(server) || server == c.server_name || !valid_media_id(id))
      throw Error(errc::kMNotFound, "not another server's media", 404);
    if (c.store.media(server + "/" + id)) return Response::json({{"stored", true}});
    if (!c.policy.admits(server)) throw Error(errc::kMForbidden, "this server does not federate with " + server, 403);
    const auto fetched = signed_fetch(c, "GET", server, "/_matrix/federation/v1/media/download/" + percent_encode(id), nullptr,
                                      kMaxMediaBytes + 65536, 60000);
    if (fetched.status != 200) throw Error(errc::kMNotFound, server + " has no such media (" + std::to_string(fetched.status) + " " + fetched.error + ")", 404);
    const auto part = parse_media_download(fetched.body);
    if (!part || part->bytes.size() > kMaxMediaBytes) throw Error(errc::kMNotFound, server + " answered with no media we can take", 502);
    auto writer = blobs->writer();
    writer.append(part->bytes);
    const auto blob = writer.commit();
    if (!c.store.media(server + "/" + id))  // two clients may have asked at once
      c.store.add_media(server + "/" + id, blob, part->content_type, "", static_cast<int64_t>(part->bytes.size()), "@" + server);
    spdlog::info("fetched media {}/{} ({} bytes)", server, id, part->bytes.size());
    return Response::json({{"stored", true}});
  }, "fetch another server's media for coop-room ({server, media_id})");
}

}  // namespace coop::federate
