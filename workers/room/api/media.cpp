// Client-Server API "Content repository": bytes in the blob store, metadata in room.db.
// Downloads need a session (authenticated media, spec v1.11) but the legacy unauthenticated
// paths still answer.
#include <nlohmann/json.hpp>

#include <openssl/rand.h>

#include "common/control/client.h"
#include "common/error.h"
#include "common/worker_runtime.h"
#include "workers/matrix/base64.h"
#include "workers/room/client_impl.h"
#include "workers/room/url_preview.h"
#include "workers/room/store/room_store.h"
#include "workers/room/thumbnail.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

Response upload(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto writer = api.blobs.writer();
  writer.append(q.body);
  const auto size = static_cast<int64_t>(writer.size());
  const auto blob = writer.commit();
  std::string random(18, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), static_cast<int>(random.size()));
  const std::string media_id = matrix::unpadded_base64_url(random);
  api.store.add_media(media_id, blob, q.header("content-type", "application/octet-stream"), q.query_value("filename"),
                      size, s.user_id);
  return ok({{"content_uri", "mxc://" + api.server() + "/" + media_id}});
}

// The media a client asks for: ours, or another server's, fetched once through coop-federate
// and kept as "<server>/<media id>".
std::optional<RoomStore::Media> find_media(ClientApi::Impl& api, const Request& q) {
  const auto server = q.param("serverName"), id = q.param("mediaId");
  if (server == api.server()) return api.store.media(id);
  if (id.empty() || id.find('/') != std::string::npos || server.find('/') != std::string::npos) return std::nullopt;
  if (auto cached = api.store.media(server + "/" + id)) return cached;
  try {
    control::Client(api.runtime.home().socket("federate"))
        .request("POST", "/v1/media/fetch", json{{"server", server}, {"media_id", id}}.dump(), std::chrono::seconds(70));
  } catch (const std::exception&) {
    // Federation is off or restarting: the media is not here.
  }
  // Whatever the answer, another request may have fetched it meanwhile.
  return api.store.media(server + "/" + id);
}

Response download(ClientApi::Impl& api, const Request& q, bool authenticated) {
  if (authenticated) api.authenticate(q);
  auto m = find_media(api, q);
  if (!m) fail(404, errc::kMNotFound, "no such media");
  Response response = Response::bytes(200, api.blobs.read(m->blob), m->content_type);
  const std::string name = q.param("fileName").empty() ? m->filename : q.param("fileName");
  response.headers.emplace_back("Content-Disposition", name.empty() ? "inline" : "inline; filename=\"" + name + "\"");
  response.headers.emplace_back("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';");
  return cors(response);
}

Response thumbnail(ClientApi::Impl& api, const Request& q, bool authenticated) {
  if (authenticated) api.authenticate(q);
  auto m = find_media(api, q);
  if (!m) fail(404, errc::kMNotFound, "no such media");
  const int width = std::atoi(q.query_value("width", "0").c_str());
  const int height = std::atoi(q.query_value("height", "0").c_str());
  if (width < 1 || height < 1) fail(400, errc::kMMissingParam, "width and height are required");
  auto thumb = make_thumbnail(api.blobs.read(m->blob), width, height, q.query_value("method", "scale") == "crop");
  if (!thumb) fail(400, errc::kMUnknown, "this media cannot be thumbnailed");
  return cors(Response::bytes(200, std::move(thumb->bytes), thumb->content_type));
}

Response download_legacy(ClientApi::Impl& api, const Request& q) { return download(api, q, false); }
Response download_authenticated(ClientApi::Impl& api, const Request& q) { return download(api, q, true); }
Response thumbnail_legacy(ClientApi::Impl& api, const Request& q) { return thumbnail(api, q, false); }
Response thumbnail_authenticated(ClientApi::Impl& api, const Request& q) { return thumbnail(api, q, true); }

Response config_legacy(ClientApi::Impl&, const Request&) { return ok({{"m.upload.size", 50 << 20}}); }

Response config_authenticated(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  return ok({{"m.upload.size", 50 << 20}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

// The media paths have their own prefixes: /_matrix/media/{v3,r0} (legacy, unauthenticated
// reads) and /_matrix/client/v1/media (authenticated).
// URL previews, when the admin turned them on (workers/room/url_preview).
Response preview_url(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  if (!api.previewer || !api.previewer->enabled()) fail(404, errc::kMUnrecognized, "URL previews are off on this server");
  const auto url = q.query_value("url");
  if (url.empty()) fail(400, errc::kMMissingParam, "url is required");
  return ok(api.previewer->preview(url));
}

constexpr ClientRoute kMediaTable[] = {
    {"GET", "/_matrix/client/v1/media/preview_url", Mount::kExact, Run::kBlocking, preview_url, "a page's OpenGraph preview (when on)"},
    {"GET", "/_matrix/media/v3/preview_url", Mount::kExact, Run::kBlocking, preview_url, "a page's OpenGraph preview (when on)"},
    {"GET", "/_matrix/media/r0/preview_url", Mount::kExact, Run::kBlocking, preview_url, "a page's OpenGraph preview (when on)"},
    {"POST", "/_matrix/media/v3/upload", Mount::kExact, Run::kBlocking, upload, "upload media"},
    {"POST", "/_matrix/media/r0/upload", Mount::kExact, Run::kBlocking, upload, "upload media"},
    {"GET", "/_matrix/media/v3/download/{serverName}/{mediaId}", Mount::kExact, Run::kBlocking, download_legacy, "download media"},
    {"GET", "/_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}", Mount::kExact, Run::kBlocking, download_legacy, "download media under a file name"},
    {"GET", "/_matrix/media/v3/thumbnail/{serverName}/{mediaId}", Mount::kExact, Run::kBlocking, thumbnail_legacy, "a thumbnail of image media"},
    {"GET", "/_matrix/media/v3/config", Mount::kExact, Run::kBlocking, config_legacy, "the upload size limit"},
    {"GET", "/_matrix/media/r0/download/{serverName}/{mediaId}", Mount::kExact, Run::kBlocking, download_legacy, "download media"},
    {"GET", "/_matrix/media/r0/download/{serverName}/{mediaId}/{fileName}", Mount::kExact, Run::kBlocking, download_legacy, "download media under a file name"},
    {"GET", "/_matrix/media/r0/thumbnail/{serverName}/{mediaId}", Mount::kExact, Run::kBlocking, thumbnail_legacy, "a thumbnail of image media"},
    {"GET", "/_matrix/media/r0/config", Mount::kExact, Run::kBlocking, config_legacy, "the upload size limit"},
    {"GET", "/_matrix/client/v1/media/download/{serverName}/{mediaId}", Mount::kExact, Run::kBlocking, download_authenticated, "download media"},
    {"GET", "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}", Mount::kExact, Run::kBlocking, download_authenticated, "download media under a file name"},
    {"GET", "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}", Mount::kExact, Run::kBlocking, thumbnail_authenticated, "a thumbnail of image media"},
    {"GET", "/_matrix/client/v1/media/config", Mount::kExact, Run::kBlocking, config_authenticated, "the upload size limit"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kMediaRoutes = kMediaTable;

}  // namespace coop::room
