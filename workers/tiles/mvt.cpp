// Mapbox Vector Tile 2.1 encoder and test decoder, on protozero.
#include "workers/tiles/mvt.h"

#include <algorithm>

#include <protozero/pbf_reader.hpp>
#include <protozero/pbf_writer.hpp>
#include <protozero/varint.hpp>

namespace coop::tiles {

namespace {

// MVT 2.1 vector_tile.proto field numbers.
namespace tile_field { constexpr protozero::pbf_tag_type kLayers = 3; }
namespace layer_field {
constexpr protozero::pbf_tag_type kName = 1, kFeatures = 2, kKeys = 3, kValues = 4, kExtent = 5,
                                  kVersion = 15;
}
namespace feature_field {
constexpr protozero::pbf_tag_type kId = 1, kTags = 2, kType = 3, kGeometry = 4;
}
namespace value_field {
constexpr protozero::pbf_tag_type kString = 1, kFloat = 2, kDouble = 3, kInt = 4, kUint = 5,
                                  kSint = 6, kBool = 7;
}

// 4.3: geometry as commands with zigzag-encoded deltas from a cursor starting at (0,0).
class GeometryEncoder {
 public:
  void move_to(const Point& p) {
    commands_.push_back(command_integer(kCommandMoveTo, 1));
    push_delta(p);
  }
  // points[1..] as one LineTo command.
  void line_to_rest(const std::vector<Point>& points) {
    commands_.push_back(command_integer(kCommandLineTo, static_cast<uint32_t>(points.size() - 1)));
    for (size_t i = 1; i < points.size(); ++i) push_delta(points[i]);
  }
  void close_path() { commands_.push_back(command_integer(kCommandClosePath, 1)); }
  const std::vector<uint32_t>& commands() const { return commands_; }

 private:
  void push_delta(const Point& p) {
    // 4.3.2: parameters are zigzag-encoded 32-bit deltas.
    commands_.push_back(protozero::encode_zigzag32(static_cast<int32_t>(p.x - cursor_.x)));
    commands_.push_back(protozero::encode_zigzag32(static_cast<int32_t>(p.y - cursor_.y)));
    cursor_ = p;
  }

