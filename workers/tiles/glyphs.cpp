// SDF glyph ranges. Each glyph is measured at 24 px and rasterized by FreeType at 4x that
// size; the signed distance to its edge, from an exact Euclidean distance transform of the
// large bitmap, is sampled at the centre of every 24 px pixel (plus the 3 px buffer).
#include "workers/tiles/glyphs.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_OUTLINE_H
#include <protozero/pbf_writer.hpp>

#include "workers/tiles/mbtiles.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fs = std::filesystem;

namespace coop::tiles {

namespace {

constexpr int kOversample = 4;
constexpr float kFar = 1e9f;

// One row or column of Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled
// Functions" (2012), section 2.1: the lower envelope of parabolas rooted at each sample.
void transform_1d(const float* f, float* d, int n, int* v, float* z) {
  int k = 0;
  v[0] = 0;
  z[0] = -std::numeric_limits<float>::infinity();
  z[1] = std::numeric_limits<float>::infinity();
  for (int q = 1; q < n; ++q) {
    float s = ((f[q] + static_cast<float>(q) * q) - (f[v[k]] + static_cast<float>(v[k]) * v[k])) /
              (2.0f * static_cast<float>(q - v[k]));
    while (s <= z[k]) {
      --k;
      s = ((f[q] + static_cast<float>(q) * q) - (f[v[k]] + static_cast<float>(v[k]) * v[k])) /
          (2.0f * static_cast<float>(q - v[k]));
    }
    ++k;
    v[k] = q;
    z[k] = s;
    z[k + 1] = std::numeric_limits<float>::infinity();
  }
  k = 0;
  for (int q = 0; q < n; ++q) {
    while (z[k + 1] < static_cast<float>(q)) ++k;
    const float dq = static_cast<float>(q - v[k]);
    d[q] = dq * dq + f[v[k]];
  }
}

// Squared distance from every pixel to the nearest pixel where seed is true.
std::vector<float> squared_distance(const std::vector<bool>& seed, int width, int height) {
  std::vector<float> grid(seed.size());
  for (std::size_t i = 0; i < seed.size(); ++i) grid[i] = seed[i] ? 0.0f : kFar;
  const int n = std::max(width, height);
  std::vector<float> f(n), d(n), z(n + 1);
  std::vector<int> v(n);
  for (int x = 0; x < width; ++x) {
    for (int y = 0; y < height; ++y) f[y] = grid[static_cast<std::size_t>(y) * width + x];
    transform_1d(f.data(), d.data(), height, v.data(), z.data());
    for (int y = 0; y < height; ++y) grid[static_cast<std::size_t>(y) * width + x] = d[y];
  }
  for (int y = 0; y < height; ++y) {
    float* row = grid.data() + static_cast<std::size_t>(y) * width;
    std::copy(row, row + width, f.begin());
    transform_1d(f.data(), d.data(), width, v.data(), z.data());
    std::copy(d.begin(), d.begin() + width, row);
  }
  return grid;
}

struct Library {
  FT_Library handle = nullptr;
  Library() {
    if (FT_Init_FreeType(&handle) != 0) handle = nullptr;
  }
  ~Library() {
    if (handle) FT_Done_FreeType(handle);
  }
};

struct Face {
  FT_Face handle = nullptr;
  Face(FT_Library library, const fs::path& file) {
    if (FT_New_Face(library, file.c_str(), 0, &handle) != 0) handle = nullptr;
  }
  ~Face() {
    if (handle) FT_Done_Face(handle);
  }
};

}  // namespace

std::vector<float> signed_distance(const std::vector<uint8_t>& coverage, int width, int height) {
  std::vector<bool> inside(coverage.size()), outside(coverage.size());
  for (std::size_t i = 0; i < coverage.size(); ++i) {
    inside[i] = coverage[i] >= 128;
    outside[i] = !inside[i];
  }
  const auto to_inside = squared_distance(inside, width, height);
  const auto to_outside = squared_distance(outside, width, height);
  std::vector<float> out(coverage.size());
  // Pixel centres: the edge lies half a pixel beyond the last pixel on either side.
  for (std::size_t i = 0; i < coverage.size(); ++i)
    out[i] = inside[i] ? -(std::sqrt(to_outside[i]) - 0.5f) : std::sqrt(to_inside[i]) - 0.5f;
  return out;
}

GlyphServer::GlyphServer(fs::path fonts_dir) {
  Library library;
  if (!library.handle) return;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(fonts_dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const auto extension = it->path().extension().string();
    if (extension != ".ttf" && extension != ".otf") continue;
    Face face(library.handle, it->path());
    if (!face.handle || !face.handle->family_name) continue;
    std::string name = face.handle->family_name;
    if (face.handle->style_name) name += std::string(" ") + face.handle->style_name;
    files_.emplace(name, it->path());
  }
}

GlyphServer::~GlyphServer() = default;

std::vector<std::string> GlyphServer::fonts() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : files_) names.push_back(name);
  return names;
}

