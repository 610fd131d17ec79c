// coop-docs wiring.
#include "workers/docs/docs_worker.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "common/http/listen.h"
#include "common/http/router.h"
#include "common/http/server.h"
#include "common/worker_runtime.h"
#include "workers/docs/channel_store.h"
#include "workers/docs/editor.h"
#include "workers/docs/netflux.h"

namespace coop::docs {

// WebSocket connection id -> Netflux user id.
struct DocsWorker::Connections {
  std::mutex mutex;
  std::map<uint64_t, std::string> users;
};

DocsWorker::DocsWorker(WorkerRuntime& runtime)
    : store_(std::make_unique<ChannelStore>(runtime.home().root() / "docs" / "channels")),
      connections_(std::make_unique<Connections>()),
      router_(std::make_unique<http::Router>()) {
  const auto& config = runtime.config();
  NetfluxLimits limits;
  limits.max_channels_per_user = static_cast<std::size_t>(config.get_int("workers.docs.max_channels_per_user", 64));
  limits.max_users_per_channel = static_cast<std::size_t>(config.get_int("workers.docs.max_users_per_channel", 1000));
  netflux_ = std::make_unique<Netflux>(*store_, limits);

  http::WebSocketHandlers handlers;
  handlers.max_message_bytes = static_cast<std::size_t>(config.get_int("workers.docs.max_message_bytes", 1 << 20));
  handlers.max_queued_bytes = static_cast<std::size_t>(config.get_int("workers.docs.max_queued_bytes", 32 << 20));
  handlers.on_open = [this](const std::shared_ptr<http::WebSocket>& socket) {
    std::weak_ptr<http::WebSocket> weak = socket;
    const std::string user = netflux_->connect([weak](const std::string& frame) {
      auto s = weak.lock();
      return s && s->send(frame);
    });
    std::lock_guard lock(connections_->mutex);
    connections_->users[socket->id()] = user;
  };
  handlers.on_message = [this](const std::shared_ptr<http::WebSocket>& socket, std::string text) {
    std::string user;
    {
      std::lock_guard lock(connections_->mutex);
      auto it = connections_->users.find(socket->id());
      if (it == connections_->users.end()) return;
      user = it->second;
    }
    if (!netflux_->frame(user, text)) socket->close(1008, "not a Netflux frame");
  };
  handlers.on_close = [this](const std::shared_ptr<http::WebSocket>& socket) {
    std::string user;
    {
      std::lock_guard lock(connections_->mutex);
      auto it = connections_->users.find(socket->id());
      if (it == connections_->users.end()) return;
      user = it->second;
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
  if (!std::filesystem::exists(web / "chainpad", ec)) web = COOP_DOCS_WEB_DIR;
  editor_ = std::make_unique<Editor>(config.get_string("workers.docs.web_dir", web.string()));
  router_->set_fallback([this](const http::Request& q, http::Reply reply) { reply(editor_->handle(q)); });

  http::ServerLimits server_limits;
  server_limits.max_connections = static_cast<std::size_t>(config.get_int("workers.docs.max_connections", 4096));
  server_limits.max_per_address = static_cast<std::size_t>(config.get_int("workers.docs.max_connections_per_address", 256));
  std::vector<ListenerConfig> bound;
  for (const auto& listener : config.listeners("docs")) {
    if (listener.name != "http") continue;
    server_ = http::serve_listener(runtime.io(), listener, *router_, server_limits, runtime.home());
    server_->start();
    auto actual = listener;
    actual.port = server_->port();
    bound.push_back(actual);
  }
  runtime.set_listeners(bound);
  runtime.on_status([this](nlohmann::json& status) {
    status["users"] = netflux_->users();
    status["channels"] = netflux_->channels();
    status["messages_relayed"] = netflux_->messages_relayed();
  });
  runtime.on_shutdown([this] {
    if (server_) server_->stop();
  });
}

DocsWorker::~DocsWorker() {
  if (server_) server_->stop();
}

}  // namespace coop::docs
