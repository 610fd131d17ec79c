// libFuzzer target: Mapbox Vector Tile bytes, as a cached or uploaded tile would reach the
// decoder. Whatever decodes must encode again without fault.
#include <cstdint>
#include <string_view>

#include <protozero/exception.hpp>

#include "workers/tiles/mvt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<coop::tiles::DecodedLayer> layers;
  try {
    layers = coop::tiles::decode_tile(input);
  } catch (const coop::tiles::MvtDecodeError&) {
    return 0;
  } catch (const protozero::exception&) {
    return 0;
  }
  std::vector<coop::tiles::LayerBuilder> builders;
  for (const auto& layer : layers) {
    auto& builder = builders.emplace_back(layer.name, layer.extent);
    for (const auto& feature : layer.features) {
      if (feature.type == coop::tiles::GeomType::kPoint) {
        for (const auto& part : feature.parts) {
          for (const auto& point : part) builder.add_point(point, feature.properties, feature.id);
        }
      } else if (feature.type == coop::tiles::GeomType::kLineString) {
        builder.add_line(feature.parts, feature.properties, feature.id);
      }
    }
  }
  coop::tiles::encode_tile(builders);
  return 0;
}
