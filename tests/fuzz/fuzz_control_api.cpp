// libFuzzer target: JSON bodies through the real control API handlers of coop-member (the
// registry every protocol trusts), on a throwaway shard. The first line of the input is
// "METHOD /target", the rest the body. Checked: exactly one reply, valid UTF-8 JSON, and never
// a 5xx: whatever a caller sends is the caller's error, not a failure of the worker.
#include <cstdint>
#include <atomic>
#include <cstdlib>
#include <unistd.h>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/auth/password.h"
#include "common/auth/throttle.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/http/router.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/member/auth_service.h"
#include "workers/member/event_feed.h"
#include "workers/member/member_api.h"
#include "workers/member/store/member_store.h"

namespace {

// One shard for the whole run: a member worker's routes without its sockets.
struct Registry {
  Registry() {
    dir = std::filesystem::temp_directory_path() / ("coop-fuzz-control-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    coop::write_file_durably(dir / "coop.toml", coop::render_initial_config("fuzz.example", 40000), 0600);
    runtime = std::make_unique<coop::WorkerRuntime>(coop::RuntimeOptions{"member", dir.string(), true, 1});
    spdlog::set_level(spdlog::level::off);  // after the runtime set up its logger
    store = std::make_unique<coop::member::MemberStore>(runtime->home().database("member"));
    auth = std::make_unique<coop::member::AuthService>(*store, coop::auth::test_params(), coop::auth::ThrottleLimits{});
    feed = std::make_unique<coop::member::EventFeed>(runtime->io(), *store, runtime->blocking_runner());
    coop::member::add_member_routes(*runtime, *store, *auth, *feed);
  }
  ~Registry() {
    feed.reset();
    auth.reset();
    store.reset();
    runtime.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::filesystem::path dir;
  std::unique_ptr<coop::WorkerRuntime> runtime;
  std::unique_ptr<coop::member::MemberStore> store;
  std::unique_ptr<coop::member::AuthService> auth;
  std::unique_ptr<coop::member::EventFeed> feed;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Registry registry;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto eol = input.find('\n');
  const auto first = input.substr(0, eol);
  const auto space = first.find(' ');
  if (space == std::string_view::npos) return 0;
  coop::http::Request request;
  request.method = std::string(first.substr(0, space));
  if (!coop::http::parse_target(first.substr(space + 1), request)) return 0;
  // The long poll would wait for its timeout: not what this target is for.
  if (request.path.rfind("/v1/events", 0) == 0 || request.path == "/v1/shutdown") return 0;
  request.body = std::string(eol == std::string_view::npos ? std::string_view() : input.substr(eol + 1));
  request.remote_address = "local";
  auto replied = std::make_shared<std::promise<coop::http::Response>>();
  auto count = std::make_shared<std::atomic<int>>(0);
  registry.runtime->router().dispatch(request, [replied, count](coop::http::Response r) {
    if (count->fetch_add(1) == 0) replied->set_value(std::move(r));
    else std::abort();  // a second reply
  });
  const auto response = replied->get_future().get();
  if (response.status >= 500) std::abort();
  if (!coop::is_valid_utf8(response.body) || !nlohmann::json::accept(response.body)) std::abort();
  return 0;
}
