// tiles.db: the markers members put on the cooperative's map (resources and events), and a
// revision that changes with every edit so map pages can poll cheaply (ETag, 304).
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::sqlite {
class Database;
}

namespace coop::tiles {

struct Marker {
  int64_t id = 0;
  std::string kind;  // "resource" or "event"
  std::string title;
  std::string description;
  double lat = 0, lon = 0;
  std::string when;  // ISO 8601, events; empty when not given
  std::string by;    // the member it belongs to; empty for the shard's own
  int64_t created_at = 0;
};

// A marker as a GeoJSON Feature (RFC 7946 3.2): coordinates [lon, lat]; with_owner adds "by".
nlohmann::json marker_feature(const Marker& marker, bool with_owner);

// Reads a GeoJSON Feature with a Point geometry and properties title, kind, when, description
// (and by, when allowed) into a Marker; coop::Error(errc::kBadMarker, 400) naming what is wrong.
Marker marker_from_feature(const nlohmann::json& feature, bool allow_by);

class MarkerStore {
 public:
  explicit MarkerStore(const std::filesystem::path& file);
  ~MarkerStore();

  // Validates and stores it (committed before this returns); fills id and created_at.
  // max_per_member > 0 refuses a member's marker past that many (too_many_markers, 409).
  Marker add(Marker marker, int64_t max_per_member = 0);
  std::vector<Marker> list(const std::string& kind = {}) const;
  std::optional<Marker> get(int64_t id) const;
  // The removed marker, or nullopt when there was none.
  std::optional<Marker> remove(int64_t id);
  // Changes with every add and remove (and across restarts).
  std::string revision() const;

 private:
  std::unique_ptr<sqlite::Database> db_;
  mutable std::mutex mutex_;
  std::string epoch_;
  std::atomic<int64_t> changes_{0};
};

}  // namespace coop::tiles
