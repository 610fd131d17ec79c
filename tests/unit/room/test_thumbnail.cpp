// Media thumbnails: scale keeps the aspect ratio, crop fills the box, garbage and bombs refused.
#include <catch2/catch.hpp>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <vector>

#include "workers/room/thumbnail.h"

using coop::room::make_thumbnail;

namespace {
std::string png(int w, int h) {
  std::vector<unsigned char> pixels(static_cast<std::size_t>(w) * h * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i * 7);
  std::string out;
  stbi_write_png_to_func([](void* c, void* d, int n) { static_cast<std::string*>(c)->append(static_cast<char*>(d), n); },
                         &out, w, h, 3, pixels.data(), w * 3);
  return out;
}

std::pair<int, int> size_of(const std::string& image) {
  int w = 0, h = 0, c = 0;
  REQUIRE(stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(image.data()), static_cast<int>(image.size()), &w, &h, &c));
  return {w, h};
}
}  // namespace

TEST_CASE("scale fits the box and keeps the aspect ratio") {
  const auto thumb = make_thumbnail(png(400, 200), 100, 100, false);
  REQUIRE(thumb);
  CHECK(thumb->content_type == "image/png");
  CHECK(size_of(thumb->bytes) == std::pair{100, 50});
}

TEST_CASE("crop fills the box exactly") {
  const auto thumb = make_thumbnail(png(400, 200), 64, 64, true);
  REQUIRE(thumb);
  CHECK(size_of(thumb->bytes) == std::pair{64, 64});
}

TEST_CASE("small images are never upscaled") {
  const auto thumb = make_thumbnail(png(20, 10), 320, 240, false);
  REQUIRE(thumb);
  CHECK(size_of(thumb->bytes) == std::pair{20, 10});
}

TEST_CASE("what is not an image, or claims too many pixels, gets no thumbnail") {
  CHECK_FALSE(make_thumbnail("not an image at all", 32, 32, false));
  CHECK_FALSE(make_thumbnail("", 32, 32, false));
  auto bomb = png(1, 1);
  // IHDR width and height (big-endian, bytes 16-23): 100000 x 100000 pixels.
  const unsigned char dims[8] = {0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0};
  bomb.replace(16, 8, reinterpret_cast<const char*>(dims), 8);
  CHECK_FALSE(make_thumbnail(bomb, 32, 32, false));
  CHECK_FALSE(make_thumbnail(png(10, 10), 0, 32, false));
}
