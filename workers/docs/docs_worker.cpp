// coop-docs wiring.
#include "workers/docs/docs_worker.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "common/http/date.h"
#include "common/http/listen.h"
#include "common/http/router.h"
#include "common/http/server.h"
#include "common/worker_runtime.h"
#include "common/auth/basic_auth.h"
#include "common/auth/live_sessions.h"
#include "common/auth/member_client.h"
#include "common/error.h"
#include "common/text.h"
#include "workers/docs/channel_store.h"
#include "workers/docs/docs_api.h"
#include "workers/docs/docs_store.h"
#include "workers/docs/editor.h"
#include "workers/docs/netflux.h"

namespace coop::docs {

// WebSocket connection id -> Netflux user id, and the signed-in members' connections.
struct DocsWorker::Connections {
  struct Connection {
    std::string user;        // Netflux's id for it
    std::string handle;      // the member signed in on it, if any
    uint64_t live_id = 0;    // in live, when handle is set
  };
  std::mutex mutex;  // guards users
  std::map<uint64_t, Connection> users;
  auth::LiveSessions live;  // ended when the registry revokes the member
};

// A session token (a browser) or Basic credentials (the CLI, scripts).
std::optional<std::string> DocsWorker::member(const http::Request& request) {
  const std::string value = request.header("authorization");
  if (value.size() > 7 && ascii_lower(value.substr(0, 7)) == "bearer ") {
    const auto session = docs_store_->session(value.substr(7));
    if (session) return session->handle;
    return std::nullopt;
  }
  return credentials_->check(request);
}

DocsWorker::DocsWorker(WorkerRuntime& runtime)
    : store_(std::make_unique<ChannelStore>(runtime.home().root() / "docs" / "channels")),
      connections_(std::make_unique<Connections>()),
      router_(std::make_unique<http::Router>()) {
  const auto& config = runtime.config();
  NetfluxLimits limits;
  limits.max_channels_per_user = config.get_count("workers.docs.max_channels_per_user", 64);
  limits.max_users_per_channel = config.get_count("workers.docs.max_users_per_channel", 1000);
  limits.max_channel_bytes = config.get_count("workers.docs.max_channel_bytes", 256LL << 20);
  netflux_ = std::make_unique<Netflux>(*store_, limits);

  http::WebSocketHandlers handlers;
  handlers.max_message_bytes = config.get_count("workers.docs.max_message_bytes", 1 << 20);
  handlers.max_queued_bytes = config.get_count("workers.docs.max_queued_bytes", 32 << 20);
  handlers.on_open = [this](const std::shared_ptr<http::WebSocket>& socket) {
    std::weak_ptr<http::WebSocket> weak = socket;
    const std::string user = netflux_->connect([weak](std::shared_ptr<const std::string> frame) {
      auto s = weak.lock();
      return s && s->send_shared(std::move(frame));
    });
    // Anyone with a document's link may connect, as with CryptPad; a browser signed in as a
    // member says so with its session token (browsers cannot set headers on a WebSocket),
    // so that a suspension or a new password closes the connection at once.
    Connections::Connection entry{user, {}, 0};
    const auto token = socket->request().query_value("session");
    if (!token.empty())
      if (const auto session = docs_store_->session(token)) {
        entry.handle = session->handle;
        entry.live_id = connections_->live.add(session->handle, [weak](const std::string& reason) {
          if (auto s = weak.lock()) s->close(1008, reason);
        });
      }
    std::lock_guard lock(connections_->mutex);
    connections_->users[socket->id()] = std::move(entry);
  };
  handlers.on_message = [this](const std::shared_ptr<http::WebSocket>& socket, std::string text) {
    std::string user;
    {
      std::lock_guard lock(connections_->mutex);
      auto it = connections_->users.find(socket->id());
      if (it == connections_->users.end()) return;
      user = it->second.user;
    }
    if (!netflux_->frame(user, text)) socket->close(1008, "not a Netflux frame");
  };
  handlers.on_close = [this](const std::shared_ptr<http::WebSocket>& socket) {
    std::string user;
    {
      std::lock_guard lock(connections_->mutex);
      auto it = connections_->users.find(socket->id());
      if (it == connections_->users.end()) return;
      user = it->second.user;
      if (it->second.live_id) connections_->live.remove(it->second.handle, it->second.live_id);
      connections_->users.erase(it);
    }
    netflux_->disconnect(user);
  };
  // CryptPad's clients connect to /cryptpad_websocket; the shorter path serves the same.
  router_->add_websocket("/cryptpad_websocket", handlers);
  router_->add_websocket("/docs/ws", handlers);

  // The editor: /docs/ and its script, built from the npm packages in workers/docs/web
  // (installed copies under share/coop/docs win when present).
  std::error_code ec;
  const auto bin = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  std::filesystem::path web = bin.parent_path() / "share" / "coop" / "docs";
  std::filesystem::path app = web / "app";
  if (!std::filesystem::exists(web / "chainpad", ec)) web = COOP_DOCS_WEB_DIR, app = COOP_DOCS_APP_DIR;
  web = config.get_string("workers.docs.web_dir", web.string());
  // Element shows a document posted in a room as a widget, in a frame of its own origin.
  editor_ = std::make_unique<Editor>(web, app, config.get_string("workers.docs.frame_ancestors", "*"));
  docs_store_ = std::make_unique<DocsStore>(runtime.home().database("docs"), runtime.home().root() / "docs" / "blobs");
  credentials_ = std::make_unique<auth::BasicAuthCache>(runtime.home(), "docs");
  DocsApiOptions api;
  api.quota_bytes = static_cast<int64_t>(config.get_count("workers.docs.quota_bytes", std::size_t{1} << 30));
  api.max_blob_bytes = static_cast<int64_t>(config.get_count("workers.docs.max_blob_bytes", 100 << 20));
  api.session_lifetime_s = static_cast<int64_t>(config.get_count("workers.docs.session_days", 30, 1, 3650)) * 86400;
  api.room_socket = runtime.home().socket("room");
  auto run = runtime.blocking_runner();
  router_->set_fallback([this, run, api](const http::Request& q, http::Reply reply) {
    if (q.path.rfind("/docs/api/", 0) != 0 && q.path.rfind("/docs/blob/", 0) != 0) return reply(editor_->handle(q));
    // Password checks and fsync'd writes: off the event loop.
    run([this, q, reply, api] {
      try {
        reply(handle_docs_api(q, *docs_store_, *netflux_, [this](const http::Request& r) { return member(r); }, api));
      } catch (const Error& e) {
        if (e.status() >= 500) spdlog::warn("docs {} {}: {}", q.method, q.path, e.what());
        reply(http::Response::error(e.code(), e.status() >= 500 ? "internal error" : e.what(), e.status()));
      } catch (const std::exception& e) {
        spdlog::error("docs {} {}: {}", q.method, q.path, e.what());
        reply(http::Response::error(errc::kInternal, "internal error", 500));
      }
    });
  });

  // What a member owns, for `coop member takeout`: the documents' logs and metadata and the
  // blobs, as files under COOP_HOME (ciphertext: the server holds no key).
  runtime.router().add_blocking("GET", "/v1/owned/{handle}", run, [this](const http::Request& q) {
    const auto handle = q.param("handle");
    auto documents = nlohmann::json::array();
    for (const auto& d : docs_store_->owned_by(handle)) {
      if (!ChannelStore::valid_id(d.channel)) continue;
      const auto dir = std::string("docs/channels/") + d.channel.substr(0, 2) + "/";
      documents.push_back({{"channel", d.channel}, {"title", d.title}, {"created_at", http::iso8601(d.created_at)},
                           {"log", dir + d.channel + ".ndjson"}, {"metadata", dir + d.channel + ".metadata.json"}});
    }
    auto blobs = nlohmann::json::array();
    for (const auto& b : docs_store_->blobs_of(handle))
      if (b.complete && DocsStore::valid_blob_id(b.id))
        blobs.push_back({{"id", b.id}, {"size", b.size}, {"created_at", http::iso8601(b.created_at)},
                         {"path", "docs/blobs/" + b.id.substr(0, 2) + "/" + b.id}});
    return http::Response::json({{"documents", documents}, {"blobs", blobs}});
  }, "what a member owns: documents (log and metadata files) and complete blobs");

  http::ServerLimits server_limits;
  server_limits.max_connections = config.get_count("workers.docs.max_connections", 4096, 1);
  server_limits.max_body_bytes = config.get_count("workers.docs.max_chunk_bytes", 8 << 20);
  server_limits.max_per_address = config.get_count("workers.docs.max_connections_per_address", 256);
  server_limits.max_per_network = config.get_count("workers.docs.max_connections_per_network", 1024);
  server_limits.trusted_proxies = config.get_strings("http.trusted_proxies", {});
  server_ = http::serve_worker_listener(runtime, "docs", "http", *router_, server_limits);
  runtime.on_status([this](nlohmann::json& status) {
    status["users"] = netflux_->users();
    status["channels"] = netflux_->channels();
    status["messages_relayed"] = netflux_->messages_relayed();
  });
  runtime.on_shutdown([this] {
    if (server_) server_->stop();
  });
  follower_ = std::make_unique<auth::MemberEventFollower>(runtime.home(), [this](const auth::MemberEvent& event) {
    if (auth::ends_sessions(event)) {
      credentials_->forget(event.handle);
      docs_store_->end_sessions(event.handle);
      connections_->live.end_all(event.handle, "access revoked");
    }
  });
  // Expiring documents: recorded when created, removed by a sweep once due (or at once when
  // someone touches one after its time).
  netflux_->on_expiring = [this](const std::string& channel, int64_t at) { docs_store_->add_expiring(channel, at); };
  const auto sweep_every = std::chrono::seconds(config.get_count("workers.docs.sweep_seconds", 60, 1, 86400));
  sweeper_ = std::thread([this, sweep_every] {
    std::unique_lock lock(sweep_mutex_);
    while (!sweep_stop_.wait_for(lock, sweep_every, [this] { return stopping_; })) {
      try {
        for (const auto& channel : docs_store_->expired(now_ms())) {
          netflux_->delete_channel(channel, "EEXPIRED");
          docs_store_->forget_expiring(channel);
          spdlog::info("docs: channel {} expired and was removed", channel);
        }
      } catch (const std::exception& e) {
        spdlog::warn("docs: expiry sweep: {}", e.what());
      }
    }
  });
}

DocsWorker::~DocsWorker() {
  {
    std::lock_guard lock(sweep_mutex_);
    stopping_ = true;
  }
  sweep_stop_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  follower_.reset();
  if (server_) server_->stop();
}

}  // namespace coop::docs
