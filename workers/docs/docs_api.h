// coop-docs' HTTP API for members (Basic credentials: a coop password or an app password
// scoped to docs; or a session token from them, as a bearer token): sessions, owned
// documents (register, list, delete) and encrypted blobs (chunked upload within a quota,
// delete); and the public blob download, which needs only the id.
#pragma once

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
};

// The member a request speaks for (from its credentials or its session), if any.
using MemberCheck = std::function<std::optional<std::string>(const http::Request&)>;

// Paths under /docs/api/ and /docs/blob/. Blocking (password checks, fsync): run off the
// event loop.
http::Response handle_docs_api(const http::Request& request, DocsStore& store, Netflux& netflux,
                               const MemberCheck& member, const DocsApiOptions& options);

}  // namespace coop::docs
