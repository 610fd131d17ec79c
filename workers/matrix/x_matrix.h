// Server-Server API "Request Authentication": the X-Matrix Authorization header a homeserver
// signs its requests with, and its check on receipt.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace coop::matrix {

class SigningKey;

struct XMatrix {
  std::string origin;
  std::string destination;  // empty when the sender left it out (older servers)
  std::string key_id;
  std::string signature;
};

// The parameters of an "X-Matrix origin=...,destination=...,key=\"...\",sig=\"...\"" header
// (auth-params, RFC 9110 11.2: token or quoted-string values, names case-insensitive);
// nullopt unless origin, key and sig are all there, once each.
std::optional<XMatrix> parse_x_matrix(std::string_view authorization);

// What is signed: {method, uri (path and query, as sent), origin, destination, content (when
// the request has a JSON body)}.
nlohmann::json request_json(const std::string& method, const std::string& uri, const std::string& origin,
                            const std::string& destination, const nlohmann::json* content);

// The Authorization header value for a request this server makes.
std::string x_matrix_authorization(const std::string& method, const std::string& uri, const std::string& origin,
                                   const std::string& destination, const nlohmann::json* content, const SigningKey& key);

// Whether the header's signature over the request is good for the origin's public key.
bool verify_x_matrix(const XMatrix& header, const std::string& method, const std::string& uri,
                     const std::string& destination, const nlohmann::json* content, std::string_view public_key_base64);

}  // namespace coop::matrix
