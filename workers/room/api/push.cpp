// Client-Server API "Push Notifications": the push rules a member reads and edits.
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

// Client-Server API "Push Notifications / Predefined Rules": the server-default rules every
// client expects to find (Element shows its notification settings from them).
json default_push_rules(const std::string& user_id) {
  const json notify = json::array({"notify"});
  const json sound = json::array({"notify", {{"set_tweak", "sound"}, {"value", "default"}}});
  const json highlight = json::array({"notify", {{"set_tweak", "sound"}, {"value", "default"}}, {{"set_tweak", "highlight"}}});
  auto rule = [](const char* id, json conditions, json actions, bool enabled = true) {
    return json{{"rule_id", id}, {"default", true}, {"enabled", enabled}, {"conditions", conditions}, {"actions", actions}};
  };
  auto match = [](const char* key, const std::string& pattern) {
    return json{{"kind", "event_match"}, {"key", key}, {"pattern", pattern}};
  };
  const std::string localpart = user_id.substr(1, user_id.find(':') - 1);
  return {
      {"override", json::array({
          rule(".m.rule.master", json::array(), json::array(), false),
          rule(".m.rule.suppress_notices", json::array({match("content.msgtype", "m.notice")}), json::array()),
          rule(".m.rule.invite_for_me", json::array({match("type", "m.room.member"), match("content.membership", "invite"),
                                                     match("state_key", user_id)}), sound),
          rule(".m.rule.member_event", json::array({match("type", "m.room.member")}), json::array()),
          rule(".m.rule.is_user_mention", json::array({{{"kind", "event_property_contains"}, {"key", "content.m\\.mentions.user_ids"}, {"value", user_id}}}), highlight),
          rule(".m.rule.is_room_mention", json::array({{{"kind", "event_property_is"}, {"key", "content.m\\.mentions.room"}, {"value", true}},
                                                       {{"kind", "sender_notification_permission"}, {"key", "room"}}}),
               json::array({"notify", {{"set_tweak", "highlight"}}})),
          rule(".m.rule.tombstone", json::array({match("type", "m.room.tombstone"), match("state_key", "")}),
               json::array({"notify", {{"set_tweak", "highlight"}}})),
          rule(".m.rule.reaction", json::array({match("type", "m.reaction")}), json::array()),
          rule(".m.rule.server_acl", json::array({match("type", "m.room.server_acl"), match("state_key", "")}), json::array()),
      })},
      {"content", json::array({{{"rule_id", ".m.rule.contains_user_name"}, {"default", true}, {"enabled", true},
                                {"pattern", localpart}, {"actions", highlight}}})},
      {"room", json::array()},
      {"sender", json::array()},
      {"underride", json::array({
          rule(".m.rule.call", json::array({match("type", "m.call.invite")}),
               json::array({"notify", {{"set_tweak", "sound"}, {"value", "ring"}}})),
          rule(".m.rule.encrypted_room_one_to_one", json::array({{{"kind", "room_member_count"}, {"is", "2"}},
                                                                 match("type", "m.room.encrypted")}), sound),
          rule(".m.rule.room_one_to_one", json::array({{{"kind", "room_member_count"}, {"is", "2"}},
                                                       match("type", "m.room.message")}), sound),
          rule(".m.rule.message", json::array({match("type", "m.room.message")}), notify),
          rule(".m.rule.encrypted", json::array({match("type", "m.room.encrypted")}), notify),
      })},
  };
}

// Push rules live in the member's account data (m.push_rules), so /sync carries every edit.
json rules_of(ClientApi::Impl& api, const std::string& user_id) {
  auto stored = api.store.account_data(user_id, "", "m.push_rules");
  return stored && stored->contains("global") ? *stored : json{{"global", default_push_rules(user_id)}};
}

json* find_rule(json& rules, const std::string& kind, const std::string& id) {
  if (!rules["global"].contains(kind)) fail(400, errc::kMInvalidParam, "unknown push rule kind " + kind);
  for (auto& rule : rules["global"][kind])
    if (rule.value("rule_id", "") == id) return &rule;
  return nullptr;
}

Response get_all_rules(ClientApi::Impl& api, const Request& q) { return ok(rules_of(api, api.authenticate(q).user_id)); }

Response get_global_rules(ClientApi::Impl& api, const Request& q) {
  return ok(rules_of(api, api.authenticate(q).user_id)["global"]);
}

Response get_rule(ClientApi::Impl& api, const Request& q) {
  auto rules = rules_of(api, api.authenticate(q).user_id);
  const json* rule = find_rule(rules, q.param("kind"), q.param("ruleId"));
  if (!rule) fail(404, errc::kMNotFound, "no such push rule");
  return ok(*rule);
}

