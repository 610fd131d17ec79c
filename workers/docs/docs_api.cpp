// The members' API of coop-docs.
#include "workers/docs/docs_api.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "common/http/date.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/text.h"
#include "workers/docs/channel_store.h"
#include "workers/docs/docs_store.h"
#include "workers/docs/netflux.h"

namespace coop::docs {

namespace {

using nlohmann::json;

json document_json(const OwnedDocument& d) {
  return {{"channel", d.channel}, {"title", d.title}, {"created_at", http::iso8601(d.created_at)}};
}

json blob_json(const Blob& b) {
  return {{"id", b.id}, {"size", b.size}, {"received", b.received}, {"complete", b.complete}, {"created_at", http::iso8601(b.created_at)}};
}

// RFC 6750 2.1: a session token rides as a bearer token.
std::optional<std::string> bearer_token(const http::Request& q) {
  const std::string value = q.header("authorization");
  if (value.size() > 7 && ascii_lower(value.substr(0, 7)) == "bearer ") return value.substr(7);
  return std::nullopt;
}

http::Response unauthorized() {
  auto r = http::Response::error(errc::kUnauthorized, "sign in with your coop handle and password or an app password", 401);
  r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"coop\", charset=\"UTF-8\"");
  return r;
}

}  // namespace

http::Response handle_docs_api(const http::Request& q, DocsStore& store, Netflux& netflux, const MemberCheck& member,
                               const DocsApiOptions& options) {
  const std::string& path = q.path;
  // Public: a blob by id (it is ciphertext; the id is the capability).
  if (path.rfind("/docs/blob/", 0) == 0) {
    if (q.method != "GET" && q.method != "HEAD") return http::Response::error(errc::kMethodNotAllowed, "GET only", 405);
    const std::string id = path.substr(11);
    const auto b = DocsStore::valid_blob_id(id) ? store.blob(id) : std::nullopt;
    if (!b || !b->complete) return http::Response::error(errc::kNoBlob, "no such blob", 404);
    std::ifstream in(store.blob_path(id), std::ios::binary);
    std::string bytes(static_cast<std::size_t>(b->size), '\0');
    if (!in || !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
      throw Error(errc::kStoreFailed, "blob " + id + " cannot be read", 500);
    auto r = http::Response::bytes(200, std::move(bytes), "application/octet-stream");
    r.headers.emplace_back("ETag", "\"" + id + "\"");
    r.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
    r.headers.emplace_back("Access-Control-Allow-Origin", "*");
    return r;
  }
  const auto who = member(q);
  if (!who) return unauthorized();
  const std::string rest = path.substr(std::string("/docs/api/").size());

  // A browser signs in once with the member's credentials and then sends the token.
  if (rest == "session") {
    const auto token = bearer_token(q);
    if (q.method == "POST") {
      if (token) return http::Response::error(errc::kCredentialsNeeded, "sign in with your handle and password, not a session", 400);
      const auto session = store.start_session(*who, options.session_lifetime_s);
      return http::Response::json({{"token", session.token}, {"handle", session.handle}, {"expires_at", http::iso8601(session.expires_at)}}, 201);
    }
    if (q.method == "GET") {
      json body = {{"handle", *who}};
      if (token)
        if (const auto session = store.session(*token)) body["expires_at"] = http::iso8601(session->expires_at);
      return http::Response::json(body);
    }
    if (q.method == "DELETE") {
      if (!token) return http::Response::error(errc::kNoSession, "send the session's token to end it", 400);
      store.end_session(*token);
      return http::Response::json({{"handle", *who}, {"ended", true}});
    }
    return http::Response::error(errc::kMethodNotAllowed, "GET, POST or DELETE", 405);
  }

  if (rest == "documents") {
    if (q.method == "GET") {
      json list = json::array();
      for (const auto& d : store.owned_by(*who)) list.push_back(document_json(d));
      return http::Response::json(list);
    }
    if (q.method == "POST") {
      const json body = q.json();
      const std::string channel = body.value("channel", "");
      if (!ChannelStore::valid_id(channel)) throw Error(errc::kBadChannel, "channel ids are 32 hex characters", 400);
      const std::string title = body.contains("title") && body["title"].is_string() ? body["title"].get<std::string>() : "";
      if (title.size() > 4096) throw Error(errc::kBadTitle, "the encrypted title is too long", 400);
      netflux.claim(channel, *who);
      const auto d = store.own(channel, *who, title);
      return http::Response::json(document_json(d), 201);
    }
    return http::Response::error(errc::kMethodNotAllowed, "GET or POST", 405);
  }
  if (rest.rfind("documents/", 0) == 0) {
    const std::string channel = rest.substr(10);
    const auto d = store.document(channel);
    if (!d) return http::Response::error(errc::kNoDocument, "no owned document " + channel, 404);
    if (d->owner != *who) return http::Response::error(errc::kForbidden, "only its owner can do that", 403);
    if (q.method == "DELETE") {
      netflux.delete_channel(channel);
      store.forget_document(channel);
      return http::Response::json(document_json(*d));
    }
    if (q.method == "PUT") {
      // A new title (sealed by the client, like the first): renaming in the member's drive.
      const json body = q.json();
      if (!body.contains("title") || !body["title"].is_string()) throw Error(errc::kBadTitle, "give the encrypted title", 400);
      const std::string title = body["title"].get<std::string>();
      if (title.size() > 4096) throw Error(errc::kBadTitle, "the encrypted title is too long", 400);
      return http::Response::json(document_json(store.own(channel, *who, title)));
    }
    return http::Response::error(errc::kMethodNotAllowed, "PUT or DELETE", 405);
  }
  // The member's rooms, and a document posted into one: coop-room decides, by the room's own
  // rules, whether the member may (the member's handle is the sender).
  if (rest == "rooms" || rest == "rooms/post") {
    control::Client room(options.room_socket);
    if (rest == "rooms") {
      if (q.method != "GET") return http::Response::error(errc::kMethodNotAllowed, "GET only", 405);
      const auto response = room.get("/v1/rooms?member=" + percent_encode(*who));
      response.throw_if_error();
      json list = json::array();
      for (const auto& r : response.json())
        if (r.value("type", "") == "room")
          list.push_back({{"room_id", r.value("room_id", "")},
                          {"name", r["name"].is_string() ? r["name"] : r["room_id"]},
                          {"encrypted", r.value("encrypted", false)}});
      return http::Response::json(list);
    }
    if (q.method != "POST") return http::Response::error(errc::kMethodNotAllowed, "POST only", 405);
    const json body = q.json();
    const std::string room_id = body.value("room", ""), link = body.value("link", ""), name = body.value("title", "");
    if (room_id.empty() || link.empty()) throw Error(errc::kUsage, "give the room and the link", 400);
    auto widget = room.post("/v1/rooms/" + percent_encode(room_id) + "/widgets",
                            json{{"url", link}, {"name", name}, {"sender", *who}, {"type", "m.custom"}}.dump());
    // Not in the room: nothing is posted. In it, but without the power to change its state:
    // the message goes without the widget.
    const json widget_body = widget.ok() ? widget.json() : json::object();
    if (!widget.ok() && (widget.status != 403 || widget.body.find("not in this room") != std::string::npos))
      widget.throw_if_error();
    auto message = room.post("/v1/rooms/" + percent_encode(room_id) + "/messages",
                             json{{"body", (name.empty() ? std::string("A document") : name) + ": " + link}, {"sender", *who}}.dump());
    message.throw_if_error();
    json out{{"room_id", room_id},
             {"widget_id", widget_body.value("widget_id", "")},
             {"event_id", message.json().value("event_id", "")}};
    if (!widget.ok()) out["widget_refused"] = true;
    return http::Response::json(out, 201);
  }
  if (rest == "blobs") {
    if (q.method == "GET") return http::Response::json({{"used", store.used_bytes(*who)}, {"quota", options.quota_bytes}});
    if (q.method != "POST") return http::Response::error(errc::kMethodNotAllowed, "GET or POST", 405);
    const json body = q.json();
    if (!body.contains("size") || !body["size"].is_number_integer()) throw Error(errc::kBadBlob, "give the blob's size", 400);
    const int64_t size = body["size"].get<int64_t>();
    if (size > options.max_blob_bytes)
      throw Error(errc::kTooLarge, "a blob is at most " + std::to_string(options.max_blob_bytes) + " bytes", 413);
    const auto b = store.start_blob(*who, size, options.quota_bytes);
    auto r = http::Response::json(blob_json(b), 201);
    r.headers.emplace_back("Location", "/docs/api/blobs/" + b.id);
    return r;
  }
  if (rest.rfind("blobs/", 0) == 0) {
    const std::string id = rest.substr(6);
    if (!DocsStore::valid_blob_id(id)) return http::Response::error(errc::kNoBlob, "no such blob", 404);
    if (q.method == "PUT") {
      int64_t offset = 0;
      try {
        offset = std::stoll(q.query_value("offset", "0"));
      } catch (...) {
        throw Error(errc::kBadOffset, "offset is a number of bytes", 400);
      }
      return http::Response::json(blob_json(store.append_blob(id, *who, offset, q.body)));
    }
    const auto b = store.blob(id);
    if (!b) return http::Response::error(errc::kNoBlob, "no such blob", 404);
    if (b->owner != *who) return http::Response::error(errc::kForbidden, "only its owner can do that", 403);
    if (q.method == "GET") return http::Response::json(blob_json(*b));
    if (q.method == "DELETE") {
      store.remove_blob(id);
      return http::Response::json(blob_json(*b));
    }
    return http::Response::error(errc::kMethodNotAllowed, "GET, PUT or DELETE", 405);
  }
  return http::Response::error(errc::kNotFound, "no such API", 404);
}

}  // namespace coop::docs
