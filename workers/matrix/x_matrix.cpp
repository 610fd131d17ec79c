#include "workers/matrix/x_matrix.h"

#include <cctype>

#include "workers/matrix/signing.h"

namespace coop::matrix {

using nlohmann::json;

namespace {

bool token_char(char c) {
  // RFC 9110 5.6.2 tchar
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Server names in X-Matrix may carry a port, so ':' and '[' ']' appear unquoted in practice.
bool lenient_value_char(char c) { return token_char(c) || c == ':' || c == '[' || c == ']' || c == '/' || c == '='; }

}  // namespace

std::optional<XMatrix> parse_x_matrix(std::string_view text) {
  constexpr std::string_view kScheme = "x-matrix";
  if (text.size() < kScheme.size() + 1) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != kScheme[i]) return std::nullopt;
  if (text[kScheme.size()] != ' ') return std::nullopt;
  std::size_t at = kScheme.size();
  XMatrix out;
  bool have_origin = false, have_destination = false, have_key = false, have_sig = false;
  auto skip_space = [&] {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  };
  while (true) {
    skip_space();
    if (at >= text.size()) break;
    std::size_t name_start = at;
    while (at < text.size() && token_char(text[at])) ++at;
    std::string name(text.substr(name_start, at - name_start));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    skip_space();
    if (name.empty() || at >= text.size() || text[at] != '=') return std::nullopt;
    ++at;
    skip_space();
    std::string value;
    if (at < text.size() && text[at] == '"') {
      ++at;
      bool closed = false;
      while (at < text.size()) {
        const char c = text[at++];
        if (c == '\\' && at < text.size()) {
          value += text[at++];
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return std::nullopt;
    } else {
      const std::size_t value_start = at;
      while (at < text.size() && lenient_value_char(text[at])) ++at;
      value = std::string(text.substr(value_start, at - value_start));
      if (value.empty()) return std::nullopt;
    }
    auto take = [&](bool& seen, std::string& field) {
      if (seen) return false;
      seen = true;
      field = value;
      return true;
    };
    bool ok = true;
    if (name == "origin") ok = take(have_origin, out.origin);
    else if (name == "destination") ok = take(have_destination, out.destination);
    else if (name == "key") ok = take(have_key, out.key_id);
    else if (name == "sig") ok = take(have_sig, out.signature);
    if (!ok) return std::nullopt;  // a parameter twice: ambiguous, refused
    skip_space();
    if (at >= text.size()) break;
    if (text[at] != ',') return std::nullopt;
    ++at;
  }
  if (!have_origin || !have_key || !have_sig || out.origin.empty() || out.key_id.empty() || out.signature.empty())
    return std::nullopt;
  return out;
}

json request_json(const std::string& method, const std::string& uri, const std::string& origin,
                  const std::string& destination, const json* content) {
  json request{{"method", method}, {"uri", uri}, {"origin", origin}, {"destination", destination}};
  if (content && !content->is_null()) request["content"] = *content;
  return request;
}

std::string x_matrix_authorization(const std::string& method, const std::string& uri, const std::string& origin,
                                   const std::string& destination, const json* content, const SigningKey& key) {
  const auto signed_request = sign_json(request_json(method, uri, origin, destination, content), origin, key);
  const std::string signature = signed_request["signatures"][origin][key.key_id()];
  return "X-Matrix origin=\"" + origin + "\",destination=\"" + destination + "\",key=\"" + key.key_id() + "\",sig=\"" +
         signature + "\"";
}

bool verify_x_matrix(const XMatrix& header, const std::string& method, const std::string& uri,
                     const std::string& destination, const json* content, std::string_view public_key_base64) {
  if (!header.destination.empty() && header.destination != destination) return false;
  auto request = request_json(method, uri, header.origin, destination, content);
  request["signatures"] = {{header.origin, {{header.key_id, header.signature}}}};
  return verify_json_signature(request, header.origin, header.key_id, public_key_base64);
}

}  // namespace coop::matrix
