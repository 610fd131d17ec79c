// libFuzzer target: Outlook Autodiscover request bodies, which anyone may POST to coop-dav.
#include <cstdint>
#include <string_view>

#include "workers/dav/autoconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  coop::dav::autodiscover_email(body);
  return 0;
}
