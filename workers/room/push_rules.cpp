// Push rules: the predefined set and their evaluation (Client-Server API "Push Rules",
// "Conditions", "Predefined Rules").
#include "workers/room/push_rules.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <vector>

#include "common/text.h"
#include "workers/matrix/glob.h"

namespace coop::room {

using nlohmann::json;

namespace {

json rule(const char* id, json conditions, json actions, bool enabled = true) {
  return json{{"rule_id", id}, {"default", true}, {"enabled", enabled}, {"conditions", conditions}, {"actions", actions}};
}

json match(const char* key, const std::string& pattern) { return json{{"kind", "event_match"}, {"key", key}, {"pattern", pattern}}; }

// Keys are dotted paths; "\." is a dot inside a name and "\\" a backslash
// (Client-Server API "Conditions": event_match's key, MSC3873).
const json* value_at(const json& event, const std::string& key) {
  const json* at = &event;
  std::string part;
  auto step = [&]() -> bool {
    if (!at->is_object()) return false;
    const auto it = at->find(part);
    if (it == at->end()) return false;
    at = &*it;
    part.clear();
    return true;
  };
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '\\' && i + 1 < key.size() && (key[i + 1] == '.' || key[i + 1] == '\\')) {
      part += key[++i];
    } else if (key[i] == '.') {
      if (!step()) return nullptr;
    } else {
      part += key[i];
    }
  }
  return step() ? at : nullptr;
}

bool member_count_matches(const std::string& is, int64_t count) {
  std::size_t digits = is.find_first_of("0123456789");
  if (digits == std::string::npos || is.find_first_not_of("0123456789", digits) != std::string::npos) return false;
  const auto op = is.substr(0, digits);
  int64_t n = 0;
  try {
    n = std::stoll(is.substr(digits));
  } catch (...) {
    return false;
  }
  if (op.empty() || op == "==") return count == n;
  if (op == "<") return count < n;
  if (op == ">") return count > n;
  if (op == "<=") return count <= n;
  if (op == ">=") return count >= n;
  return false;
}

// A literal, case-insensitive, as whole words (contains_display_name).
bool contains_words(const std::string& text, const std::string& words) {
  if (words.empty()) return false;
  const auto haystack = ascii_lower(text), needle = ascii_lower(words);
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) {
    const bool starts = at == 0 || !matrix::word_byte(haystack[at - 1]);
    const auto end = at + needle.size();
    const bool ends = end == haystack.size() || !matrix::word_byte(haystack[end]);
    if (starts && ends) return true;
  }
  return false;
}

bool scalar(const json& v) { return v.is_string() || v.is_number_integer() || v.is_boolean() || v.is_null(); }

bool condition_holds(const json& condition, const json& event, const PushContext& context) {
  if (!condition.is_object()) return false;
  const std::string kind = condition.value("kind", "");
  const std::string key = condition.value("key", "");
  if (kind == "event_match") {
    const json* value = value_at(event, key);
    const auto pattern = condition.value("pattern", json());
    if (!value || !value->is_string() || !pattern.is_string()) return false;
    return glob_matches(pattern.get<std::string>(), value->get<std::string>(), key == "content.body");
  }
  if (kind == "event_property_is") {
    const json* value = value_at(event, key);
    const auto wanted = condition.value("value", json());
    return value && scalar(*value) && scalar(wanted) && *value == wanted;
  }
  if (kind == "event_property_contains") {
    const json* value = value_at(event, key);
    const auto wanted = condition.value("value", json());
    return value && value->is_array() && scalar(wanted) && std::find(value->begin(), value->end(), wanted) != value->end();
  }
  if (kind == "contains_display_name") {
    const json* body = value_at(event, "content.body");
    return body && body->is_string() && contains_words(body->get<std::string>(), context.display_name);
  }
  if (kind == "room_member_count") {
    const auto is = condition.value("is", json());
    return is.is_string() && member_count_matches(is.get<std::string>(), context.member_count);
  }
  if (kind == "sender_notification_permission") return context.sender_may_notify && context.sender_may_notify(key);
  return false;  // an unknown condition never matches
}

// The legacy mention rules step aside when the event says whom it mentions ("User and room
// mentions": clients that send m.mentions are read by it alone).
bool legacy_mention_rule(const std::string& id) {
  return id == ".m.rule.contains_display_name" || id == ".m.rule.contains_user_name" || id == ".m.rule.roomnotif";
}

bool rule_matches(const std::string& kind, const json& rule, const json& event, const PushContext& context) {
  const std::string id = rule.value("rule_id", "");
  if (legacy_mention_rule(id) && event.contains("content") && event["content"].is_object() &&
      event["content"].contains("m.mentions"))
    return false;
  if (kind == "content") {
    const auto pattern = rule.value("pattern", json());
    const json* body = value_at(event, "content.body");
    return pattern.is_string() && body && body->is_string() && glob_matches(pattern.get<std::string>(), body->get<std::string>(), true);
  }
  if (kind == "room") return event.value("room_id", "") == id;
  if (kind == "sender") return event.value("sender", "") == id;
  const auto conditions = rule.value("conditions", json::array());
  if (!conditions.is_array()) return false;
  return std::all_of(conditions.begin(), conditions.end(), [&](const json& c) { return condition_holds(c, event, context); });
}

}  // namespace

json PushActions::actions() const {
  json out = json::array();
  if (!notify) return out;
  out.push_back("notify");
  if (!sound.empty()) out.push_back({{"set_tweak", "sound"}, {"value", sound}});
  if (highlight) out.push_back({{"set_tweak", "highlight"}});
  return out;
}

