// libFuzzer target: JSON bodies through the real control API handlers of coop-member (the
// registry every protocol trusts), on a throwaway shard. The first line of the input is
// "METHOD /target", the rest the body. Checked: exactly one reply, valid UTF-8 JSON, and never
// a 5xx: whatever a caller sends is the caller's error, not a failure of the worker.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/auth/password.h"
#include "common/auth/throttle.h"
#include "common/http/router.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "tests/fuzz/handler_harness.h"
#include "workers/member/auth_service.h"
#include "workers/member/event_feed.h"
#include "workers/member/member_api.h"
#include "workers/member/store/member_store.h"

namespace {

// One shard for the whole run: a member worker's routes without its sockets.
struct Registry {
  Registry() {
    runtime = std::make_unique<coop::WorkerRuntime>(coop::RuntimeOptions{"member", home.path(), true, 1});
    spdlog::set_level(spdlog::level::off);  // after the runtime set up its logger
    store = std::make_unique<coop::member::MemberStore>(runtime->home().database("member"));
    auth = std::make_unique<coop::member::AuthService>(*store, coop::auth::test_params(), coop::auth::ThrottleLimits{});
    feed = std::make_unique<coop::member::EventFeed>(runtime->io(), *store, runtime->blocking_runner());
    coop::member::add_member_routes(*runtime, *store, *auth, *feed);
  }
  // Members are destroyed in reverse order, the home last.
  coop::fuzz::ThrowawayHome home{"coop-fuzz-control-"};
  std::unique_ptr<coop::WorkerRuntime> runtime;
  std::unique_ptr<coop::member::MemberStore> store;
  std::unique_ptr<coop::member::AuthService> auth;
  std::unique_ptr<coop::member::EventFeed> feed;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Registry registry;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto request = coop::fuzz::request_of(input, coop::fuzz::first_line_of(input));
  if (!request) return 0;
  // The long poll would wait for its timeout: not what this target is for.
  if (request->path.rfind("/v1/events", 0) == 0 || request->path == "/v1/shutdown") return 0;
  request->remote_address = "local";
  const auto response = coop::fuzz::dispatch_once(registry.runtime->router(), *request);
  if (response.status >= 500) std::abort();
  if (!coop::is_valid_utf8(response.body) || !nlohmann::json::accept(response.body)) std::abort();
  return 0;
}
