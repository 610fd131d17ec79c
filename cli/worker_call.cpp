// Control API calls from the CLI, with coop's error conventions.
#include "cli/worker_call.h"

#include <iostream>

#include "common/control/client.h"
#include "common/error.h"
#include "common/text.h"
#include "common/paths.h"

namespace coop::cli {

std::string path_segment(std::string_view text) { return percent_encode(text); }

WorkerCall::WorkerCall(const Globals& globals, std::string worker, bool json)
    : globals_(globals), worker_(std::move(worker)), json_(json) {}

std::string WorkerCall::call_raw(std::string_view method, std::string_view path, std::string_view body) {
  const Home home = globals_.resolve_home();
  control::ClientResponse response;
  try {
    control::Client client(home.socket(worker_));
    response = client.request(method, path, body, std::chrono::seconds(300));
  } catch (const Error& e) {
    if (e.code() == errc::kNotRunning) {
      require_shard(home);  // a wrong --home is said as such, not as a worker that is down
      throw Error(errc::kNotRunning, "coop-" + worker_ + " is not running in " + home.root().string() + " (coop up)", 503);
    }
    throw;
  }
  if (!response.ok() && json_) std::cout << response.body << '\n';
  response.throw_if_error();
  return response.body;
}

nlohmann::json WorkerCall::call(std::string_view method, std::string_view path, const nlohmann::json& body) {
  const auto text = call_raw(method, path, body.is_null() ? std::string() : body.dump());
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded()) throw Error(errc::kControlFailed, "coop-" + worker_ + " answered with something that is not JSON", 502);
  return parsed;
}

void require_member(const Globals& globals, const std::string& handle) {
  WorkerCall(globals, "member", false).call("GET", "/v1/members/" + path_segment(handle));
}

void require_group(const Globals& globals, const std::string& name) {
  WorkerCall(globals, "member", false).call("GET", "/v1/groups/" + path_segment(name) + "/members?direct=true");
}

void require_grantee(const Globals& globals, const std::string& who) {
  if (who.rfind("member:", 0) == 0) require_member(globals, who.substr(7));
  if (who.rfind("group:", 0) == 0) require_group(globals, who.substr(6));
}

}  // namespace coop::cli
