#include "workers/federate/server_policy.h"

#include <chrono>

#include "common/error.h"
#include "common/sqlite.h"
#include "workers/federate/federate_db.h"
#include "workers/federate/remote_keys.h"

namespace coop::federate {

ServerPolicy::ServerPolicy(const std::filesystem::path& file) : db_(open_federate_db(file)) {
  auto& stmt = db_->prepare("SELECT server, policy FROM server_policy");
  while (stmt.step()) entries_[stmt.column_text(0)] = stmt.column_text(1);
  stmt.reset();
}

ServerPolicy::~ServerPolicy() = default;

void ServerPolicy::set(const std::string& server, const std::string& policy) {
  if (!valid_server_name(server)) throw Error(errc::kUsage, "'" + server + "' is not a server name", 400);
  if (policy != "allow" && policy != "deny") throw Error(errc::kUsage, "a policy is allow or deny", 400);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(mutex_);
  db_->prepare("INSERT OR REPLACE INTO server_policy (server, policy, since) VALUES (?1, ?2, ?3)")
      .bind(1, server)
      .bind(2, policy)
      .bind(3, static_cast<int64_t>(now))
      .run();
  entries_[server] = policy;
}

bool ServerPolicy::remove(const std::string& server) {
  std::lock_guard lock(mutex_);
  db_->prepare("DELETE FROM server_policy WHERE server = ?1").bind(1, server).run();
  return entries_.erase(server) > 0;
}

bool ServerPolicy::admits(const std::string& server) const {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(server);
  if (it != entries_.end()) return it->second == "allow";
  for (const auto& [name, policy] : entries_)
    if (policy == "allow") return false;  // an allow list names everyone admitted
  return true;
}

std::map<std::string, std::string> ServerPolicy::entries() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

}  // namespace coop::federate
