// The OSM-to-layer rules. Zooms follow Shortbread 1.0's layer tables where it has one, rounded
// to what a small extract needs; anything not listed here is left out of the tiles.
#include "workers/tiles/schema.h"

#include <array>
#include <cstdlib>
#include <cstring>

namespace coop::tiles {

namespace {

struct KindZoom {
  const char* kind;
  int minzoom;
};

template <std::size_t N>
std::optional<int> zoom_of(const std::array<KindZoom, N>& table, const char* value) {
  if (!value) return std::nullopt;
  for (const auto& entry : table)
    if (std::strcmp(entry.kind, value) == 0) return entry.minzoom;
  return std::nullopt;
}

bool is_yes(const char* value) {
  return value && (std::strcmp(value, "yes") == 0 || std::strcmp(value, "true") == 0 || std::strcmp(value, "1") == 0);
}

void add_name(Properties& properties, const TagGetter& tag) {
  if (const char* name = tag("name"); name && *name) properties.emplace_back("name", std::string(name));
}

constexpr std::array kWaterAreas{KindZoom{"water", 4}, KindZoom{"reservoir", 4}, KindZoom{"basin", 10},
                                 KindZoom{"riverbank", 4}, KindZoom{"dock", 10}};
constexpr std::array kWaterways{KindZoom{"river", 9}, KindZoom{"canal", 9}, KindZoom{"stream", 13},
                                KindZoom{"ditch", 14}, KindZoom{"drain", 14}};
constexpr std::array kLanduse{KindZoom{"forest", 7},       KindZoom{"residential", 10}, KindZoom{"commercial", 10},
                              KindZoom{"industrial", 10},  KindZoom{"retail", 10},      KindZoom{"farmland", 10},
                              KindZoom{"meadow", 10},      KindZoom{"grass", 11},       KindZoom{"cemetery", 11},
                              KindZoom{"allotments", 11},  KindZoom{"railway", 11},     KindZoom{"military", 10},
                              KindZoom{"brownfield", 11},  KindZoom{"greenfield", 11},  KindZoom{"construction", 11},
                              KindZoom{"recreation_ground", 11}, KindZoom{"village_green", 11},
                              KindZoom{"orchard", 10},     KindZoom{"vineyard", 10},    KindZoom{"quarry", 11},
                              KindZoom{"landfill", 11}};
constexpr std::array kLeisureLand{KindZoom{"park", 10},       KindZoom{"garden", 12},     KindZoom{"playground", 13},
                                  KindZoom{"pitch", 13},      KindZoom{"golf_course", 10}, KindZoom{"nature_reserve", 8},
                                  KindZoom{"sports_centre", 12}, KindZoom{"stadium", 12}, KindZoom{"dog_park", 13}};
constexpr std::array kNaturalLand{KindZoom{"wood", 7},   KindZoom{"scrub", 10},    KindZoom{"heath", 10},
                                  KindZoom{"grassland", 10}, KindZoom{"bare_rock", 10}, KindZoom{"sand", 10},
                                  KindZoom{"beach", 10}, KindZoom{"wetland", 10},  KindZoom{"scree", 10}};
constexpr std::array kHighways{KindZoom{"motorway", 5},      KindZoom{"trunk", 6},           KindZoom{"primary", 8},
                               KindZoom{"secondary", 9},     KindZoom{"tertiary", 10},       KindZoom{"unclassified", 11},
                               KindZoom{"residential", 12},  KindZoom{"living_street", 12},  KindZoom{"pedestrian", 12},
                               KindZoom{"road", 12},         KindZoom{"service", 13},        KindZoom{"track", 13},
                               KindZoom{"footway", 13},      KindZoom{"path", 13},           KindZoom{"cycleway", 13},
                               KindZoom{"bridleway", 13},    KindZoom{"steps", 13},          KindZoom{"busway", 12}};
constexpr std::array kLinks{KindZoom{"motorway_link", 10}, KindZoom{"trunk_link", 10}, KindZoom{"primary_link", 11},
                            KindZoom{"secondary_link", 11}, KindZoom{"tertiary_link", 12}};
constexpr std::array kRailways{KindZoom{"rail", 8},          KindZoom{"light_rail", 11}, KindZoom{"subway", 11},
                               KindZoom{"tram", 11},         KindZoom{"narrow_gauge", 11}, KindZoom{"funicular", 11},
                               KindZoom{"monorail", 11}};
constexpr std::array kPlaces{KindZoom{"city", 4},     KindZoom{"town", 7},          KindZoom{"village", 10},
                             KindZoom{"suburb", 11},  KindZoom{"hamlet", 12},       KindZoom{"quarter", 12},
                             KindZoom{"neighbourhood", 13}, KindZoom{"island", 12}, KindZoom{"islet", 14},
                             KindZoom{"locality", 14}, KindZoom{"isolated_dwelling", 14}, KindZoom{"square", 14}};
constexpr std::array kAeroways{KindZoom{"runway", 11}, KindZoom{"taxiway", 13}};
constexpr std::array kAeroAreas{KindZoom{"aerodrome", 10}, KindZoom{"apron", 12}, KindZoom{"heliport", 12},
                                KindZoom{"helipad", 14}};
constexpr std::array kPiers{KindZoom{"pier", 12}, KindZoom{"breakwater", 12}, KindZoom{"groyne", 13}};
constexpr std::array kPoiKeys{"amenity", "shop", "tourism", "leisure", "historic", "office", "craft", "emergency"};
// Worth a point without a name.
constexpr std::array kUnnamedPois{"toilets", "drinking_water", "atm", "parking", "bicycle_parking", "post_box",
                                  "recycling", "charging_station", "defibrillator", "bicycle_rental", "pharmacy"};

// Shortbread's public_transport kinds, by the tag that says so.
std::optional<Classified> classify_public_transport(const TagGetter& tag, bool from_area) {
  std::optional<std::string> kind;
  int minzoom = 14;
  const char* railway = tag("railway");
  const char* highway = tag("highway");
  const char* amenity = tag("amenity");
  const char* aeroway = tag("aeroway");
  if (railway && (!std::strcmp(railway, "station") || !std::strcmp(railway, "halt"))) {
    kind = railway, minzoom = 13;
  } else if (railway && !std::strcmp(railway, "tram_stop")) {
    kind = railway, minzoom = 15;
  } else if (highway && !std::strcmp(highway, "bus_stop") && !from_area) {
    kind = highway, minzoom = 15;
  } else if (amenity && (!std::strcmp(amenity, "bus_station") || !std::strcmp(amenity, "ferry_terminal"))) {
    kind = amenity, minzoom = 13;
  } else if (aeroway && (!std::strcmp(aeroway, "aerodrome") || !std::strcmp(aeroway, "helipad") ||
                         !std::strcmp(aeroway, "heliport"))) {
    kind = aeroway, minzoom = !std::strcmp(aeroway, "aerodrome") ? 10 : 13;
  }
  if (!kind) return std::nullopt;
  Classified c{Layer::kPublicTransport, minzoom, from_area, {}};
  c.properties.emplace_back("kind", *kind);
  add_name(c.properties, tag);
  return c;
}

// tunnel=yes, a building passage or covered=yes are drawn as tunnels (dimmed).
bool is_tunnel(const TagGetter& tag) {
  const char* tunnel = tag("tunnel");
  return is_yes(tunnel) || (tunnel && !std::strcmp(tunnel, "building_passage")) || is_yes(tag("covered"));
}

std::optional<Classified> classify_street(const TagGetter& tag) {
  Classified c{Layer::kStreets, 0, false, {}};
  if (auto z = zoom_of(kAeroways, tag("aeroway")); z && !tag("highway")) {
    c.minzoom = *z;
    c.properties.emplace_back("kind", std::string(tag("aeroway")));
  } else if (const char* highway = tag("highway")) {
    if (is_yes(tag("area"))) return std::nullopt;
    if (auto z = zoom_of(kHighways, highway)) {
      c.minzoom = *z;
      c.properties.emplace_back("kind", std::string(highway));
    } else if (auto link = zoom_of(kLinks, highway)) {
      c.minzoom = *link;
      std::string kind(highway);
      c.properties.emplace_back("kind", kind.substr(0, kind.size() - 5));
      c.properties.emplace_back("link", true);
    } else {
      return std::nullopt;
    }
  } else if (const char* railway = tag("railway")) {
    auto z = zoom_of(kRailways, railway);
    if (!z) return std::nullopt;
    c.minzoom = *z;
    c.properties.emplace_back("kind", std::string(railway));
    c.properties.emplace_back("rail", true);
  } else {
    return std::nullopt;
  }
  add_name(c.properties, tag);
  if (const char* ref = tag("ref"); ref && *ref) c.properties.emplace_back("ref", std::string(ref));
  if (is_tunnel(tag)) c.properties.emplace_back("tunnel", true);
  if (const char* bridge = tag("bridge"); bridge && *bridge && std::strcmp(bridge, "no") != 0)
    c.properties.emplace_back("bridge", true);
  // Shortbread: oneway=-1 is a one-way street drawn against the way's direction.
  if (const char* oneway = tag("oneway"); is_yes(oneway)) {
    c.properties.emplace_back("oneway", true);
  } else if (oneway && !std::strcmp(oneway, "-1")) {
    c.properties.emplace_back("oneway", true);
    c.properties.emplace_back("oneway_reverse", true);
  }
  return c;
}

std::optional<Classified> classify_area(const TagGetter& tag) {
  const char* natural = tag("natural");
  const char* landuse = tag("landuse");
  const char* waterway = tag("waterway");
  if (natural && std::strcmp(natural, "water") == 0) {
    const char* water = tag("water");
    Classified c{Layer::kWaterPolygons, 4, false, {}};
    c.properties.emplace_back("kind", std::string(water && std::strcmp(water, "river") == 0 ? "river" : "water"));
    add_name(c.properties, tag);
    return c;
  }
  for (const char* value : {landuse, waterway}) {
    if (auto z = zoom_of(kWaterAreas, value)) {
      Classified c{Layer::kWaterPolygons, *z, false, {}};
      c.properties.emplace_back("kind", std::string(std::strcmp(value, "riverbank") == 0 ? "river" : value));
      add_name(c.properties, tag);
      return c;
    }
  }
  if (auto z = zoom_of(kPiers, tag("man_made"))) {
    Classified c{Layer::kPierPolygons, *z, false, {}};
    c.properties.emplace_back("kind", std::string(tag("man_made")));
    return c;
  }
  if (const char* building = tag("building"); building && std::strcmp(building, "no") != 0) {
    return Classified{Layer::kBuildings, 13, false, {}};
  }
  if (auto z = zoom_of(kAeroAreas, tag("aeroway"))) {
    Classified c{Layer::kLand, *z, false, {}};
    c.properties.emplace_back("kind", std::string(tag("aeroway")));
    add_name(c.properties, tag);
    return c;
  }
  const char* leisure = tag("leisure");
  for (auto [value, zoom] : {std::pair{leisure, zoom_of(kLeisureLand, leisure)},
                             std::pair{landuse, zoom_of(kLanduse, landuse)},
                             std::pair{natural, zoom_of(kNaturalLand, natural)}}) {
    if (!zoom) continue;
    Classified c{Layer::kLand, *zoom, false, {}};
    c.properties.emplace_back("kind", std::string(value));
    add_name(c.properties, tag);
    return c;
  }
  return std::nullopt;
}

std::optional<Classified> classify_poi(const TagGetter& tag, bool from_area) {
  for (const char* key : kPoiKeys) {
    const char* value = tag(key);
    if (!value || !*value || std::strcmp(value, "no") == 0) continue;
    const char* name = tag("name");
    bool named = name && *name;
    bool useful = false;
    for (const char* kind : kUnnamedPois) useful = useful || std::strcmp(kind, value) == 0;
    // Parks and pitches are drawn as land; only their names would make them points.
    if (std::strcmp(key, "leisure") == 0 && !named) return std::nullopt;
    if (!named && (!useful || from_area)) return std::nullopt;
    Classified c{Layer::kPois, 14, from_area, {}};
    c.properties.emplace_back("category", std::string(key));
    c.properties.emplace_back("kind", std::string(value));
    add_name(c.properties, tag);
    if (const char* number = tag("addr:housenumber"); number && *number)
      c.properties.emplace_back("housenumber", std::string(number));
    return c;
  }
  return std::nullopt;
}

}  // namespace

std::string_view layer_name(Layer layer) {
  switch (layer) {
    case Layer::kOcean: return "ocean";
    case Layer::kPierPolygons: return "pier_polygons";
    case Layer::kPierLines: return "pier_lines";
    case Layer::kBoundaries: return "boundaries";
    case Layer::kFerries: return "ferries";
    case Layer::kPublicTransport: return "public_transport";
    case Layer::kAddresses: return "addresses";
    case Layer::kWaterPolygons: return "water_polygons";
    case Layer::kWaterLines: return "water_lines";
    case Layer::kLand: return "land";
    case Layer::kBuildings: return "buildings";
    case Layer::kStreets: return "streets";
    case Layer::kPlaceLabels: return "place_labels";
    case Layer::kPois: return "pois";
  }
  return "unknown";
}

std::string_view layer_description(Layer layer) {
  switch (layer) {
    case Layer::kOcean: return "The sea, assembled from the coastline (natural=coastline) and clipped to the extract";
    case Layer::kPierPolygons: return "Piers, breakwaters and groynes drawn as areas (man_made=pier|breakwater|groyne)";
    case Layer::kPierLines: return "Piers, breakwaters and groynes drawn as lines (man_made=pier|breakwater|groyne)";
    case Layer::kBoundaries: return "Administrative boundaries from boundary=administrative relations, admin_level 2 to 10";
    case Layer::kFerries: return "Ferry routes (route=ferry)";
    case Layer::kPublicTransport: return "Stations, halts, tram and bus stops, ferry terminals, aerodromes and helipads";
    case Layer::kAddresses: return "House numbers (addr:housenumber) of address nodes and buildings";
    case Layer::kWaterPolygons: return "Lakes, reservoirs, basins and river areas (natural=water, landuse=reservoir|basin, waterway=riverbank|dock)";
    case Layer::kWaterLines: return "Rivers, canals, streams and ditches (waterway=*)";
    case Layer::kLand: return "Land use and land cover: parks, woods, residential and other areas (landuse, leisure, natural)";
    case Layer::kBuildings: return "Building outlines (building=*)";
    case Layer::kStreets: return "Roads, paths, railways, runways and taxiways with their names (highway=*, railway=*, aeroway=runway|taxiway)";
    case Layer::kPlaceLabels: return "Named places: cities, towns, villages, suburbs (place=*)";
    case Layer::kPois: return "Points of interest: amenities, shops, tourism and more";
  }
  return "";
}

std::vector<std::pair<std::string, std::string>> layer_fields(Layer layer) {
  switch (layer) {
    case Layer::kOcean: return {};
    case Layer::kPierPolygons:
    case Layer::kPierLines: return {{"kind", "String"}};
    case Layer::kBoundaries:
      return {{"admin_level", "Number"}, {"maritime", "Boolean"}, {"disputed", "Boolean"}};
    case Layer::kFerries:
    case Layer::kPublicTransport: return {{"kind", "String"}, {"name", "String"}};
    case Layer::kAddresses: return {{"housenumber", "String"}, {"name", "String"}};
    case Layer::kWaterPolygons:
    case Layer::kWaterLines:
    case Layer::kLand: return {{"kind", "String"}, {"name", "String"}};
    case Layer::kBuildings: return {};
    case Layer::kStreets:
      return {{"kind", "String"},     {"name", "String"},   {"ref", "String"},
              {"link", "Boolean"},    {"rail", "Boolean"},  {"tunnel", "Boolean"},
              {"bridge", "Boolean"},  {"oneway", "Boolean"}, {"oneway_reverse", "Boolean"}};
    case Layer::kPlaceLabels: return {{"kind", "String"}, {"name", "String"}, {"population", "Number"}};
    case Layer::kPois:
      return {{"category", "String"}, {"kind", "String"}, {"name", "String"}, {"housenumber", "String"}};
  }
  return {};
}

std::optional<Classified> classify(Shape shape, const TagGetter& tag, bool poi_pass) {
  switch (shape) {
    case Shape::kNode: {
      if (const char* place = tag("place")) {
        const char* name = tag("name");
        auto z = zoom_of(kPlaces, place);
        if (!z || !name || !*name) return std::nullopt;
        Classified c{Layer::kPlaceLabels, *z, false, {}};
        c.properties.emplace_back("kind", std::string(place));
        add_name(c.properties, tag);
        if (const char* population = tag("population")) {
          char* end = nullptr;
          const long long value = std::strtoll(population, &end, 10);
          if (end != population && *end == '\0' && value >= 0) c.properties.emplace_back("population", int64_t{value});
        }
        return c;
      }
      if (auto transport = classify_public_transport(tag, false)) return transport;
      return classify_poi(tag, false);
    }
    case Shape::kLine: {
      if (const char* route = tag("route"); route && !std::strcmp(route, "ferry")) {
        Classified c{Layer::kFerries, 10, false, {}};
        c.properties.emplace_back("kind", std::string("ferry"));
        add_name(c.properties, tag);
        return c;
      }
      if (auto z = zoom_of(kPiers, tag("man_made"))) {
        Classified c{Layer::kPierLines, *z, false, {}};
        c.properties.emplace_back("kind", std::string(tag("man_made")));
        return c;
      }
      if (auto z = zoom_of(kWaterways, tag("waterway"))) {
        Classified c{Layer::kWaterLines, *z, false, {}};
        c.properties.emplace_back("kind", std::string(tag("waterway")));
        add_name(c.properties, tag);
        return c;
      }
      return classify_street(tag);
    }
    case Shape::kArea: {
      if (!poi_pass) return classify_area(tag);
      if (auto transport = classify_public_transport(tag, true)) return transport;
      return classify_poi(tag, true);
    }
  }
  return std::nullopt;
}

std::optional<Classified> classify_address(const TagGetter& tag) {
  const char* number = tag("addr:housenumber");
  if (!number || !*number) return std::nullopt;
  Classified c{Layer::kAddresses, 14, true, {}};
  c.properties.emplace_back("housenumber", std::string(number));
  if (const char* name = tag("addr:housename"); name && *name) c.properties.emplace_back("name", std::string(name));
  return c;
}

std::optional<Classified> classify_boundary(int admin_level, bool maritime, bool disputed) {
  if (admin_level < 1 || admin_level > 10) return std::nullopt;
  // Shortbread draws level 2 from zoom 0 and level 4 from 7; the finer levels follow on.
  const int minzoom = admin_level <= 2 ? 0 : admin_level <= 4 ? 7 : admin_level <= 6 ? 9 : admin_level <= 8 ? 11 : 13;
  Classified c{Layer::kBoundaries, minzoom, false, {}};
  c.properties.emplace_back("admin_level", int64_t{admin_level});
  if (maritime) c.properties.emplace_back("maritime", true);
  if (disputed) c.properties.emplace_back("disputed", true);
  return c;
}

}  // namespace coop::tiles
