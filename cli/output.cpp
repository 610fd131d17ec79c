// Tables, colours and JSON for the coop CLI.
#include "cli/output.h"

#include <ctime>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace coop::cli {

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }
bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
  return text;
}

std::string utc_time_text(int64_t unix_seconds) {
  const std::time_t t = unix_seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

std::string utc_time_text(const std::string& iso8601) {
  if (iso8601.size() < 16 || iso8601[10] != 'T') return iso8601;
  return iso8601.substr(0, 10) + " " + iso8601.substr(11, 5) + " UTC";
}

ProgressLine::ProgressLine(bool quiet) : enabled_(!quiet && stderr_is_terminal()) {}

void ProgressLine::show(const std::string& text, bool force) {
  if (!enabled_) return;
  const long long now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
  if (!force && now - last_ms_ < 100) return;
  last_ms_ = now;
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::done() {
  if (shown_) std::fputc('\n', stderr);
  shown_ = false;
}

std::string paint(const std::string& text, Colour colour) {
  static const bool enabled = stdout_is_terminal() && std::getenv("NO_COLOR") == nullptr;
  if (!enabled || colour == Colour::none) return text;
  const char* code = colour == Colour::green ? "32" : colour == Colour::yellow ? "33" : colour == Colour::red ? "31" : "2";
  return std::string("\033[") + code + "m" + text + "\033[0m";
}

Colour state_colour(const std::string& state) {
  if (state == "running") return Colour::green;
  if (state == "starting" || state == "stopping") return Colour::yellow;
  if (state == "backoff" || state == "failed") return Colour::red;
  return Colour::dim;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds);
  char out[32];
  if (s < 60)
    std::snprintf(out, sizeof out, "%llds", s);
  else if (s < 3600)
    std::snprintf(out, sizeof out, "%lldm%02llds", s / 60, s % 60);
  else if (s < 86400)
    std::snprintf(out, sizeof out, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  else
    std::snprintf(out, sizeof out, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
  return out;
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add_row(std::vector<std::string> cells, std::vector<Colour> colours) {
  cells.resize(headers_.size());
  colours.resize(headers_.size(), Colour::none);
  rows_.push_back(std::move(cells));
  colours_.push_back(std::move(colours));
}

void Table::print() const {
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
  for (const auto& row : rows_)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells, const std::vector<Colour>* colours) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const bool last = i + 1 == cells.size();
      std::string cell = cells[i];
      if (!last) cell.append(width[i] - cells[i].size() + 2, ' ');
      out += colours ? paint(cell, (*colours)[i]) : cell;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::cout << out << '\n';
  };
  line(headers_, nullptr);
  for (std::size_t r = 0; r < rows_.size(); ++r) line(rows_[r], &colours_[r]);
}

void print_json(const nlohmann::json& value) { std::cout << value.dump(2) << '\n'; }

}  // namespace coop::cli
