// Durable file writes: what is acknowledged must survive a crash (ARCHITECTURE.md "Durability").
#pragma once

#include <filesystem>
#include <string_view>
#include <sys/types.h>

namespace coop {

// Writes content to a temporary file beside path, fsyncs it, renames it over path and
// fsyncs the directory. Throws coop::Error(errc::kIoError) and leaves path untouched on failure.
void write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode);

// Creates path exclusively (fails when it exists), writes and fsyncs it and its directory.
void create_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode);

void fsync_directory(const std::filesystem::path& dir);

}  // namespace coop
