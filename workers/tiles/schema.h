// The vector tile schema coop-tiles writes: which OSM objects become which features, in which
// layer, from which zoom. Layer and attribute names follow Shortbread 1.0 (an open, documented
// schema, shortbread-tiles.org); man coop-tiles(1) lists what coop includes.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "workers/tiles/mvt.h"

namespace coop::tiles {

// In drawing order (the sea first, labels last).
enum class Layer : uint8_t {
  kOcean,
  kWaterPolygons,
  kWaterLines,
  kLand,
  kPierPolygons,
  kBuildings,
  kPierLines,
  kBoundaries,
  kFerries,
  kStreets,
  kPublicTransport,
  kAddresses,
  kPlaceLabels,
  kPois
};
constexpr int kLayerCount = 14;

std::string_view layer_name(Layer layer);
// The layer's description and its attributes (name -> "String"/"Number"/"Boolean") for the
// MBTiles `json` metadata's vector_layers.
std::string_view layer_description(Layer layer);
std::vector<std::pair<std::string, std::string>> layer_fields(Layer layer);

// What the OSM object is seen as: a node, a way that is not an area, or an area (closed way or
// multipolygon relation, as assembled by osmium).
enum class Shape : uint8_t { kNode, kLine, kArea };

struct Classified {
  Layer layer;
  int minzoom;            // first zoom the feature appears at
  bool as_point = false;  // an area that the layer wants as a point (a POI on a building)
  Properties properties;
};

// A tag's value, or nullptr when the object does not have it.
using TagGetter = std::function<const char*(const char*)>;

// Classifies an object; nullopt when no layer wants it. An area can also yield a POI point:
// call again with poi_pass = true for that.
std::optional<Classified> classify(Shape shape, const TagGetter& tag, bool poi_pass = false);

// A house number as a point of the addresses layer (a node, or a building's centre), besides
// whatever else the object is; nullopt without addr:housenumber.
std::optional<Classified> classify_address(const TagGetter& tag);

// A way of an administrative boundary relation (boundary=administrative), with the lowest
// admin_level among its relations; nullopt for levels the schema leaves out (above 10).
// maritime: the way runs at sea (maritime=yes, or boundary=maritime on the way).
std::optional<Classified> classify_boundary(int admin_level, bool maritime, bool disputed);

}  // namespace coop::tiles