Response put_rule(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto id = q.param("ruleId"), kind = q.param("kind");
  if (!id.empty() && id[0] == '.') fail(400, errc::kMInvalidParam, "server-default rules can only be enabled or given actions");
  auto rules = rules_of(api, s.user_id);
  const auto body = q.json();
  if (!body.contains("actions") || !body["actions"].is_array()) fail(400, errc::kMMissingParam, "actions are required");
  json rule = {{"rule_id", id}, {"default", false}, {"enabled", true}, {"actions", body["actions"]}};
  if (kind == "override" || kind == "underride") rule["conditions"] = body.value("conditions", json::array());
  if (kind == "content") rule["pattern"] = body.value("pattern", "");
  if (json* existing = find_rule(rules, kind, id)) {
    *existing = rule;
  } else {
    // User rules come before the server defaults of their kind, the master rule excepted.
    auto& list = rules["global"][kind];
    const auto at = kind == "override" && !list.empty() && list[0].value("rule_id", "") == ".m.rule.master" ? 1 : 0;
    list.insert(list.begin() + at, rule);
  }
  api.store.set_account_data(s.user_id, "", "m.push_rules", rules);
  return ok(json::object());
}

Response delete_rule(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (!q.param("ruleId").empty() && q.param("ruleId")[0] == '.') fail(400, errc::kMInvalidParam, "server-default rules cannot be deleted");
  auto rules = rules_of(api, s.user_id);
  auto& list = rules["global"][q.param("kind")];
  const auto before = list.size();
  for (auto it = list.begin(); it != list.end(); ++it)
    if (it->value("rule_id", "") == q.param("ruleId")) {
      list.erase(it);
      break;
    }
  if (list.size() == before) fail(404, errc::kMNotFound, "no such push rule");
  api.store.set_account_data(s.user_id, "", "m.push_rules", rules);
  return ok(json::object());
}

// A rule's "enabled" or "actions" attribute.
Response get_rule_attribute(ClientApi::Impl& api, const Request& q, const std::string& name) {
  auto rules = rules_of(api, api.authenticate(q).user_id);
  const json* rule = find_rule(rules, q.param("kind"), q.param("ruleId"));
  if (!rule) fail(404, errc::kMNotFound, "no such push rule");
  return ok({{name, (*rule)[name]}});
}

Response put_rule_attribute(ClientApi::Impl& api, const Request& q, const std::string& name) {
  const auto s = api.authenticate(q);
  auto rules = rules_of(api, s.user_id);
  json* rule = find_rule(rules, q.param("kind"), q.param("ruleId"));
  if (!rule) fail(404, errc::kMNotFound, "no such push rule");
  const auto body = q.json();
  if (!body.contains(name) || (name == "enabled" ? !body[name].is_boolean() : !body[name].is_array()))
    fail(400, errc::kMBadJson, name + " is missing or of the wrong type");
  (*rule)[name] = body[name];
  api.store.set_account_data(s.user_id, "", "m.push_rules", rules);
  return ok(json::object());
}

Response get_rule_enabled(ClientApi::Impl& api, const Request& q) { return get_rule_attribute(api, q, "enabled"); }
Response put_rule_enabled(ClientApi::Impl& api, const Request& q) { return put_rule_attribute(api, q, "enabled"); }
Response get_rule_actions(ClientApi::Impl& api, const Request& q) { return get_rule_attribute(api, q, "actions"); }
Response put_rule_actions(ClientApi::Impl& api, const Request& q) { return put_rule_attribute(api, q, "actions"); }

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kPushTable[] = {
    {"GET", "/pushrules/", Mount::kV3AndR0, Run::kBlocking, get_all_rules, "every push rule"},
    {"GET", "/pushrules/global/", Mount::kV3AndR0, Run::kBlocking, get_global_rules, "the global push rules"},
    {"GET", "/pushrules/global/{kind}/{ruleId}", Mount::kV3AndR0, Run::kBlocking, get_rule, "one push rule"},
    {"PUT", "/pushrules/global/{kind}/{ruleId}", Mount::kV3AndR0, Run::kBlocking, put_rule, "add or replace a push rule"},
    {"DELETE", "/pushrules/global/{kind}/{ruleId}", Mount::kV3AndR0, Run::kBlocking, delete_rule, "remove a push rule"},
    {"GET", "/pushrules/global/{kind}/{ruleId}/enabled", Mount::kV3AndR0, Run::kBlocking, get_rule_enabled, "is a push rule enabled"},
    {"PUT", "/pushrules/global/{kind}/{ruleId}/enabled", Mount::kV3AndR0, Run::kBlocking, put_rule_enabled, "enable or disable a push rule"},
    {"GET", "/pushrules/global/{kind}/{ruleId}/actions", Mount::kV3AndR0, Run::kBlocking, get_rule_actions, "a push rule's actions"},
    {"PUT", "/pushrules/global/{kind}/{ruleId}/actions", Mount::kV3AndR0, Run::kBlocking, put_rule_actions, "set a push rule's actions"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kPushRoutes = kPushTable;

}  // namespace coop::room
