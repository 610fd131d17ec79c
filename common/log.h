// Logging: one file per process under log/, or stderr in the foreground (spdlog).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace coop {

class Home;

// Makes spdlog's default logger write to log/<process>.log, or to stderr when
// foreground is set. Level names: trace, debug, info, warn, error.
void init_logging(const Home& home, const std::string& process, bool foreground,
                  const std::string& level);

// Reopens the log file (after logrotate moved it); a no-op in the foreground.
void reopen_log();

}  // namespace coop
