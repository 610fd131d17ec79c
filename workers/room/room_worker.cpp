// coop-room wiring.
#include "workers/room/room_worker.h"

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <fstream>
#include <set>

#include "common/auth/member_client.h"
#include "common/coalesced_job.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/http/router.h"
#include "common/http/listen.h"
#include "common/http/server.h"
#include "common/worker_runtime.h"
#include "workers/matrix/server_key.h"
#include "workers/room/client_api.h"
#include "workers/room/push_sender.h"
#include "workers/room/room_admin_api.h"
#include "workers/room/space_sync.h"
#include "workers/room/store/key_store.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

std::unique_ptr<matrix::SigningKey> signing_key(const Home& home) {
  return std::make_unique<matrix::SigningKey>(matrix::load_or_make_server_key(home));
}

}  // namespace

RoomWorker::RoomWorker(WorkerRuntime& runtime)
    : key_(signing_key(runtime.home())),
      store_(std::make_unique<RoomStore>(runtime.home().database("room"), runtime.config().domain(), *key_)),
      keys_(std::make_unique<KeyStore>(runtime.home().database("e2ee"))),
      router_(std::make_unique<http::Router>()),
      api_(std::make_unique<ClientApi>(runtime, *store_, *keys_, *router_)),
      spaces_(std::make_unique<SpaceSync>(runtime.home(), *store_,
                                          runtime.config().get_string("workers.room.space_name", runtime.config().domain()))) {
  try {
    store_->set_default_room_version(runtime.config().get_string("workers.room.default_room_version", "12"));
  } catch (const Error& e) {
    throw Error(errc::kConfigInvalid, std::string("[workers.room] default_room_version: ") + e.what());
  }
  PushSettings push;
  push.gateways = runtime.config().get_strings("workers.room.push.gateways", {});
  push_ = std::make_unique<PushSender>(*store_, push);
  // New events may be for other servers too: coop-federate hears of them (once for any
  // number of commits) and sends what its destinations lack.
  federate_poke_ = std::make_unique<CoalescedJob>(runtime.blocking_runner(), [socket = runtime.home().socket("federate")] {
    try {
      control::Client(socket).request("POST", "/v1/outbound/wake", {}, std::chrono::seconds(5));
    } catch (const std::exception&) {
      // Federation is off or restarting; its sender looks on its own every few seconds.
    }
  });
  // Our members' device changes go to other servers; coop-federate's start asks again for
  // what it could not take while it was down (POST /v1/federation/changed).
  device_lists_out_ = std::make_unique<CoalescedJob>(runtime.blocking_runner(), [api = api_.get()] {
    try {
      api->federate_device_changes();
    } catch (const std::exception& e) {
      spdlog::debug("device list changes wait for coop-federate: {}", e.what());
    }
  });
  store_->on_change([api = api_.get(), pusher = push_.get(), poke = federate_poke_.get()](const StoreChange& change) {
    api->notify(change);
    if (!change.rooms.empty()) {
      pusher->poke();  // new events may have notified someone
      poke->request();
    }
  });
  // coop-federate writes room.db too (events from other servers): it says what changed.
  runtime.router().add("POST", "/v1/federation/changed", [api = api_.get(), pusher = push_.get(),
                                                         devices_out = device_lists_out_.get()](const http::Request& q) {
    devices_out->request();
    const auto body = q.json();
    StoreChange change;
    const auto names = [&body](const char* field) {
      std::set<std::string> out;
      if (body.contains(field) && body[field].is_array())
        for (const auto& v : body[field])
          if (v.is_string()) out.insert(v.get<std::string>());
      return out;
    };
    change.rooms = names("rooms");
    change.users = names("users");
    change.device_lists = names("device_lists");
    api->notify(change);
    if (!change.rooms.empty()) pusher->poke();
    return http::Response::json(nlohmann::json::object());
  }, "coop-federate stored events: wake the syncs and pushes they concern");
  runtime.router().add_blocking("POST", "/v1/federation/edus", runtime.blocking_runner(), [api = api_.get()](const http::Request& q) {
    const auto body = q.json();
    if (body.contains("origin") && body["origin"].is_string() && body.contains("edus"))
      api->apply_remote_edus(body["origin"].get<std::string>(), body["edus"]);
    return http::Response::json(nlohmann::json::object());
  }, "EDUs from another server ({origin, edus}): typing, receipts, to-device messages, device list updates");
  api_->add_federation_routes(runtime.router(), runtime.blocking_runner());
  api_->set_readmission([spaces = spaces_.get()](const std::string& room_id, const std::string& user_id) {
    spaces->readmit(room_id, user_id);
  });
  keys_->on_change([api = api_.get(), devices_out = device_lists_out_.get()](const StoreChange& change) {
    api->notify(change);
    if (!change.device_lists.empty()) devices_out->request();
  });
  device_lists_out_->request();
  add_room_admin_routes(runtime, *store_, *spaces_, api_->jitsi());

  const auto& config = runtime.config();
  http::ServerLimits limits;
  // Media uploads are the largest bodies (m.upload.size).
  limits.max_body_bytes = config.get_count("workers.room.max_upload_bytes", 50 << 20);
  limits.max_connections = config.get_count("workers.room.max_connections", 4096, 1);
  limits.max_per_address = config.get_count("workers.room.max_connections_per_address", 256);
  limits.max_per_network = config.get_count("workers.room.max_connections_per_network", 1024);
  limits.trusted_proxies = config.get_strings("http.trusted_proxies", {});
  limits.idle_timeout = config.get_millis("workers.room.idle_timeout_ms", std::chrono::milliseconds(180000));
  server_ = http::serve_worker_listener(runtime, "room", "client", *router_, limits);
  if (server_) spdlog::info("Matrix client-server API on port {}", server_->port());

  {
    follower_ = std::make_unique<auth::MemberEventFollower>(
        runtime.home(), [api = api_.get(), spaces = spaces_.get()](const auth::MemberEvent& event) {
          // A suspended or removed member, a new password or a revoked app password: every
          // Matrix session of that member ends now.
          if (auth::ends_sessions(event)) {
            spdlog::info("ending the sessions of {} ({})", event.handle, event.kind);
            api->end_sessions(event.handle, event.kind);
          }
          // Space memberships follow the registry.
          if (event.kind == "group.added" || event.kind == "group.removed")
            spaces->reconcile_all();
          else if (!event.handle.empty() && event.kind.rfind("member.", 0) == 0 && event.kind != "member.password_changed")
            spaces->reconcile_member(event.handle);
          else if (event.kind == "group.changed")
            spaces->reconcile_member(event.handle);
        },
        // The cooperative's Space and its members, once the registry answers; the events
        // keep it current from there.
        [run = runtime.blocking_runner(), spaces = spaces_.get()] {
          run([spaces] {
            try {
              spaces->ensure_cooperative_space();
              spaces->reconcile_all();
            } catch (const std::exception& e) {
              spdlog::error("cannot set up the cooperative's Space: {}", e.what());
            }
          });
        });
  }
  runtime.on_shutdown([this] {
    api_->close();
    if (server_) server_->stop();
  });
}

RoomWorker::~RoomWorker() {
  follower_.reset();
  push_.reset();
  if (server_) server_->stop();
}

}  // namespace coop::room
