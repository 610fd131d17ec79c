// Unit tests for coop-tiles' Mapbox Vector Tile 2.1 encoder, checked through the decoder.
#include <catch2/catch.hpp>

#include <protozero/varint.hpp>

#include "workers/tiles/mvt.h"

using namespace coop::tiles;

namespace {

const DecodedLayer& only_layer(const std::vector<DecodedLayer>& layers) {
  REQUIRE(layers.size() == 1);
  return layers[0];
}

std::vector<uint32_t> commands_of(const LayerBuilder& layer) {
  const auto layers = decode_tile(encode_tile({layer}));
  const DecodedLayer& decoded = only_layer(layers);
  REQUIRE(decoded.features.size() == 1);
  return decoded.features[0].commands;
}

}  // namespace

TEST_CASE("mvt points round trip with id, properties and layer metadata") {
  LayerBuilder layer("poi", 512);
  layer.add_point({25, 17}, {{"name", std::string("café")}, {"rank", int64_t{-3}}}, 42);
  layer.add_point({-5, 600}, {{"height", 12.5}, {"open", true}, {"rank", int64_t{7}}});
  const auto layers = decode_tile(encode_tile({layer}));
  const DecodedLayer& decoded = only_layer(layers);
  CHECK(decoded.name == "poi");
  CHECK(decoded.version == 2);
  CHECK(decoded.extent == 512);
  REQUIRE(decoded.features.size() == 2);

  const DecodedFeature& first = decoded.features[0];
  CHECK(first.type == GeomType::kPoint);
  CHECK(first.id == std::optional<uint64_t>{42});
  REQUIRE(first.parts.size() == 1);
  CHECK(first.parts[0] == std::vector<Point>{{25, 17}});
  CHECK(first.properties == Properties{{"name", std::string("café")}, {"rank", int64_t{-3}}});

  const DecodedFeature& second = decoded.features[1];
  CHECK_FALSE(second.id);
  CHECK(second.parts[0] == std::vector<Point>{{-5, 600}});
  CHECK(second.properties == Properties{{"height", 12.5}, {"open", true}, {"rank", int64_t{7}}});
  // 4.3.5 point example: MoveTo(1) then zigzag(25), zigzag(17).
  CHECK(first.commands == std::vector<uint32_t>{9, 50, 34});
}

TEST_CASE("mvt line round trip drops repeated points and short lines") {
  LayerBuilder layer("transportation");
  const Line road{{2, 2}, {2, 10}, {2, 10}, {10, 10}};
  const Line dot{{5, 5}, {5, 5}};
  layer.add_line({road, dot, {{1, 1}, {3, 5}}}, {{"class", std::string("primary")}});
  layer.add_line({dot}, {{"class", std::string("none")}});  // nothing drawable: no feature
  const auto layers = decode_tile(encode_tile({layer}));
  const DecodedLayer& decoded = only_layer(layers);
  REQUIRE(decoded.features.size() == 1);
  const DecodedFeature& f = decoded.features[0];
  CHECK(f.type == GeomType::kLineString);
  REQUIRE(f.parts.size() == 2);
  CHECK(f.parts[0] == std::vector<Point>{{2, 2}, {2, 10}, {10, 10}});
  CHECK(f.parts[1] == std::vector<Point>{{1, 1}, {3, 5}});
  // 4.3.5 multi linestring example.
  CHECK(f.commands == std::vector<uint32_t>{9, 4, 4, 18, 0, 16, 16, 0, 9, 17, 17, 10, 4, 8});
}

TEST_CASE("mvt polygon with a hole round trips with MVT winding") {
  LayerBuilder layer("water");
  Polygon lake;
  // Exterior given counter-clockwise on screen, hole clockwise: both must come back fixed.
  lake.outer = {{0, 0}, {0, 100}, {100, 100}, {100, 0}, {0, 0}};
  lake.inners.push_back({{20, 20}, {40, 20}, {40, 40}, {20, 40}, {20, 20}});
  layer.add_polygon({lake}, {{"class", std::string("lake")}}, 7);
  const auto layers = decode_tile(encode_tile({layer}));
  const DecodedLayer& decoded = only_layer(layers);
  REQUIRE(decoded.features.size() == 1);
  const DecodedFeature& f = decoded.features[0];
  CHECK(f.type == GeomType::kPolygon);
  CHECK(f.id == std::optional<uint64_t>{7});
  REQUIRE(f.parts.size() == 2);
  CHECK(f.parts[0].size() == 5);
  CHECK(f.parts[0].front() == f.parts[0].back());
  CHECK(signed_area2(f.parts[0]) == 20000);
  CHECK(signed_area2(f.parts[1]) == -800);
  // ClosePath instead of a repeated first point: MoveTo, LineTo(3), ClosePath per ring.
  CHECK(f.commands[0] == command_integer(kCommandMoveTo, 1));
  CHECK(f.commands[3] == command_integer(kCommandLineTo, 3));
  CHECK(f.commands[10] == command_integer(kCommandClosePath, 1));
  CHECK(f.commands.size() == 22);
}

