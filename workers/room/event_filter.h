// Client-Server API "Filtering": the parts of a filter /sync and /messages apply to events.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace coop::room {

// A filter given inline in a query string (?filter={...}), parsed as bodies are.
nlohmann::json filter_param(const std::string& text);

// The strings of object[key] when it is an array; nothing otherwise.
std::vector<std::string> string_list(const nlohmann::json& object, const char* key);

// A RoomEventFilter's types, not_types, senders and not_senders.
struct EventFilter {
  std::vector<std::string> types, not_types, senders, not_senders;
  bool has_types = false;

  static EventFilter from(const nlohmann::json& filter);
  bool matches(const nlohmann::json& event) const;
};

}  // namespace coop::room