  std::vector<uint32_t> commands_;
  Point cursor_{0, 0};
};

// A ring's distinct vertices without the closing repeat, or empty when it has fewer than three.
std::vector<Point> ring_vertices(const Ring& ring) {
  std::vector<Point> points = ring;
  remove_repeated_points(points);
  while (points.size() >= 2 && points.front() == points.back()) points.pop_back();
  if (points.size() < 3) points.clear();
  return points;
}

std::string encode_value(const Value& value) {
  std::string out;
  protozero::pbf_writer writer{out};
  if (const auto* s = std::get_if<std::string>(&value)) {
    writer.add_string(value_field::kString, *s);
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    // 4.2: sint for negatives (short zigzag varints), uint otherwise.
    if (*i < 0) {
      writer.add_sint64(value_field::kSint, *i);
    } else {
      writer.add_uint64(value_field::kUint, static_cast<uint64_t>(*i));
    }
  } else if (const auto* d = std::get_if<double>(&value)) {
    writer.add_double(value_field::kDouble, *d);
  } else {
    writer.add_bool(value_field::kBool, std::get<bool>(value));
  }
  return out;
}

Value decode_value(protozero::pbf_reader reader) {
  std::optional<Value> value;
  while (reader.next()) {
    switch (reader.tag()) {
      case value_field::kString: value = std::string{reader.get_view()}; break;
      case value_field::kFloat: value = static_cast<double>(reader.get_float()); break;
      case value_field::kDouble: value = reader.get_double(); break;
      case value_field::kInt: value = reader.get_int64(); break;
      case value_field::kUint: value = static_cast<int64_t>(reader.get_uint64()); break;
      case value_field::kSint: value = reader.get_sint64(); break;
      case value_field::kBool: value = reader.get_bool(); break;
      default: reader.skip();
    }
  }
  // 4.1: exactly one of the fields must be present.
  if (!value) throw MvtDecodeError("mvt value without a field");
  return *value;
}

void decode_geometry(DecodedFeature& feature) {
  int64_t x = 0, y = 0;
  const auto& c = feature.commands;
  size_t i = 0;
  while (i < c.size()) {
    const uint32_t id = c[i] & 0x7;
    const uint32_t count = c[i] >> 3;
    ++i;
    if (id == kCommandMoveTo || id == kCommandLineTo) {
      if (count > (c.size() - i) / 2) throw MvtDecodeError("mvt geometry parameters truncated");
      if (id == kCommandLineTo && feature.parts.empty()) {
        throw MvtDecodeError("mvt LineTo before MoveTo");
      }
      for (uint32_t n = 0; n < count; ++n) {
        x += protozero::decode_zigzag32(c[i++]);
        y += protozero::decode_zigzag32(c[i++]);
        if (id == kCommandMoveTo) feature.parts.emplace_back();
        feature.parts.back().push_back({x, y});
      }
    } else if (id == kCommandClosePath) {
      if (feature.parts.empty()) throw MvtDecodeError("mvt ClosePath before MoveTo");
      // MVT 2.1 4.3.3.3: ClosePath has a command count of 1. A huge count would otherwise
      // copy a point billions of times (found by fuzz_mvt_decode).
      if (count != 1) throw MvtDecodeError("mvt ClosePath with a count other than 1");
      feature.parts.back().push_back(feature.parts.back().front());
    } else {
      throw MvtDecodeError("mvt unknown geometry command");
    }
  }
}

}  // namespace

LayerBuilder::LayerBuilder(std::string name, uint32_t extent)
    : name_(std::move(name)), extent_(extent) {}

void LayerBuilder::add_point(const Point& point, const Properties& properties,
                             std::optional<uint64_t> id) {
  GeometryEncoder geometry;
  geometry.move_to(point);
  add_feature(GeomType::kPoint, geometry.commands(), properties, id);
}

void LayerBuilder::add_line(const std::vector<Line>& lines, const Properties& properties,
                            std::optional<uint64_t> id) {
  GeometryEncoder geometry;
  for (const Line& line : lines) {
    Line points = line;
    remove_repeated_points(points);  // 4.3.4.3: no zero-length LineTo
    if (points.size() < 2) continue;
    geometry.move_to(points.front());
    geometry.line_to_rest(points);
  }
  if (geometry.commands().empty()) return;
  add_feature(GeomType::kLineString, geometry.commands(), properties, id);
}

void LayerBuilder::add_polygon(const std::vector<Polygon>& polygons, const Properties& properties,
                               std::optional<uint64_t> id) {
  GeometryEncoder geometry;
  auto encode_ring = [&geometry](const std::vector<Point>& points) {
    geometry.move_to(points.front());
    geometry.line_to_rest(points);
    geometry.close_path();  // 4.3.3.3: ClosePath rather than repeating the first point
  };
  for (const Polygon& polygon : polygons) {
    Polygon cleaned;
    cleaned.outer = ring_vertices(polygon.outer);
    if (cleaned.outer.empty()) continue;
    for (const Ring& inner : polygon.inners) {
      std::vector<Point> points = ring_vertices(inner);
      if (!points.empty()) cleaned.inners.push_back(std::move(points));
    }
    orient_for_mvt(cleaned);  // 4.3.4.4 winding; drops zero-area rings
    if (cleaned.outer.empty()) continue;
    encode_ring(cleaned.outer);
    for (const Ring& inner : cleaned.inners) encode_ring(inner);
  }
  if (geometry.commands().empty()) return;
  add_feature(GeomType::kPolygon, geometry.commands(), properties, id);
}

void LayerBuilder::add_feature(GeomType type, const std::vector<uint32_t>& geometry,
                               const Properties& properties, std::optional<uint64_t> id) {
  std::vector<uint32_t> tags;
  tags.reserve(properties.size() * 2);
  std::vector<uint32_t> seen_keys;
  for (const auto& [key, value] : properties) {
    const uint32_t k = key_index(key);
    // 4.4: a key appears once per feature; the first value wins.
    if (std::find(seen_keys.begin(), seen_keys.end(), k) != seen_keys.end()) continue;
    seen_keys.push_back(k);
    tags.push_back(k);
    tags.push_back(value_index(value));
  }
  std::string encoded;
  protozero::pbf_writer writer{encoded};
  if (id) writer.add_uint64(feature_field::kId, *id);
  if (!tags.empty()) writer.add_packed_uint32(feature_field::kTags, tags.begin(), tags.end());
  writer.add_enum(feature_field::kType, static_cast<int32_t>(type));
  writer.add_packed_uint32(feature_field::kGeometry, geometry.begin(), geometry.end());
  features_.push_back(std::move(encoded));
}

uint32_t LayerBuilder::key_index(const std::string& key) {
  const auto [it, inserted] = key_indexes_.try_emplace(key, static_cast<uint32_t>(keys_.size()));
  if (inserted) keys_.push_back(key);
  return it->second;
}

uint32_t LayerBuilder::value_index(const Value& value) {
  // Keyed by the encoded message, so 1 (int) and 1.0 (double) stay distinct and NaN dedups.
  std::string encoded = encode_value(value);
  const auto [it, inserted] =
      value_indexes_.try_emplace(encoded, static_cast<uint32_t>(values_.size()));
  if (inserted) values_.push_back(std::move(encoded));
  return it->second;
}

std::string LayerBuilder::serialize() const {
  std::string out;
  protozero::pbf_writer writer{out};
  writer.add_uint32(layer_field::kVersion, kMvtVersion);
  writer.add_string(layer_field::kName, name_);
  for (const std::string& feature : features_) writer.add_message(layer_field::kFeatures, feature);
  for (const std::string& key : keys_) writer.add_string(layer_field::kKeys, key);
  for (const std::string& value : values_) writer.add_message(layer_field::kValues, value);
  writer.add_uint32(layer_field::kExtent, extent_);
  return out;
}

std::string encode_tile(const std::vector<LayerBuilder>& layers) {
  std::string out;
  protozero::pbf_writer writer{out};
  for (const LayerBuilder& layer : layers) {
    if (!layer.empty()) writer.add_message(tile_field::kLayers, layer.serialize());
  }
  return out;
}

std::vector<DecodedLayer> decode_tile(std::string_view data) {
  std::vector<DecodedLayer> layers;
  protozero::pbf_reader tile{data.data(), data.size()};
  while (tile.next()) {
    if (tile.tag() != tile_field::kLayers) {
      tile.skip();
      continue;
    }
    DecodedLayer layer;
    std::vector<std::vector<uint32_t>> raw_tags;  // resolved once keys and values are known
    protozero::pbf_reader reader = tile.get_message();
    while (reader.next()) {
      switch (reader.tag()) {
        case layer_field::kVersion: layer.version = reader.get_uint32(); break;
        case layer_field::kName: layer.name = std::string{reader.get_view()}; break;
        case layer_field::kKeys: layer.keys.emplace_back(reader.get_view()); break;
        case layer_field::kValues: layer.values.push_back(decode_value(reader.get_message())); break;
        case layer_field::kExtent: layer.extent = reader.get_uint32(); break;
        case layer_field::kFeatures: {
          DecodedFeature feature;
          std::vector<uint32_t> tags;
          protozero::pbf_reader f = reader.get_message();
          while (f.next()) {
            switch (f.tag()) {
              case feature_field::kId: feature.id = f.get_uint64(); break;
              case feature_field::kType:
                feature.type = static_cast<GeomType>(static_cast<uint32_t>(f.get_enum()));
                break;
              case feature_field::kTags:
                for (uint32_t t : f.get_packed_uint32()) tags.push_back(t);
                break;
              case feature_field::kGeometry:
                for (uint32_t g : f.get_packed_uint32()) feature.commands.push_back(g);
                break;
              default: f.skip();
            }
          }
          decode_geometry(feature);
          layer.features.push_back(std::move(feature));
          raw_tags.push_back(std::move(tags));
          break;
        }
        default: reader.skip();
      }
    }
    for (size_t i = 0; i < layer.features.size(); ++i) {
      const auto& tags = raw_tags[i];
      if (tags.size() % 2 != 0) throw MvtDecodeError("mvt tags with an odd length");
      for (size_t t = 0; t < tags.size(); t += 2) {
        if (tags[t] >= layer.keys.size() || tags[t + 1] >= layer.values.size()) {
          throw MvtDecodeError("mvt tag index out of range");
        }
        layer.features[i].properties.emplace_back(layer.keys[tags[t]], layer.values[tags[t + 1]]);
      }
    }
    layers.push_back(std::move(layer));
  }
  return layers;
}

}  // namespace coop::tiles
