// coop-dav wiring.
#include "workers/dav/dav_worker.h"

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/auth/member_client.h"
#include "common/coalesced_job.h"
#include "common/error.h"
#include "common/http/router.h"
#include "common/http/listen.h"
#include "common/http/server.h"
#include "common/worker_runtime.h"
#include "workers/dav/autoconfig.h"
#include "workers/dav/dav_admin_api.h"
#include "workers/dav/dav_handler.h"
#include "workers/dav/member_directory.h"
#include "workers/dav/store/dav_store.h"

namespace coop::dav {

DavWorker::DavWorker(WorkerRuntime& runtime)
    : store_(std::make_unique<DavStore>(runtime.home().database("dav"))),
      handler_(std::make_unique<DavHandler>(runtime.home(), *store_, runtime.config().domain())),
      directory_(std::make_unique<MemberDirectory>(runtime.home(), *store_, runtime.config().domain())),
      directory_refresh_(std::make_unique<CoalescedJob>(runtime.blocking_runner(), [directory = directory_.get()] {
        directory->refresh();
      })),
      router_(std::make_unique<http::Router>()) {
  auto run = runtime.blocking_runner();
  add_dav_admin_routes(runtime, *store_);
  // coop-mail hands over the calendar mail it delivered (imip_forward.h).
  runtime.router().add_blocking("POST", "/v1/itip/{handle}", run, [handler = handler_.get()](const control::Request& q) {
    const auto body = q.json();
    const auto outcome = handler->receive_imip(q.param("handle"), body.value("from", ""), body.value("authenticated", false),
                                               body.value("calendar", ""));
    return control::Response::json(nlohmann::json::parse(outcome));
  }, "apply an iTIP message a member received by mail ({from, authenticated, calendar})");
  // Routes win over the fallback: it runs only for paths no route names (http::Router::dispatch).
  add_autoconfig_routes(runtime, *router_);
  router_->set_fallback([handler = handler_.get(), run](const http::Request& q, http::Reply reply) {
    run([handler, q, reply] {
      try {
        reply(handler->handle(q));
      } catch (const Error& e) {
        spdlog::warn("dav {} {}: {}", q.method, q.path, e.what());
        // coop-member down: try again later; anything else of ours: no detail to the client.
        if (e.code() == errc::kNotRunning)
          reply(http::Response::bytes(503, "the member registry is not answering; try again\n", "text/plain"));
        else
          reply(http::Response::bytes(500, "internal error\n", "text/plain"));
      } catch (const std::exception& e) {
        spdlog::error("dav {} {}: {}", q.method, q.path, e.what());
        reply(http::Response::bytes(500, "internal error\n", "text/plain"));
      }
    });
  });

  const auto& config = runtime.config();
  // The WebDAV files tree takes files of any size, streamed to disk once the member is known
  // and within their quota; calendars, contacts and XML bodies stay small and in memory.
  const uint64_t max_file_bytes = config.get_count("workers.dav.max_file_bytes", 0, 0, std::size_t{1} << 50);
  router_->set_body_gate({"/dav/files/", handler_->spool_dir(),
                          [handler = handler_.get(), run, max_file_bytes](const http::Request& head,
                                                                          std::function<void(http::Router::BodyAdmission)> answer) {
                            run([handler, head, answer, max_file_bytes] {
                              try {
                                answer(handler->admit_upload(head, max_file_bytes));
                              } catch (const std::exception& e) {
                                spdlog::error("dav upload admission: {}", e.what());
                                http::Router::BodyAdmission refused;
                                refused.refusal = http::Response::bytes(500, "internal error\n", "text/plain");
                                answer(std::move(refused));
                              }
                            });
                          }});
  http::ServerLimits limits;
  limits.max_body_bytes = config.get_count("workers.dav.max_request_bytes", 8 << 20, 64 << 10);
  limits.max_connections = config.get_count("workers.dav.max_connections", 1024, 1);
  limits.max_per_address = config.get_count("workers.dav.max_connections_per_address", 64);
  limits.max_per_network = config.get_count("workers.dav.max_connections_per_network", 256);
  limits.trusted_proxies = config.get_strings("http.trusted_proxies", {});
  limits.idle_timeout = config.get_millis("workers.dav.idle_timeout_ms", std::chrono::milliseconds(60000));
  server_ = http::serve_worker_listener(runtime, "dav", "http", *router_, limits);

  // The members directory follows the registry; credentials cached for a minute are
  // forgotten at once when a member is suspended or changes a password.
  // The directory is built once the registry answers, then follows its events.
  follower_ = std::make_unique<auth::MemberEventFollower>(
      runtime.home(),
      [this](const auth::MemberEvent& event) {
        // Groups decide which shared calendars a member sees: a change is felt at once, not
        // when the minute of cached credentials runs out.
        if (auth::ends_sessions(event) || event.kind == "member.updated" || event.kind.rfind("group.", 0) == 0)
          handler_->forget(event.handle);
        directory_refresh_->request();
      },
      [this] { directory_refresh_->request(); });
  runtime.on_shutdown([this] {
    if (server_) server_->stop();
  });
}

DavWorker::~DavWorker() {
  follower_.reset();
  if (server_) server_->stop();
}

}  // namespace coop::dav
