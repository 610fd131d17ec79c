// Media over federation (Server-Server API "Content repository", authenticated media of spec
// v1.11): our members' uploads for other servers (GET /_matrix/federation/v1/media/download),
// and other servers' media fetched for our members' clients, kept in the room worker's
// blob store under "<server>/<media id>" so that it is fetched once.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "common/http/router.h"

namespace coop::federate {

struct Context;

// The content part of a multipart/mixed download answer (its first part is the metadata
// JSON): {content type, bytes}, nullopt when the body is not such an answer.
struct MediaPart {
  std::string content_type;
  std::string bytes;
};
std::optional<MediaPart> parse_media_download(std::string_view body);

void add_media_routes(http::Router& federation, http::Router& control, Context& c, const http::Runner& run);

}  // namespace coop::federate
