// Markers in tiles.db.
#include "workers/tiles/store/marker_store.h"

#include <chrono>
#include <cmath>
#include <regex>

#include "common/http/date.h"
#include "common/error.h"
#include "common/sqlite.h"
#include "workers/tiles/geometry.h"

namespace coop::tiles {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1,
     "CREATE TABLE markers ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " kind TEXT NOT NULL CHECK (kind IN ('resource', 'event')),"
     " title TEXT NOT NULL,"
     " description TEXT NOT NULL DEFAULT '',"
     " lat REAL NOT NULL, lon REAL NOT NULL,"
     " starts_at TEXT NOT NULL DEFAULT '',"
     " created_by TEXT NOT NULL DEFAULT '',"
     " created_at INTEGER NOT NULL);"
     "CREATE INDEX markers_kind ON markers (kind);"},
};

constexpr std::size_t kMaxTitle = 200;
constexpr std::size_t kMaxDescription = 4000;

bool has_control_characters(const std::string& text, bool allow_newlines) {
  for (unsigned char c : text)
    if ((c < 0x20 && !(allow_newlines && (c == '\n' || c == '\t'))) || c == 0x7f) return true;
  return false;
}

void validate(const Marker& m) {
  if (m.kind != "resource" && m.kind != "event")
    throw Error(errc::kBadMarker, "kind must be resource or event", 400);
  if (m.title.empty() || m.title.size() > kMaxTitle || has_control_characters(m.title, false))
    throw Error(errc::kBadMarker, "a title is 1-200 bytes of text on one line", 400);
  if (m.description.size() > kMaxDescription || has_control_characters(m.description, true))
    throw Error(errc::kBadMarker, "a description is at most 4000 bytes of text", 400);
  if (!std::isfinite(m.lat) || !std::isfinite(m.lon) || std::fabs(m.lat) > kMaxMercatorLatitude ||
      std::fabs(m.lon) > 180)
    throw Error(errc::kBadMarker, "the position must be within lat ±85.0511, lon ±180", 400);
  // ISO 8601 / RFC 3339 dates and times: 2026-12-05, 2026-12-05T18:00, ...:00Z, ...+01:00.
  static const std::regex kWhen(
      R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?)?)");
  if (!m.when.empty() && !std::regex_match(m.when, kWhen))
    throw Error(errc::kBadMarker, "when must be an ISO 8601 date or date and time, like 2026-12-05T18:00:00+01:00", 400);
  static const std::regex kHandle("[a-z0-9][a-z0-9._-]{0,63}");
  if (!m.by.empty() && !std::regex_match(m.by, kHandle)) throw Error(errc::kBadMarker, "by must be a member handle", 400);
}

Marker read_row(const sqlite::Statement& s) {
  Marker m;
  m.id = s.column_int64(0);
  m.kind = s.column_text(1);
  m.title = s.column_text(2);
  m.description = s.column_text(3);
  m.lat = s.column_double(4);
  m.lon = s.column_double(5);
  m.when = s.column_text(6);
  m.by = s.column_text(7);
  m.created_at = s.column_int64(8);
  return m;
}

constexpr const char* kColumns = "id, kind, title, description, lat, lon, starts_at, created_by, created_at";

}  // namespace

nlohmann::json marker_feature(const Marker& m, bool with_owner) {
  nlohmann::json properties{{"title", m.title}, {"kind", m.kind}};
  if (!m.description.empty()) properties["description"] = m.description;
  if (!m.when.empty()) properties["when"] = m.when;
  if (with_owner && !m.by.empty()) properties["by"] = m.by;
  properties["created_at"] = http::iso8601(m.created_at);
  return {{"type", "Feature"},
          {"id", m.id},
          {"geometry", {{"type", "Point"}, {"coordinates", {m.lon, m.lat}}}},
          {"properties", properties}};
}

