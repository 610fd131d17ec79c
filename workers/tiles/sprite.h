// The map's icon sprite (MapLibre style spec, "Sprite"): one PNG sheet of every icon and a JSON
// index of where each one is, at pixel ratio 1 and 2. The icons are Maki's (Mapbox's CC0 icon
// set, npm @mapbox/maki, SVG), drawn by librsvg in the colour of their kind of place with a
// white halo, as OSM's map draws its POI icons.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::tiles {

// Which Maki icon a POI or public transport kind gets, and in which colour.
struct KindIcon {
  const char* kind;
  const char* icon;
  const char* colour;
};
const std::vector<KindIcon>& kind_icons();
// Icons for a POI whose kind has none of its own, by its category (amenity, shop...).
const std::vector<KindIcon>& category_icons();

// The sprite's image id for an icon in its colour ("cafe_c77400"), and the one-way arrow's.
std::string sprite_id(const KindIcon& icon);
std::string oneway_sprite_id();

struct Sprite {
  std::string json;  // {"cafe": {"x": 0, "y": 0, "width": 19, "height": 19, "pixelRatio": 1}, ...}
  std::string png;
};

// Draws every icon that kind_icons(), category_icons() and the map's own symbols (the one-way
// arrow) name, from icons_dir/<icon>.svg. Icons missing from the directory are left out;
// nullopt when none could be drawn.
std::optional<Sprite> render_sprite(const std::filesystem::path& icons_dir, int pixel_ratio);

}  // namespace coop::tiles