std::optional<std::string> GlyphServer::default_font() const {
  for (const char* preferred : {"DejaVu Sans Book", "Noto Sans Regular", "Open Sans Regular", "Liberation Sans Regular"})
    if (files_.count(preferred)) return std::string(preferred);
  if (files_.empty()) return std::nullopt;
  return files_.begin()->first;
}

std::optional<GlyphRange> GlyphServer::range(const std::string& fontstack, uint32_t start, bool gzipped) {
  if (start % 256 != 0 || start > 65280) return std::nullopt;
  std::string chosen;
  std::size_t pos = 0;
  while (pos <= fontstack.size() && chosen.empty()) {
    auto comma = fontstack.find(',', pos);
    if (comma == std::string::npos) comma = fontstack.size();
    std::string name = fontstack.substr(pos, comma - pos);
    while (!name.empty() && name.front() == ' ') name.erase(name.begin());
    while (!name.empty() && name.back() == ' ') name.pop_back();
    if (files_.count(name)) chosen = name;
    pos = comma + 1;
  }
  if (chosen.empty()) return std::nullopt;
  const auto key = std::pair{chosen, start};
  auto lookup = [&]() -> std::optional<GlyphRange> {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(key);
    if (it == cache_.end()) return std::nullopt;
    return GlyphRange{gzipped ? it->second.gzipped : it->second.pbf, it->second.tag};
  };
  if (auto hit = lookup()) return hit;
  std::lock_guard rendering(render_mutex_);
  if (auto hit = lookup()) return hit;  // rendered while this request waited
  Cached entry;
  entry.pbf = render_range(files_.at(chosen), chosen, start);
  entry.gzipped = gzip(entry.pbf, 9);
  entry.tag = std::to_string(entry.pbf.size()) + "-" + std::to_string(std::hash<std::string>{}(entry.pbf));
  std::lock_guard lock(mutex_);
  while (order_.size() >= 256) {
    cache_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(key);
  const auto& stored = cache_.emplace(key, std::move(entry)).first->second;
  return GlyphRange{gzipped ? stored.gzipped : stored.pbf, stored.tag};
}

std::string GlyphServer::render_range(const fs::path& file, const std::string& name, uint32_t start) {
  std::string out;
  Library library;
  if (!library.handle) return out;
  Face small(library.handle, file), large(library.handle, file);
  if (!small.handle || !large.handle) return out;
  FT_Set_Pixel_Sizes(small.handle, 0, kGlyphSize);
  FT_Set_Pixel_Sizes(large.handle, 0, kGlyphSize * kOversample);
  const double ascender = static_cast<double>(small.handle->size->metrics.ascender) / 64.0;

  {
    protozero::pbf_writer glyphs(out);
    protozero::pbf_writer stack(glyphs, 1);
    stack.add_string(1, name);
    stack.add_string(2, std::to_string(start) + "-" + std::to_string(start + 255));
    for (uint32_t code = start; code <= start + 255; ++code) {
      const FT_UInt index = FT_Get_Char_Index(small.handle, code);
      if (index == 0) continue;
      if (FT_Load_Glyph(small.handle, index, FT_LOAD_NO_HINTING) != 0) continue;
      const FT_GlyphSlot slot = small.handle->glyph;
      const auto advance = static_cast<uint32_t>(std::lround(static_cast<double>(slot->metrics.horiAdvance) / 64.0));
      int left = 0, top = 0, width = 0, height = 0;
      if (slot->format == FT_GLYPH_FORMAT_OUTLINE && slot->outline.n_points > 0) {
        FT_BBox box;
        FT_Outline_Get_CBox(&slot->outline, &box);
        left = static_cast<int>(std::floor(box.xMin / 64.0));
        const int bottom = static_cast<int>(std::floor(box.yMin / 64.0));
        top = static_cast<int>(std::ceil(box.yMax / 64.0));
        width = static_cast<int>(std::ceil(box.xMax / 64.0)) - left;
        height = top - bottom;
      }
      std::string bitmap;
      if (width > 0 && height > 0 && FT_Load_Glyph(large.handle, index, FT_LOAD_NO_HINTING | FT_LOAD_RENDER) == 0) {
        const FT_Bitmap& big = large.handle->glyph->bitmap;
        const int big_left = large.handle->glyph->bitmap_left, big_top = large.handle->glyph->bitmap_top;
        // Pad the large bitmap so distances up to the SDF's radius beyond the buffer are exact.
        const int pad = (kGlyphBuffer + static_cast<int>(kGlyphRadius) + 1) * kOversample;
        const int gw = static_cast<int>(big.width) + 2 * pad, gh = static_cast<int>(big.rows) + 2 * pad;
        std::vector<uint8_t> coverage(static_cast<std::size_t>(gw) * gh, 0);
        for (unsigned r = 0; r < big.rows; ++r)
          for (unsigned c = 0; c < big.width; ++c)
            coverage[static_cast<std::size_t>(r + pad) * gw + c + pad] = big.buffer[r * big.pitch + c];
        const auto distance = signed_distance(coverage, gw, gh);
        const int bw = width + 2 * kGlyphBuffer, bh = height + 2 * kGlyphBuffer;
        bitmap.resize(static_cast<std::size_t>(bw) * bh);
        for (int j = 0; j < bh; ++j) {
          for (int i = 0; i < bw; ++i) {
            // Centre of SDF pixel (i, j) in 24 px glyph space (y up), then in the large grid.
            const double x = left - kGlyphBuffer + i + 0.5, y = top + kGlyphBuffer - j - 0.5;
            const int gx = static_cast<int>(std::floor(x * kOversample - big_left)) + pad;
            const int gy = static_cast<int>(std::floor(big_top - y * kOversample)) + pad;
            double d = kGlyphRadius;  // outside the grid: far outside the glyph
            if (gx >= 0 && gy >= 0 && gx < gw && gy < gh) d = distance[static_cast<std::size_t>(gy) * gw + gx] / kOversample;
            const double value = 255.0 - 255.0 * (d / kGlyphRadius + kGlyphCutoff);
            bitmap[static_cast<std::size_t>(j) * bw + i] = static_cast<char>(std::clamp(std::lround(value), 0L, 255L));
          }
        }
      } else {
        width = height = 0;
      }
      protozero::pbf_writer glyph(stack, 3);
      glyph.add_uint32(1, code);
      if (!bitmap.empty()) glyph.add_bytes(2, bitmap);
      glyph.add_uint32(3, static_cast<uint32_t>(width));
      glyph.add_uint32(4, static_cast<uint32_t>(height));
      glyph.add_sint32(5, left);
      glyph.add_sint32(6, static_cast<int32_t>(std::lround(top - ascender)));
      glyph.add_uint32(7, advance);
    }
  }  // the nested writers finish their length prefixes as they close
  return out;
}

}  // namespace coop::tiles