Marker marker_from_feature(const nlohmann::json& feature, bool allow_by) {
  // json::value() throws when the member has another type: every member is checked first.
  auto is = [](const nlohmann::json& object, const char* key, const char* text) {
    const auto it = object.find(key);
    return it != object.end() && it->is_string() && it->get<std::string>() == text;
  };
  if (!feature.is_object() || !is(feature, "type", "Feature")) throw Error(errc::kBadMarker, "send a GeoJSON Feature", 400);
  const auto geometry = feature.find("geometry");
  if (geometry == feature.end() || !geometry->is_object() || !is(*geometry, "type", "Point"))
    throw Error(errc::kBadMarker, "a marker's geometry is a GeoJSON Point", 400);
  const auto coordinates = geometry->find("coordinates");
  if (coordinates == geometry->end() || !coordinates->is_array() || coordinates->size() < 2 ||
      !(*coordinates)[0].is_number() || !(*coordinates)[1].is_number())
    throw Error(errc::kBadMarker, "a Point's coordinates are [longitude, latitude]", 400);
  // RFC 7946 3.1.1: a position is two or three numbers.
  if (coordinates->size() > 3) throw Error(errc::kBadMarker, "a position has at most three numbers", 400);
  Marker m;
  m.lon = (*coordinates)[0].get<double>();
  m.lat = (*coordinates)[1].get<double>();
  const auto properties = feature.find("properties");
  if (properties == feature.end() || !properties->is_object())
    throw Error(errc::kBadMarker, "a marker needs properties with at least a title", 400);
  auto text = [&](const char* key, const char* fallback) {
    auto it = properties->find(key);
    if (it == properties->end() || it->is_null()) return std::string(fallback);
    if (!it->is_string()) throw Error(errc::kBadMarker, std::string(key) + " must be a string", 400);
    return it->get<std::string>();
  };
  m.title = text("title", "");
  m.kind = text("kind", "resource");
  m.when = text("when", "");
  m.description = text("description", "");
  if (allow_by) m.by = text("by", "");
  validate(m);
  return m;
}

MarkerStore::MarkerStore(const std::filesystem::path& file) : db_(sqlite::Database::open(file)) {
  db_->migrate(kMigrations);
  epoch_ = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count());
}

MarkerStore::~MarkerStore() = default;

Marker MarkerStore::add(Marker m, int64_t max_per_member) {
  validate(m);
  m.created_at = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(mutex_);
  if (max_per_member > 0 && !m.by.empty()) {
    auto& count = db_->prepare("SELECT count(*) FROM markers WHERE created_by = ?1");
    count.bind(1, m.by);
    count.step();
    const int64_t n = count.column_int64(0);
    count.reset();
    if (n >= max_per_member)
      throw Error(errc::kTooManyMarkers, m.by + " has " + std::to_string(n) + " markers, the most one member may have", 409);
  }
  auto& insert = db_->prepare(
      "INSERT INTO markers (kind, title, description, lat, lon, starts_at, created_by, created_at)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  insert.bind(1, m.kind).bind(2, m.title).bind(3, m.description).bind(4, m.lat).bind(5, m.lon).bind(6, m.when)
      .bind(7, m.by).bind(8, m.created_at);
  insert.run();
  m.id = db_->last_insert_rowid();
  ++changes_;
  return m;
}

std::vector<Marker> MarkerStore::list(const std::string& kind) const {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare(std::string("SELECT ") + kColumns +
                              " FROM markers WHERE ?1 = '' OR kind = ?1 ORDER BY id");
  select.bind(1, kind);
  std::vector<Marker> out;
  while (select.step()) out.push_back(read_row(select));
  select.reset();
  return out;
}

std::optional<Marker> MarkerStore::get(int64_t id) const {
  std::lock_guard lock(mutex_);
  auto& select = db_->prepare(std::string("SELECT ") + kColumns + " FROM markers WHERE id = ?1");
  select.bind(1, id);
  std::optional<Marker> out;
  if (select.step()) out = read_row(select);
  select.reset();
  return out;
}

std::optional<Marker> MarkerStore::remove(int64_t id) {
  auto marker = get(id);
  if (!marker) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto& erase = db_->prepare("DELETE FROM markers WHERE id = ?1");
  erase.bind(1, id);
  erase.run();
  ++changes_;
  return marker;
}

std::string MarkerStore::revision() const { return epoch_ + "-" + std::to_string(changes_.load()); }

}  // namespace coop::tiles
