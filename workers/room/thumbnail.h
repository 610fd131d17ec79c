// Thumbnails of uploaded images (Client-Server API "Thumbnails"), with Debian's stb.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace coop::room {

struct Thumbnail {
  std::string bytes;
  std::string content_type;
};

// method "scale": fits inside width x height keeping the aspect ratio; "crop": fills it
// exactly, cropping the centre. Never upscales. nullopt when the bytes are not an image this
// server can read (PNG, JPEG, GIF, BMP) or are larger than kMaxThumbnailPixels.
std::optional<Thumbnail> make_thumbnail(std::string_view image, int width, int height, bool crop);

// Decoding a huge image to make a small one is a cheap way to exhaust memory: refuse.
inline constexpr long kMaxThumbnailPixels = 40'000'000;

}  // namespace coop::room
