// Font glyphs for map labels, in the signed-distance-field PBF ranges MapLibre GL asks for at
// `glyphs` URLs ({fontstack}/{range}.pbf, 256 code points each), rendered on this machine from
// the system's TrueType fonts with FreeType, so the map page needs no font server elsewhere.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace coop::tiles {

// Glyph PBF layout (MapLibre GL's glyphs.proto): glyphs { repeated fontstack stacks = 1 },
// fontstack { name = 1, range = 2, repeated glyph glyphs = 3 }, glyph { id = 1, bitmap = 2,
// width = 3, height = 4, left = 5 (sint), top = 6 (sint, from the ascender), advance = 7 }.
// Bitmaps are SDFs of a 24 px rendering with a 3 px buffer, 8 px radius and 0.25 cutoff.
constexpr int kGlyphSize = 24;
constexpr int kGlyphBuffer = 3;
constexpr double kGlyphRadius = 8.0;
constexpr double kGlyphCutoff = 0.25;

struct GlyphRange {
  std::string bytes;  // the PBF, or its gzip
  std::string tag;    // names the range's content (an ETag without quotes)
};

class GlyphServer {
 public:
  // Indexes the .ttf/.otf files under fonts_dir by "family style" ("DejaVu Sans Book").
  explicit GlyphServer(std::filesystem::path fonts_dir);
  ~GlyphServer();
  GlyphServer(const GlyphServer&) = delete;
  GlyphServer& operator=(const GlyphServer&) = delete;

  // The fonts found, by name.
  std::vector<std::string> fonts() const;
  // The name to put in styles' text-font: the first of preferred that exists, else any.
  std::optional<std::string> default_font() const;

  // The PBF for code points [start, start + 255] of the first font of fontstack (a comma
  // list, as MapLibre sends it) that exists, gzip'd when asked; nullopt when none does or
  // start is not a multiple of 256 below 65536. Rendering takes tens of milliseconds: call
  // it off the event loop. One rendering per range at a time; the last 256 stay cached.
  std::optional<GlyphRange> range(const std::string& fontstack, uint32_t start, bool gzipped = false);

 private:
  std::string render_range(const std::filesystem::path& file, const std::string& name, uint32_t start);

  struct Cached {
    std::string pbf, gzipped, tag;
  };
  std::map<std::string, std::filesystem::path> files_;
  std::mutex render_mutex_;  // held while rendering, so a range is never rendered twice at once
  std::mutex mutex_;         // the cache
  std::map<std::pair<std::string, uint32_t>, Cached> cache_;
  std::deque<std::pair<std::string, uint32_t>> order_;  // oldest first, for eviction
};

// Signed distance field of a coverage bitmap (1 byte per pixel, 0-255, row-major): for every
// pixel of the grid the distance, in pixels, to the shape's edge, negative inside. Exact
// Euclidean distances (Felzenszwalb and Huttenlocher's two-pass transform).
std::vector<float> signed_distance(const std::vector<uint8_t>& coverage, int width, int height);

}  // namespace coop::tiles
