// See server_acl.h.
#include "workers/matrix/server_acl.h"

#include <arpa/inet.h>
#include <nlohmann/json.hpp>

#include "workers/matrix/glob.h"

namespace coop::matrix {

namespace {

// The host part of a server name: "[::1]:8448" -> "[::1]", "example.org:8448" -> "example.org".
std::string_view host_of(std::string_view name) {
  if (!name.empty() && name.front() == '[') {
    const auto close = name.find(']');
    return close == std::string_view::npos ? name : name.substr(0, close + 1);
  }
  return name.substr(0, name.find(':'));
}

bool is_ip_literal(std::string_view host) {
  if (!host.empty() && host.front() == '[') return true;
  in_addr v4{};
  return inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1;
}

bool any_matches(const nlohmann::json& list, std::string_view host) {
  if (!list.is_array()) return false;
  for (const auto& entry : list)
    if (entry.is_string() && glob_matches(entry.get_ref<const std::string&>(), std::string(host))) return true;
  return false;
}

}  // namespace

bool server_acl_allows(const nlohmann::json& content, std::string_view server_name) {
  // No ACL; or a redacted one, whose content is empty: read literally it would cut the room off
  // from every server, ours included, which no one redacting an ACL means to do.
  if (!content.is_object() || content.empty()) return true;
  const auto host = host_of(server_name);
  const auto literals = content.find("allow_ip_literals");
  const bool allow_literals = literals == content.end() || !literals->is_boolean() || literals->get<bool>();
  if (!allow_literals && is_ip_literal(host)) return false;
  if (const auto deny = content.find("deny"); deny != content.end() && any_matches(*deny, host)) return false;
  const auto allow = content.find("allow");
  return allow != content.end() && any_matches(*allow, host);
}

}  // namespace coop::matrix
