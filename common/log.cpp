// spdlog set-up shared by the supervisor and every worker.
#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <mutex>

#include "common/error.h"
#include "common/paths.h"

namespace coop {

namespace {
std::mutex g_mutex;
std::string g_process;
std::string g_file;  // empty in the foreground
spdlog::level::level_enum g_level = spdlog::level::info;

void install(const std::string& process, const std::string& file) {
  std::shared_ptr<spdlog::logger> logger;
  if (file.empty())
    logger = std::make_shared<spdlog::logger>(process, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  else
    logger = std::make_shared<spdlog::logger>(
        process, std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false));
  logger->set_level(g_level);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %n[%P] %l: %v");
  // A crash must not eat the lines that explain it.
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}
}  // namespace

void init_logging(const Home& home, const std::string& process, bool foreground,
                  const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    throw Error(errc::kConfigInvalid, "log.level '" + level + "' is not one of trace, debug, info, warn, error");
  std::lock_guard lock(g_mutex);
  g_level = parsed;
  g_process = process;
  g_file = foreground ? std::string() : home.log_file(process).string();
  install(g_process, g_file);
}

void reopen_log() {
  std::lock_guard lock(g_mutex);
  if (!g_file.empty()) install(g_process, g_file);
}

}  // namespace coop
