// Mapbox Vector Tile 2.1 encoding (layers, features, geometry commands) and a small decoder
// for tests and the fuzz target.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "workers/tiles/geometry.h"

namespace coop::tiles {

using Value = std::variant<std::string, int64_t, double, bool>;
using Properties = std::vector<std::pair<std::string, Value>>;

// MVT 2.1 4.3.4 Feature.type.
enum class GeomType : uint32_t { kUnknown = 0, kPoint = 1, kLineString = 2, kPolygon = 3 };

constexpr uint32_t kMvtVersion = 2;

// Collects the features of one layer; keys and values are shared across it (4.4).
// Geometry must already be in this layer's tile coordinates (clipped as wanted).
class LayerBuilder {
 public:
  explicit LayerBuilder(std::string name, uint32_t extent = 4096);

  void add_point(const Point& point, const Properties& properties,
                 std::optional<uint64_t> id = {});
  // Lines with fewer than two distinct points are skipped; no feature if none remain.
  void add_line(const std::vector<Line>& lines, const Properties& properties,
                std::optional<uint64_t> id = {});
  // Rings are re-oriented per 4.3.4.4 (orient_for_mvt); rings with fewer than three distinct
  // points or zero area are skipped, and a polygon whose exterior is skipped loses its holes.
  void add_polygon(const std::vector<Polygon>& polygons, const Properties& properties,
                   std::optional<uint64_t> id = {});

  bool empty() const { return features_.empty(); }
  const std::string& name() const { return name_; }
  // The encoded Layer message (without the Tile's field tag).
  std::string serialize() const;

 private:
  void add_feature(GeomType type, const std::vector<uint32_t>& geometry,
                   const Properties& properties, std::optional<uint64_t> id);
  uint32_t key_index(const std::string& key);
  uint32_t value_index(const Value& value);

  std::string name_;
  uint32_t extent_;
  std::vector<std::string> features_;  // encoded Feature messages
  std::vector<std::string> keys_;
  std::unordered_map<std::string, uint32_t> key_indexes_;
  std::vector<std::string> values_;  // encoded Value messages, which are also the dedup key
  std::unordered_map<std::string, uint32_t> value_indexes_;
};

// The Tile message: every non-empty layer as field 3 (4.1).
std::string encode_tile(const std::vector<LayerBuilder>& layers);

// 4.3.1 command integers and 4.3.2 parameter integers.
constexpr uint32_t kCommandMoveTo = 1;
constexpr uint32_t kCommandLineTo = 2;
constexpr uint32_t kCommandClosePath = 7;
constexpr uint32_t command_integer(uint32_t id, uint32_t count) { return (id & 0x7) | (count << 3); }

// --- Decoder (tests, fuzzing) ---

struct DecodedFeature {
  std::optional<uint64_t> id;
  GeomType type = GeomType::kUnknown;
  Properties properties;           // tags resolved through the layer's keys and values
  std::vector<uint32_t> commands;  // the raw geometry field
  // Absolute tile coordinates: one part per point (POINT), per MoveTo (LINESTRING) or per ring
  // (POLYGON; rings are closed by repeating their first point).
  std::vector<std::vector<Point>> parts;
};

struct DecodedLayer {
  uint32_t version = 1;  // 4.1: the default when the field is absent
  std::string name;
  uint32_t extent = 4096;
  std::vector<std::string> keys;
  std::vector<Value> values;
  std::vector<DecodedFeature> features;
};

struct MvtDecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws MvtDecodeError (or protozero::exception for broken protobuf framing) on bad input.
std::vector<DecodedLayer> decode_tile(std::string_view data);

}  // namespace coop::tiles
