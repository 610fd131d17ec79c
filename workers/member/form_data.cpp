// RFC 7578 4.1: parts separated by "--" boundary lines (RFC 2046 5.1.1), each with headers,
// of which Content-Disposition: form-data; name="..."[; filename="..."] matters here.
#include "workers/member/form_data.h"

#include "common/text.h"

namespace coop::member {

namespace {

// The value of parameter `key` in a header value such as `form-data; name="x"`.
std::optional<std::string> parameter(std::string_view value, std::string_view key) {
  std::size_t at = 0;
  while ((at = value.find(';', at)) != std::string_view::npos) {
    ++at;
    while (at < value.size() && value[at] == ' ') ++at;
    if (ascii_lower(value.substr(at, key.size())) != key || at + key.size() >= value.size() || value[at + key.size()] != '=')
      continue;
    auto rest = value.substr(at + key.size() + 1);
    if (!rest.empty() && rest.front() == '"') {
      const auto end = rest.find('"', 1);
      if (end == std::string_view::npos) return std::nullopt;
      return std::string(rest.substr(1, end - 1));
    }
    return std::string(rest.substr(0, rest.find(';')));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<FormPart>> parse_form_data(std::string_view content_type, std::string_view body,
                                                     std::size_t max_parts) {
  if (ascii_lower(content_type.substr(0, 19)) != "multipart/form-data") return std::nullopt;
  const auto boundary = parameter(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 70) return std::nullopt;
  const std::string delimiter = "--" + *boundary;
  if (body.substr(0, delimiter.size()) != delimiter) return std::nullopt;
  std::vector<FormPart> parts;
  std::size_t at = delimiter.size();
  while (true) {
    if (body.substr(at, 2) == "--") return parts;  // the close delimiter
    if (body.substr(at, 2) != "\r\n" || parts.size() >= max_parts) return std::nullopt;
    at += 2;
    const auto headers_end = body.find("\r\n\r\n", at);
    if (headers_end == std::string_view::npos) return std::nullopt;
    FormPart part;
    bool disposition = false;
    for (auto headers = body.substr(at, headers_end - at); !headers.empty();) {
      const auto eol = headers.find("\r\n");
      const auto line = headers.substr(0, eol);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      if (ascii_lower(line.substr(0, colon)) == "content-disposition") {
        const auto value = line.substr(colon + 1);
        const auto name = parameter(value, "name");
        if (!name) return std::nullopt;
        part.name = *name;
        part.filename = parameter(value, "filename").value_or("");
        disposition = true;
      }
      if (eol == std::string_view::npos) break;
      headers.remove_prefix(eol + 2);
    }
    if (!disposition || !is_valid_utf8(part.name) || !is_valid_utf8(part.filename)) return std::nullopt;
    const auto content_start = headers_end + 4;
    const auto next = body.find("\r\n" + delimiter, content_start);
    if (next == std::string_view::npos) return std::nullopt;
    part.content = std::string(body.substr(content_start, next - content_start));
    parts.push_back(std::move(part));
    at = next + 2 + delimiter.size();
  }
}

}  // namespace coop::member
