// Client-Server API "Server Side Search": POST /search over the rooms a member is or was in,
// through history visibility; encrypted rooms hold no searchable text.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "common/text.h"
#include "workers/room/client_impl.h"
#include "workers/room/event_filter.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

using http::Request;
using http::Response;
using nlohmann::json;

namespace {

constexpr int kMaxSearchResults = 100;
constexpr int kMaxContext = 20;
constexpr std::size_t kMaxSearchWords = 16;

// The member's words as an FTS5 query: each word quoted (so no operator of the query syntax
// can come from a member), the last one as a prefix, all of them required.
std::pair<std::string, std::vector<std::string>> fts_query(const std::string& term) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : term + " ") {
    if (static_cast<unsigned char>(c) >= 0x80 || std::isalnum(static_cast<unsigned char>(c))) {
      word += c;
    } else if (!word.empty()) {
      if (words.size() < kMaxSearchWords) words.push_back(word);
      word.clear();
    }
  }
  std::string query;
  for (std::size_t i = 0; i < words.size(); ++i)
    query += (i ? " " : "") + ("\"" + words[i] + "\"") + (i + 1 == words.size() ? "*" : "");
  return {query, words};
}

Response search(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  const auto categories = body.value("search_categories", json());
  if (!categories.is_object()) fail(400, errc::kMBadJson, "search_categories is required");
  const auto criteria = categories.value("room_events", json());
  if (!criteria.is_object()) return ok({{"search_categories", json::object()}});
  const auto term = criteria.value("search_term", json());
  if (!term.is_string()) fail(400, errc::kMBadJson, "search_term must be a string");
  std::vector<std::string> keys = {"content.body", "content.name", "content.topic"};
  if (criteria.contains("keys")) {
    if (!criteria["keys"].is_array()) fail(400, errc::kMBadJson, "keys must be a list");
    keys.clear();
    for (const auto& k : criteria["keys"])
      if (k == "content.body" || k == "content.name" || k == "content.topic") keys.push_back(k);
      else fail(400, errc::kMInvalidParam, "keys may be content.body, content.name and content.topic");
  }
  const auto order = criteria.value("order_by", json("rank"));
  const bool by_rank = order != json("recent");
  const json filter_json = criteria.value("filter", json::object());
  const EventFilter filter = EventFilter::from(filter_json.is_object() ? filter_json : json::object());
  const auto only_rooms = string_list(filter_json, "rooms");
  const auto not_rooms = string_list(filter_json, "not_rooms");
  int limit = 10;
  if (filter_json.is_object() && filter_json.value("limit", json()).is_number_integer())
    limit = std::clamp(filter_json["limit"].get<int>(), 1, kMaxSearchResults);
  const auto from = q.query_value("next_batch");
  const int offset = from.empty() ? 0 : static_cast<int>(page_token(from, "next_batch"));

  // Rooms the member is in or was in; history visibility then says which events of each.
  std::vector<std::string> rooms;
  std::map<std::string, HistoryVisibility> visibility;
  for (const auto& [room_id, membership] : api.store.rooms_of(s.user_id)) {
    if (membership == "invite") continue;
    if (!only_rooms.empty() && std::find(only_rooms.begin(), only_rooms.end(), room_id) == only_rooms.end()) continue;
    if (std::find(not_rooms.begin(), not_rooms.end(), room_id) != not_rooms.end()) continue;
    rooms.push_back(room_id);
    visibility.emplace(room_id, api.store.history_visibility(room_id, s.user_id));
  }
  const auto [match, words] = fts_query(term.get<std::string>());
  const auto page = api.store.search(rooms, match, keys, by_rank, limit, offset, [&](const StoredEvent& e) {
    const auto it = visibility.find(e.event.value("room_id", ""));
    return it != visibility.end() && it->second.allows(e) && filter.matches(e.event);
  });

  const auto context_wanted = criteria.value("event_context", json());
  const int before = context_wanted.is_object() ? std::clamp(context_wanted.value("before_limit", 5), 0, kMaxContext) : 0;
  const int after = context_wanted.is_object() ? std::clamp(context_wanted.value("after_limit", 5), 0, kMaxContext) : 0;
  const bool profiles = context_wanted.is_object() && context_wanted.value("include_profile", json(false)) == json(true);
  json results = json::array();
  std::set<std::string> result_rooms;
  for (const auto& r : page.results) {
    json item = {{"rank", r.rank}, {"result", api.timeline_event(r.event, s)}};
    const std::string room_id = r.event.event.value("room_id", "");
    result_rooms.insert(room_id);
    if (context_wanted.is_object()) {
      const auto& visible = visibility.at(room_id);
      json b = json::array(), a = json::array(), profile_info = json::object();
      for (const auto& e : api.store.events_between(room_id, 0, r.event.stream - 1, before, true))
        if (visible.allows(e)) b.push_back(api.client_event(e.event));
      for (const auto& e : api.store.events_between(room_id, r.event.stream, api.store.position().events, after, false))
        if (visible.allows(e)) a.push_back(api.client_event(e.event));
      if (profiles) {
        std::set<std::string> senders = {r.event.event.value("sender", "")};
        for (const auto& e : b) senders.insert(e.value("sender", ""));
        for (const auto& e : a) senders.insert(e.value("sender", ""));
        for (const auto& sender : senders) {
          json p = json::object();
          if (auto member = api.store.state_event(room_id, "m.room.member", sender)) {
            const auto& content = (*member)["content"];
            if (content.contains("displayname")) p["displayname"] = content["displayname"];
            if (content.contains("avatar_url")) p["avatar_url"] = content["avatar_url"];
          }
          profile_info[sender] = p;
        }
      }
      item["context"] = {{"events_before", b}, {"events_after", a}, {"start", ""}, {"end", ""}};
      if (profiles) item["context"]["profile_info"] = profile_info;
    }
    results.push_back(item);
  }
  json room_events = {{"count", page.count}, {"highlights", words}, {"results", results}};
  if (page.more) room_events["next_batch"] = std::to_string(offset + static_cast<int>(page.results.size()));
  if (criteria.value("include_state", json(false)) == json(true)) {
    json state = json::object();
    for (const auto& room_id : result_rooms) {
      json events = json::array();
      for (const auto& e : api.store.current_state(room_id)) events.push_back(api.client_event(e));
      state[room_id] = events;
    }
    room_events["state"] = state;
  }
  return ok({{"search_categories", {{"room_events", room_events}}}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kSearchTable[] = {
    {"POST", "/search", Mount::kV3AndR0, Run::kBlocking, search, "search the rooms the member is or was in"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kSearchRoutes = kSearchTable;

}  // namespace coop::room
