// federate.db: coop-federate's own tables (allow and deny lists, outbound positions per
// destination, inbound transactions seen). Every part of the worker opens it through here,
// so the schema is migrated in one place.
#pragma once

#include <filesystem>
#include <memory>

namespace coop::sqlite {
class Database;
}

namespace coop::federate {

std::unique_ptr<sqlite::Database> open_federate_db(const std::filesystem::path& file);

}  // namespace coop::federate
