// The member worker: owns member.db and answers for it on the control socket.
#include "workers/member/member_worker.h"

#include <nlohmann/json.hpp>

#include "common/worker_runtime.h"
#include "workers/member/auth_service.h"
#include "workers/member/event_feed.h"
#include "workers/member/member_api.h"
#include "workers/member/portal.h"
#include "workers/member/store/member_store.h"

namespace coop::member {

namespace {

auth::HashParams hash_params(const Config& config) {
  auto params = auth::production_params();
  params.opslimit = static_cast<unsigned long long>(config.get_count("auth.argon2id_iterations", params.opslimit, 1, 100));
  params.memlimit = config.get_count("auth.argon2id_memory_kib", params.memlimit / 1024) * 1024;
  return params;
}

auth::ThrottleLimits throttle_limits(const Config& config) {
  auth::ThrottleLimits limits;
  limits.member_failures = static_cast<int>(config.get_count("auth.member_failures", limits.member_failures, 0, 1 << 30));
  limits.address_failures = static_cast<int>(config.get_count("auth.address_failures", limits.address_failures, 0, 1 << 30));
  limits.window = std::chrono::seconds(config.get_count("auth.failure_window_s", static_cast<std::size_t>(limits.window.count()), 1, 86400));
  return limits;
}

}  // namespace

MemberWorker::MemberWorker(WorkerRuntime& runtime)
    : store_(std::make_unique<MemberStore>(runtime.home().database("member"))),
      auth_(std::make_unique<AuthService>(*store_, hash_params(runtime.config()), throttle_limits(runtime.config()))),
      feed_(std::make_unique<EventFeed>(runtime.io(), *store_, runtime.blocking_runner())) {
  store_->on_events([feed = feed_.get()] { feed->notify(); });
  add_member_routes(runtime, *store_, *auth_, *feed_);
  portal_ = std::make_unique<Portal>(runtime, *store_, *auth_);
  runtime.on_shutdown([feed = feed_.get()] { feed->close(); });
  runtime.on_status([this](nlohmann::json& status) {
    status["schema_version"] = store_->schema_version();
    status["members"] = {{"active", store_->count("active")},
                         {"suspended", store_->count("suspended")},
                         {"removed", store_->count("removed")}};
    status["last_event"] = store_->last_event_seq();
    status["password_hash"] = {{"algorithm", "argon2id"},
                               {"iterations", auth_->params().opslimit},
                               {"memory_kib", auth_->params().memlimit / 1024}};
  });
}

MemberWorker::~MemberWorker() = default;

}  // namespace coop::member
