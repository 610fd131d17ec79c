// Image decoding, scaling and encoding for media thumbnails.
#include "workers/room/thumbnail.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace coop::room {

std::optional<Thumbnail> make_thumbnail(std::string_view image, int width, int height, bool crop) {
  if (width < 1 || height < 1 || width > 2048 || height > 2048) return std::nullopt;
  const auto* data = reinterpret_cast<const stbi_uc*>(image.data());
  const int length = static_cast<int>(std::min<std::size_t>(image.size(), 1u << 30));
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(data, length, &w, &h, &channels)) return std::nullopt;
  if (w < 1 || h < 1 || static_cast<long>(w) * h > kMaxThumbnailPixels) return std::nullopt;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, length, &w, &h, &channels, 4),
                                                   stbi_image_free);
  if (!pixels) return std::nullopt;

  // The source rectangle (all of it, or the centre for crop) and the output size.
  int src_x = 0, src_y = 0, src_w = w, src_h = h, out_w = 0, out_h = 0;
  if (crop) {
    const double scale = std::max(static_cast<double>(width) / w, static_cast<double>(height) / h);
    out_w = std::min(width, w);
    out_h = std::min(height, h);
    if (scale < 1.0) {
      src_w = std::min(w, static_cast<int>(width / scale));
      src_h = std::min(h, static_cast<int>(height / scale));
    } else {
      src_w = out_w;
      src_h = out_h;
    }
    src_x = (w - src_w) / 2;
    src_y = (h - src_h) / 2;
  } else {
    const double scale = std::min({1.0, static_cast<double>(width) / w, static_cast<double>(height) / h});
    out_w = std::max(1, static_cast<int>(w * scale));
    out_h = std::max(1, static_cast<int>(h * scale));
  }
  std::vector<unsigned char> out(static_cast<std::size_t>(out_w) * out_h * 4);
  const unsigned char* origin = pixels.get() + (static_cast<std::size_t>(src_y) * w + src_x) * 4;
  if (!stbir_resize_uint8(origin, src_w, src_h, w * 4, out.data(), out_w, out_h, out_w * 4, 4)) return std::nullopt;

  Thumbnail thumbnail;
  thumbnail.content_type = "image/png";
  auto sink = [](void* context, void* bytes, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(bytes), static_cast<std::size_t>(size));
  };
  if (!stbi_write_png_to_func(sink, &thumbnail.bytes, out_w, out_h, 4, out.data(), out_w * 4)) return std::nullopt;
  return thumbnail;
}

}  // namespace coop::room
