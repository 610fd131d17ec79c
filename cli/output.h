// Output for people (aligned tables, colour on a terminal) and for scripts (--json).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace coop::cli {

bool stdout_is_terminal();
bool stderr_is_terminal();

// Wraps text in an ANSI colour when stdout is a terminal and NO_COLOR is unset.
enum class Colour { none, green, yellow, red, dim };
std::string paint(const std::string& text, Colour colour);
Colour state_colour(const std::string& state);

// The wall clock in Unix seconds (certificate and backup ages).
int64_t unix_now();
// "2026-12-06 18:07 UTC"
std::string utc_time_text(int64_t unix_seconds);
// The same from the RFC 3339 time every --json carries ("2026-12-06T18:07:00Z").
std::string utc_time_text(const std::string& iso8601);

// "512 B", "3.4 KiB", "12.0 MiB", "1.2 GiB" (powers of 1024).
std::string format_bytes(uint64_t bytes);

// "3s", "4m12s", "2h05m", "3d04h".
std::string format_duration(double seconds);

class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // colours[i] applies to cell i (none by default).
  void add_row(std::vector<std::string> cells, std::vector<Colour> colours = {});
  void print() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::vector<Colour>> colours_;
};

// One line of progress on a terminal's stderr, rewritten at most ten times a second (always
// when `force`); nothing when stderr is not a terminal (cron) or when quiet. done() ends it.
class ProgressLine {
 public:
  explicit ProgressLine(bool quiet = false);
  ~ProgressLine() { done(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  void show(const std::string& text, bool force = false);
  void done();

 private:
  bool enabled_;
  bool shown_ = false;
  long long last_ms_ = 0;
};

// Stable, indented JSON on stdout.
void print_json(const nlohmann::json& value);

}  // namespace coop::cli