json default_push_rules(const std::string& user_id) {
  const json notify = json::array({"notify"});
  const json sound = json::array({"notify", {{"set_tweak", "sound"}, {"value", "default"}}});
  const json highlight = json::array({"notify", {{"set_tweak", "sound"}, {"value", "default"}}, {{"set_tweak", "highlight"}}});
  const json highlight_quiet = json::array({"notify", {{"set_tweak", "highlight"}}});
  const std::string localpart = user_id.substr(1, user_id.find(':') - 1);
  const json room_permission = {{"kind", "sender_notification_permission"}, {"key", "room"}};
  return {
      {"override",
       json::array({
           rule(".m.rule.master", json::array(), json::array(), false),
           rule(".m.rule.suppress_notices", json::array({match("content.msgtype", "m.notice")}), json::array()),
           rule(".m.rule.invite_for_me",
                json::array({match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", user_id)}),
                sound),
           rule(".m.rule.member_event", json::array({match("type", "m.room.member")}), json::array()),
           rule(".m.rule.is_user_mention",
                json::array({{{"kind", "event_property_contains"}, {"key", "content.m\\.mentions.user_ids"}, {"value", user_id}}}),
                highlight),
           rule(".m.rule.contains_display_name", json::array({{{"kind", "contains_display_name"}}}), highlight),
           rule(".m.rule.is_room_mention",
                json::array({{{"kind", "event_property_is"}, {"key", "content.m\\.mentions.room"}, {"value", true}}, room_permission}),
                highlight_quiet),
           rule(".m.rule.roomnotif", json::array({room_permission, match("content.body", "@room")}), highlight_quiet),
           rule(".m.rule.tombstone", json::array({match("type", "m.room.tombstone"), match("state_key", "")}), highlight_quiet),
           rule(".m.rule.reaction", json::array({match("type", "m.reaction")}), json::array()),
           rule(".m.rule.room.server_acl", json::array({match("type", "m.room.server_acl"), match("state_key", "")}), json::array()),
           rule(".m.rule.suppress_edits",
                json::array({{{"kind", "event_property_is"}, {"key", "content.m\\.relates_to.rel_type"}, {"value", "m.replace"}}}),
                json::array()),
       })},
      {"content", json::array({{{"rule_id", ".m.rule.contains_user_name"}, {"default", true}, {"enabled", true},
                                {"pattern", localpart}, {"actions", highlight}}})},
      {"room", json::array()},
      {"sender", json::array()},
      {"underride",
       json::array({
           rule(".m.rule.call", json::array({match("type", "m.call.invite")}),
                json::array({"notify", {{"set_tweak", "sound"}, {"value", "ring"}}})),
           rule(".m.rule.encrypted_room_one_to_one",
                json::array({{{"kind", "room_member_count"}, {"is", "2"}}, match("type", "m.room.encrypted")}), sound),
           rule(".m.rule.room_one_to_one",
                json::array({{{"kind", "room_member_count"}, {"is", "2"}}, match("type", "m.room.message")}), sound),
           rule(".m.rule.message", json::array({match("type", "m.room.message")}), notify),
           rule(".m.rule.encrypted", json::array({match("type", "m.room.encrypted")}), notify),
       })},
  };
}

json complete_push_rules(const json& stored, const std::string& user_id) {
  const json defaults = default_push_rules(user_id);
  json out = json::object();
  for (const char* kind : {"override", "content", "room", "sender", "underride"}) {
    const json mine = stored.is_object() && stored.contains(kind) && stored[kind].is_array() ? stored[kind] : json::array();
    auto stored_rule = [&](const std::string& id) -> const json* {
      for (const auto& r : mine)
        if (r.is_object() && r.value("rule_id", "") == id) return &r;
      return nullptr;
    };
    json list = json::array();
    // Server-default rules come after the member's own, except .m.rule.master, which is first.
    auto add_default = [&](const json& d) {
      const auto* kept = stored_rule(d.value("rule_id", ""));
      json r = d;
      if (kept) {
        if (kept->contains("enabled")) r["enabled"] = (*kept)["enabled"];
        if (kept->contains("actions")) r["actions"] = (*kept)["actions"];
      }
      list.push_back(r);
    };
    for (const auto& d : defaults[kind])
      if (d.value("rule_id", "") == ".m.rule.master") add_default(d);
    for (const auto& r : mine)
      if (r.is_object() && !r.value("rule_id", "").starts_with(".")) list.push_back(r);
    for (const auto& d : defaults[kind])
      if (d.value("rule_id", "") != ".m.rule.master") add_default(d);
    out[kind] = list;
  }
  return out;
}

PushActions evaluate_push_rules(const json& global, const json& event, const PushContext& context) {
  PushActions result;
  for (const char* kind : {"override", "content", "room", "sender", "underride"}) {
    if (!global.contains(kind) || !global[kind].is_array()) continue;
    for (const auto& r : global[kind]) {
      if (!r.is_object() || r.value("enabled", json(true)) != json(true)) continue;
      if (!rule_matches(kind, r, event, context)) continue;
      for (const auto& action : r.value("actions", json::array())) {
        if (action == "notify") result.notify = true;
        if (!action.is_object()) continue;
        const std::string tweak = action.value("set_tweak", "");
        if (tweak == "highlight") result.highlight = action.value("value", json(true)) == json(true);
        if (tweak == "sound" && action.value("value", json()).is_string()) result.sound = action["value"].get<std::string>();
      }
      if (!result.notify) result.highlight = false;
      return result;
    }
  }
  return result;
}

}  // namespace coop::room