TEST_CASE("mvt polygon command integers match the spec's 4.3.5 examples") {
  LayerBuilder triangle("t");
  Polygon p;
  p.outer = {{3, 6}, {8, 12}, {20, 34}, {3, 6}};
  triangle.add_polygon({p}, {});
  CHECK(commands_of(triangle) == std::vector<uint32_t>{9, 6, 12, 18, 10, 12, 24, 44, 15});

  LayerBuilder squares("s");
  Polygon first, second;
  first.outer = {{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}};
  second.outer = {{11, 11}, {20, 11}, {20, 20}, {11, 20}, {11, 11}};
  second.inners.push_back({{13, 13}, {13, 17}, {17, 17}, {17, 13}, {13, 13}});
  squares.add_polygon({first, second}, {});
  CHECK(commands_of(squares) == std::vector<uint32_t>{9, 0,  0, 26, 20, 0, 0, 20, 19, 0, 15,
                                                      9, 22, 2, 26, 18, 0, 0, 18, 17, 0, 15,
                                                      9, 4, 13, 26, 0, 8, 8, 0,  0, 7, 15});
}

TEST_CASE("mvt skips degenerate and zero-area rings") {
  LayerBuilder layer("landuse");
  Polygon sliver;
  sliver.outer = {{0, 0}, {5, 5}, {10, 10}, {0, 0}};
  Polygon two_points;
  two_points.outer = {{0, 0}, {5, 5}, {5, 5}, {0, 0}};
  layer.add_polygon({sliver, two_points}, {});
  CHECK(layer.empty());
  CHECK(encode_tile({layer}).empty());
}

TEST_CASE("mvt deduplicates keys and values across a layer") {
  LayerBuilder layer("building");
  const Properties tags{{"kind", std::string("house")}, {"levels", int64_t{2}}};
  layer.add_point({1, 1}, tags);
  layer.add_point({2, 2}, tags);
  layer.add_point({3, 3}, {{"levels", 2.0}, {"kind", std::string("house")}});
  const auto layers = decode_tile(encode_tile({layer}));
  const DecodedLayer& decoded = only_layer(layers);
  CHECK(decoded.keys == std::vector<std::string>{"kind", "levels"});
  // "house", 2 (integer) and 2.0 (double) are distinct values.
  CHECK(decoded.values.size() == 3);
  REQUIRE(decoded.features.size() == 3);
  CHECK(decoded.features[1].properties == tags);
  CHECK(decoded.features[2].properties == Properties{{"levels", 2.0}, {"kind", std::string("house")}});
}

TEST_CASE("mvt zigzag-encodes negative deltas") {
  CHECK(protozero::encode_zigzag32(-1) == 1u);
  CHECK(protozero::encode_zigzag32(1) == 2u);
  CHECK(protozero::encode_zigzag32(-3) == 5u);
  LayerBuilder layer("l");
  layer.add_line({{{10, 10}, {7, 4}, {7, 9}}}, {});
  // MoveTo(10,10): 20, 20; LineTo(2): (-3,-6) -> 5, 11; (0,+5) -> 0, 10.
  CHECK(commands_of(layer) == std::vector<uint32_t>{9, 20, 20, 18, 5, 11, 0, 10});
  LayerBuilder negative("n");
  negative.add_point({-2, -1}, {});
  CHECK(commands_of(negative) == std::vector<uint32_t>{9, 3, 1});
}

TEST_CASE("encode_tile keeps only non-empty layers in order") {
  LayerBuilder a("a"), empty("empty"), b("b");
  a.add_point({1, 1}, {});
  b.add_point({2, 2}, {});
  const auto layers = decode_tile(encode_tile({a, empty, b}));
  REQUIRE(layers.size() == 2);
  CHECK(layers[0].name == "a");
  CHECK(layers[1].name == "b");
}

TEST_CASE("mvt decoder rejects out-of-range tags and truncated geometry") {
  // Tile{layers: Layer{name:"x", features: Feature{tags:[0,0], geometry:[9]}}} with no keys.
  std::string feature = std::string("\x12\x02\x00\x00", 4) + "\x22\x01\x09";
  std::string layer = std::string("\x0a\x01x", 3) + "\x12" + char(feature.size()) + feature;
  std::string tile = "\x1a" + std::string(1, char(layer.size())) + layer;
  CHECK_THROWS_AS(decode_tile(tile), MvtDecodeError);
  CHECK(decode_tile("").empty());
}
