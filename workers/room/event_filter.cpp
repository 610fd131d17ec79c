// Client-Server API "Filtering": inline filters, type globs and RoomEventFilter matching.
#include "workers/room/event_filter.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/error.h"
#include "common/json.h"

namespace coop::room {

namespace {

using nlohmann::json;

// Client-Server API "Filtering": '*' matches any run of characters in type patterns.
bool glob_match(const std::string& pattern, const std::string& value) {
  std::size_t p = 0, v = 0, star = std::string::npos, mark = 0;
  while (v < value.size()) {
    if (p < pattern.size() && (pattern[p] == value[v])) {
      ++p;
      ++v;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = v;
    } else if (star != std::string::npos) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace

json filter_param(const std::string& text) {
  try {
    return parse_json_object(text);
  } catch (const Error&) {
    throw Error(errc::kMInvalidParam, "filter is not a JSON object", 400);
  }
}

std::vector<std::string> string_list(const json& object, const char* key) {
  std::vector<std::string> out;
  if (object.is_object() && object.contains(key) && object[key].is_array())
    for (const auto& item : object[key])
      if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

EventFilter EventFilter::from(const json& filter) {
  EventFilter f;
  f.types = string_list(filter, "types");
  f.has_types = filter.is_object() && filter.contains("types");
  f.not_types = string_list(filter, "not_types");
  f.senders = string_list(filter, "senders");
  f.not_senders = string_list(filter, "not_senders");
  return f;
}

bool EventFilter::matches(const json& event) const {
  const std::string type = event.value("type", ""), sender = event.value("sender", "");
  for (const auto& t : not_types)
    if (glob_match(t, type)) return false;
  if (std::find(not_senders.begin(), not_senders.end(), sender) != not_senders.end()) return false;
  if (has_types && std::none_of(types.begin(), types.end(), [&](const auto& t) { return glob_match(t, type); }))
    return false;
  if (!senders.empty() && std::find(senders.begin(), senders.end(), sender) == senders.end()) return false;
  return true;
}

}  // namespace coop::room
