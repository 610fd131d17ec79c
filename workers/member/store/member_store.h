// member.db: the registry's tables; the only code that touches them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>

namespace coop::sqlite {
class Database;
}

namespace coop::member {

class MemberStore {
 public:
  // Opens member.db and brings its schema up to date.
  explicit MemberStore(const std::filesystem::path& file);
  ~MemberStore();

  int schema_version();
  // Members per status, for GET /v1/status.
  int64_t count(const char* status);

 private:
  std::mutex mutex_;  // one SQLite connection, used from the io threads in turn
  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace coop::member
