// The member worker: owns member.db and answers for it on the control socket.
#include "workers/member/member_worker.h"

#include <nlohmann/json.hpp>

#include "common/worker_runtime.h"
#include "workers/member/store/member_store.h"

namespace coop::member {

MemberWorker::MemberWorker(WorkerRuntime& runtime)
    : store_(std::make_unique<MemberStore>(runtime.home().database("member"))) {
  runtime.on_status([this](nlohmann::json& status) {
    status["schema_version"] = store_->schema_version();
    status["members"] = {{"active", store_->count("active")},
                         {"suspended", store_->count("suspended")},
                         {"removed", store_->count("removed")}};
  });
}

MemberWorker::~MemberWorker() = default;

}  // namespace coop::member
