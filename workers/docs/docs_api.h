// coop-docs' HTTP API for members (Basic credentials: a coop password or an app password
// scoped to docs; or a session token from them, as a bearer token): sessions, owned
// documents (register, list, rename, delete), encrypted blobs (chunked upload within a quota,
// delete), the member's Matrix rooms and posting a document into one (through coop-room's
// control API); and the public blob download, which needs only the id.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "common/http/message.h"

namespace coop::docs {

class DocsStore;
class Netflux;

struct DocsApiOptions {
  int64_t quota_bytes = 1LL << 30;     // per member, blobs
  int64_t max_blob_bytes = 100 << 20;  // one blob (downloads are sent from memory)
  int64_t session_lifetime_s = 30 * 86400;
  // coop-room's control socket: a member's rooms, and documents posted into them as widgets.
  std::filesystem::path room_socket;
};

// The member a request speaks for (from its credentials or its session), if any.
using MemberCheck = std::function<std::optional<std::string>(const http::Request&)>;

// Paths under /docs/api/ and /docs/blob/. Blocking (password checks, fsync): run off the
// event loop.
http::Response handle_docs_api(const http::Request& request, DocsStore& store, Netflux& netflux,
                               const MemberCheck& member, const DocsApiOptions& options);

}  // namespace coop::docs
