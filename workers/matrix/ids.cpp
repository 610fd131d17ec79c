// See ids.h.
#include "workers/matrix/ids.h"

namespace coop::matrix {

bool valid_server_name(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  std::string host = name, port;
  if (name[0] == '[') {
    const auto close = name.find(']');
    if (close == std::string::npos) return false;
    host = name.substr(1, close - 1);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) return false;
    if (close + 1 < name.size()) {
      if (name[close + 1] != ':') return false;
      port = name.substr(close + 2);
      if (port.empty()) return false;
    }
  } else {
    const auto colon = name.find(':');
    if (colon != std::string::npos) {
      host = name.substr(0, colon);
      port = name.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host.empty() || host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") !=
                            std::string::npos)
      return false;
  }
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  return port.empty() || std::stoi(port) <= 65535;
}

std::string user_server(const std::string& user_id) {
  if (user_id.size() < 3 || user_id.size() > 255 || user_id[0] != '@') return "";
  auto server = server_of(user_id);
  return valid_server_name(server) ? server : "";
}

}  // namespace coop::matrix
