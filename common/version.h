// coop's version, shown by --version and GET /v1/status.
#pragma once

namespace coop {
inline constexpr const char* kVersion = "0.1.0";
}
