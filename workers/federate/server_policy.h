// Which servers this one federates with: servers denied are refused both ways; once any server
// is allowed, only allowed servers are (an allow list). Kept in federate.db, changed by
// `coop federate allow|deny`.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace coop::sqlite {
class Database;
}

namespace coop::federate {

class ServerPolicy {
 public:
  explicit ServerPolicy(const std::filesystem::path& file);
  ~ServerPolicy();

  // "allow" or "deny"; throws coop::Error(kUsage) for another word or a bad server name.
  void set(const std::string& server, const std::string& policy);
  // True when the server had an entry.
  bool remove(const std::string& server);
  bool admits(const std::string& server) const;
  std::map<std::string, std::string> entries() const;  // server -> allow|deny

 private:
  std::unique_ptr<sqlite::Database> db_;
  mutable std::mutex mutex_;  // guards db_ and the copy below
  std::map<std::string, std::string> entries_;  // what the table holds, read on every request
};

}  // namespace coop::federate
