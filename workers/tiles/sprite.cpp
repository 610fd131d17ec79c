// The sprite sheet: each icon drawn twice by librsvg, first in white with a wide stroke (the halo
// that keeps it readable on any ground), then in its colour; packed row by row; written as PNG by
// cairo. The JSON index follows the MapLibre style spec's "Sprite" section.
#include "workers/tiles/sprite.h"

#include <cairo.h>
#include <librsvg/rsvg.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <set>
#include <sstream>

namespace coop::tiles {

namespace {

// Colours after openstreetmap-carto's families: food and drink, shops, health, transport,
// leisure, and the brown of everything civic, touristic and historic.
constexpr const char* kFood = "#c77400";
constexpr const char* kShop = "#ac39ac";
constexpr const char* kHealth = "#bf0000";
constexpr const char* kTransport = "#0092da";
constexpr const char* kLeisure = "#0e8517";
constexpr const char* kCivic = "#734a08";
constexpr const char* kOneway = "#6c70d5";

constexpr int kIconSize = 15;  // Maki's viewBox
constexpr int kHalo = 2;       // pixels of white around each icon, at ratio 1

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

struct Drawn {
  std::string id;
  int x, y;
};

}  // namespace

const std::vector<KindIcon>& kind_icons() {
  static const std::vector<KindIcon> table{
      {"restaurant", "restaurant", kFood}, {"cafe", "cafe", kFood}, {"fast_food", "fast-food", kFood},
      {"bar", "bar", kFood}, {"pub", "beer", kFood}, {"biergarten", "beer", kFood}, {"ice_cream", "ice-cream", kFood},
      {"food_court", "restaurant", kFood}, {"nightclub", "nightclub", kFood},
      {"supermarket", "grocery", kShop}, {"convenience", "convenience", kShop}, {"bakery", "bakery", kShop},
      {"clothes", "clothing-store", kShop}, {"shoes", "shoe", kShop}, {"jewelry", "jewelry-store", kShop},
      {"florist", "florist", kShop}, {"hairdresser", "hairdresser", kShop}, {"optician", "optician", kShop},
      {"furniture", "furniture", kShop}, {"hardware", "hardware", kShop}, {"doityourself", "hardware", kShop},
      {"gift", "gift", kShop}, {"alcohol", "alcohol-shop", kShop}, {"wine", "alcohol-shop", kShop},
      {"confectionery", "confectionery", kShop}, {"mobile_phone", "mobile-phone", kShop},
      {"laundry", "laundry", kShop}, {"dry_cleaning", "laundry", kShop}, {"car_repair", "car-repair", kShop},
      {"garden_centre", "garden-centre", kShop}, {"watches", "watch", kShop},
      {"pharmacy", "pharmacy", kHealth}, {"hospital", "hospital", kHealth}, {"clinic", "doctor", kHealth},
      {"doctors", "doctor", kHealth}, {"dentist", "dentist", kHealth}, {"veterinary", "veterinary", kHealth},
      {"defibrillator", "defibrillator", kHealth},
      {"station", "rail", kTransport}, {"halt", "rail", kTransport}, {"tram_stop", "rail-light", kTransport},
      {"subway_entrance", "rail-metro", kTransport}, {"bus_stop", "bus", kTransport},
      {"bus_station", "bus", kTransport}, {"ferry_terminal", "ferry", kTransport},
      {"aerodrome", "airport", kTransport}, {"helipad", "heliport", kTransport}, {"heliport", "heliport", kTransport},
      {"parking", "parking", kTransport}, {"bicycle_parking", "bicycle", kTransport},
      {"bicycle_rental", "bicycle-share", kTransport}, {"car_rental", "car-rental", kTransport},
      {"car_sharing", "car", kTransport}, {"taxi", "taxi", kTransport}, {"fuel", "fuel", kTransport},
      {"charging_station", "charging-station", kTransport}, {"marina", "harbor", kTransport},
      {"slipway", "slipway", kTransport},
      {"bank", "bank", kCivic}, {"atm", "bank", kCivic}, {"post_office", "post", kCivic},
      {"post_box", "post", kCivic}, {"police", "police", kCivic}, {"fire_station", "fire-station", kCivic},
      {"townhall", "town-hall", kCivic}, {"courthouse", "town-hall", kCivic}, {"library", "library", kCivic},
      {"school", "school", kCivic}, {"kindergarten", "school", kCivic}, {"college", "college", kCivic},
      {"university", "college", kCivic}, {"place_of_worship", "place-of-worship", kCivic},
      {"toilets", "toilet", kCivic}, {"drinking_water", "drinking-water", kCivic},
      {"recycling", "recycling", kCivic}, {"embassy", "embassy", kCivic}, {"prison", "prison", kCivic},
      {"shelter", "shelter", kCivic}, {"telephone", "telephone", kCivic}, {"waste_basket", "waste-basket", kCivic},
      {"museum", "museum", kCivic}, {"attraction", "attraction", kCivic}, {"viewpoint", "viewpoint", kCivic},
      {"hotel", "lodging", kCivic}, {"hostel", "lodging", kCivic}, {"guest_house", "lodging", kCivic},
      {"information", "information", kCivic}, {"artwork", "art-gallery", kCivic}, {"gallery", "art-gallery", kCivic},
      {"theatre", "theatre", kCivic}, {"cinema", "cinema", kCivic}, {"arts_centre", "theatre", kCivic},
      {"casino", "casino", kCivic}, {"zoo", "zoo", kCivic}, {"aquarium", "aquarium", kCivic},
      {"picnic_site", "picnic-site", kCivic}, {"camp_site", "campsite", kCivic},
      {"monument", "monument", kCivic}, {"memorial", "monument", kCivic}, {"castle", "castle", kCivic},
      {"ruins", "historic", kCivic}, {"lighthouse", "lighthouse", kCivic},
      {"playground", "playground", kLeisure}, {"park", "park", kLeisure}, {"garden", "garden", kLeisure},
      {"sports_centre", "fitness-centre", kLeisure}, {"fitness_centre", "fitness-centre", kLeisure},
      {"swimming_pool", "swimming", kLeisure}, {"stadium", "stadium", kLeisure}, {"pitch", "pitch", kLeisure},
      {"dog_park", "dog-park", kLeisure}, {"golf_course", "golf", kLeisure},
  };
  return table;
}

const std::vector<KindIcon>& category_icons() {
  static const std::vector<KindIcon> table{
      {"amenity", "circle", kCivic},     {"shop", "shop", kShop},          {"tourism", "attraction", kCivic},
      {"leisure", "circle", kLeisure},   {"historic", "historic", kCivic}, {"office", "suitcase", kCivic},
      {"craft", "paint", kCivic},        {"emergency", "emergency-phone", kHealth},
  };
  return table;
}

std::string sprite_id(const KindIcon& icon) { return std::string(icon.icon) + "_" + std::string(icon.colour + 1); }
std::string oneway_sprite_id() { return std::string("arrow_") + (kOneway + 1); }

std::optional<Sprite> render_sprite(const std::filesystem::path& icons_dir, int pixel_ratio) {
  // Every (icon, colour) once, in a stable order.
  std::set<std::pair<std::string, std::string>> wanted;
  for (const auto* table : {&kind_icons(), &category_icons()})
    for (const auto& k : *table) wanted.emplace(k.icon, k.colour);
  wanted.emplace("arrow", kOneway);

  const int cell = (kIconSize + 2 * kHalo) * pixel_ratio;
  constexpr int kPerRow = 16;
  const int rows = static_cast<int>((wanted.size() + kPerRow - 1) / kPerRow);
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_ARGB32, cell * kPerRow, cell * rows), cairo_surface_destroy);
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr(cairo_create(surface.get()), cairo_destroy);
  nlohmann::json index = nlohmann::json::object();
  int n = 0;
  for (const auto& [icon, colour] : wanted) {
    const std::string svg = read_file(icons_dir / (icon + ".svg"));
    if (svg.empty()) continue;
    const int x = (n % kPerRow) * cell, y = (n / kPerRow) * cell;
    bool drawn = true;
    // The halo: the shape in white, stroked wide; then the shape in its colour.
    for (const auto& css : {"* { fill: #ffffff !important; stroke: #ffffff !important; stroke-width: " +
                                      std::to_string(kHalo * 2 * kIconSize / 15.0) + "px !important; }",
                                  std::string("* { fill: ") + colour + " !important; stroke: none !important; }"}) {
      GError* error = nullptr;
      RsvgHandle* handle = rsvg_handle_new_from_data(reinterpret_cast<const guint8*>(svg.data()), svg.size(), &error);
      if (!handle) {
        if (error) g_error_free(error);
        drawn = false;
        break;
      }
      rsvg_handle_set_stylesheet(handle, reinterpret_cast<const guint8*>(css.data()), css.size(), nullptr);
      const RsvgRectangle viewport{static_cast<double>(x + kHalo * pixel_ratio), static_cast<double>(y + kHalo * pixel_ratio),
                                   static_cast<double>(kIconSize * pixel_ratio),
                                   static_cast<double>(kIconSize * pixel_ratio)};
      if (!rsvg_handle_render_document(handle, cr.get(), &viewport, &error)) {
        if (error) g_error_free(error);
        drawn = false;
      }
      g_object_unref(handle);
      if (!drawn) break;
    }
    if (!drawn) continue;
    index[icon + "_" + colour.substr(1)] = {{"x", x}, {"y", y}, {"width", cell}, {"height", cell}, {"pixelRatio", pixel_ratio}};
    ++n;
  }
  if (n == 0) return std::nullopt;
  cairo_surface_flush(surface.get());
  Sprite sprite;
  sprite.json = index.dump();
  cairo_surface_write_to_png_stream(
      surface.get(),
      [](void* closure, const unsigned char* data, unsigned int length) {
        static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
        return CAIRO_STATUS_SUCCESS;
      },
      &sprite.png);
  return sprite;
}

}  // namespace coop::tiles
