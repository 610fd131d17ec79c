// Site names, file paths and content types.
#include "workers/site/site_paths.h"

#include <array>
#include <utility>

#include "common/text.h"

namespace coop::site {

bool valid_site_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '-' && c != '_'))) return false;
  }
  return true;
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.' || host.front() == '-') return false;
  for (char c : host)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  return host.find("..") == std::string_view::npos;
}

bool valid_file_path(std::string_view path) {
  if (path.empty() || path.size() > 1024 || path.front() == '/' || path.back() == '/') return false;
  if (!is_valid_utf8(path)) return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    const auto segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    for (unsigned char c : segment)
      if (c < 0x20 || c == 0x7F || c == '\\') return false;
    start = end + 1;
  }
  return true;
}

std::optional<std::string> file_path_from_request(std::string_view request_path) {
  if (request_path.empty() || request_path.front() != '/') return std::nullopt;
  std::string decoded;
  if (!percent_decode(request_path, decoded)) return std::nullopt;
  if (decoded.find('\0') != std::string::npos) return std::nullopt;
  std::string path = decoded.substr(1);
  const bool directory = !path.empty() && path.back() == '/';
  if (directory) path.pop_back();
  if (path.empty()) return directory ? std::nullopt : std::optional<std::string>("");
  if (!valid_file_path(path)) return std::nullopt;
  return directory ? path + "/" : path;
}

std::string content_type_for(std::string_view path) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 38> kTypes = {{
      {".html", "text/html; charset=utf-8"},     {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},       {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
      {".map", "application/json"},              {".webmanifest", "application/manifest+json"},
      {".xml", "application/xml"},               {".rss", "application/rss+xml"},
      {".atom", "application/atom+xml"},         {".txt", "text/plain; charset=utf-8"},
      {".md", "text/markdown; charset=utf-8"},   {".csv", "text/csv; charset=utf-8"},
      {".ics", "text/calendar; charset=utf-8"},  {".svg", "image/svg+xml"},
      {".png", "image/png"},                     {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},                   {".gif", "image/gif"},
      {".webp", "image/webp"},                   {".avif", "image/avif"},
      {".ico", "image/vnd.microsoft.icon"},      {".woff", "font/woff"},
      {".woff2", "font/woff2"},                  {".ttf", "font/ttf"},
      {".otf", "font/otf"},                      {".pdf", "application/pdf"},
      {".mp4", "video/mp4"},                     {".webm", "video/webm"},
      {".mp3", "audio/mpeg"},                    {".ogg", "audio/ogg"},
      {".wasm", "application/wasm"},             {".zip", "application/zip"},
      {".gz", "application/gzip"},               {".wav", "audio/wav"},
      {".vcf", "text/vcard; charset=utf-8"},     {".yaml", "application/yaml"},
  }};
  const auto slash = path.rfind('/');
  const auto name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  const std::string extension = ascii_lower(name.substr(dot));
  for (const auto& [ext, type] : kTypes)
    if (ext == extension) return std::string(type);
  return "application/octet-stream";
}

bool compressible(std::string_view type) {
  return type.rfind("text/", 0) == 0 || type.rfind("application/json", 0) == 0 || type == "application/manifest+json" ||
         type == "application/xml" || type == "application/rss+xml" || type == "application/atom+xml" ||
         type == "image/svg+xml" || type == "application/wasm" || type == "image/vnd.microsoft.icon" ||
         type == "font/ttf" || type == "font/otf" || type == "application/yaml";
}

}  // namespace coop::site
