// multipart/form-data (RFC 7578), as browsers send a form with a file: the parts' names,
// file names and bytes. Strict: a body that is not exactly that is refused whole.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::member {

struct FormPart {
  std::string name;
  std::string filename;  // empty for a plain field
  std::string content;
};

// content_type: the request's Content-Type (its boundary parameter is used). nullopt for a
// body that is not well-formed multipart/form-data, or with more than max_parts parts.
std::optional<std::vector<FormPart>> parse_form_data(std::string_view content_type, std::string_view body,
                                                     std::size_t max_parts = 64);

}  // namespace coop::member
