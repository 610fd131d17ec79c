// Client-Server API "Push Notifications": the push rules a member reads and edits.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/error.h"
#include "workers/room/client_impl.h"
#include "workers/room/push_rules.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

// Push rules live in the member's account data (m.push_rules), so /sync carries every edit.
json rules_of(ClientApi::Impl& api, const std::string& user_id) {
  auto stored = api.store.account_data(user_id, "", "m.push_rules");
  return {{"global", complete_push_rules(stored && stored->contains("global") ? (*stored)["global"] : json(), user_id)}};
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

// GET /notifications: the events that notified the member, newest first, with whether they
// have been read; `from` is the id of the last one seen.
Response notifications(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto from = q.query_value("from");
  const int64_t before = from.empty() ? 0 : page_token(from, "from", 18);
  const int limit = std::clamp(std::atoi(q.query_value("limit", "20").c_str()), 1, 100);
  const auto rows = api.store.notifications(s.user_id, before, limit, q.query_value("only") == "highlight");
  json list = json::array();
  for (const auto& n : rows)
    list.push_back({{"room_id", n.room_id}, {"event", api.client_event(n.event)}, {"actions", n.actions},
                    {"ts", n.ts}, {"read", n.read}});
  json body = {{"notifications", list}};
  if (static_cast<int>(rows.size()) == limit) body["next_token"] = std::to_string(rows.back().id);
  return ok(body);
}

Response get_pushers(ClientApi::Impl& api, const Request& q) { return ok({{"pushers", api.store.pushers(api.authenticate(q).user_id)}}); }

constexpr std::size_t kMaxPusherField = 512;

// POST /pushers/set: kind null removes the pusher; http pushers need data.url, the gateway's
// /_matrix/push/v1/notify.
Response set_pusher(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  for (const char* field : {"app_id", "pushkey"}) {
    const auto v = body.value(field, json());
    if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > kMaxPusherField)
      fail(400, errc::kMMissingParam, std::string(field) + " is required");
  }
  const auto kind = body.value("kind", json());
  if (kind.is_null()) {
    api.store.delete_pusher(s.user_id, body["app_id"], body["pushkey"]);
    return ok(json::object());
  }
  if (kind != json("http") && kind != json("email")) fail(400, errc::kMInvalidParam, "kind must be http, email or null");
  const auto data = body.value("data", json::object());
  if (!data.is_object()) fail(400, errc::kMBadJson, "data must be an object");
  if (kind == json("http")) {
    const auto url = data.value("url", json());
    if (!url.is_string() || url.get<std::string>().rfind("http", 0) != 0 ||
        url.get<std::string>().find("/_matrix/push/v1/notify") == std::string::npos)
      fail(400, errc::kMInvalidParam, "an http pusher needs data.url ending in /_matrix/push/v1/notify");
  }
  json pusher = {{"app_id", body["app_id"]}, {"pushkey", body["pushkey"]}, {"kind", kind}, {"data", data}};
  for (const char* field : {"app_display_name", "device_display_name", "profile_tag", "lang"})
    if (body.contains(field) && body[field].is_string() && body[field].get<std::string>().size() <= kMaxPusherField)
      pusher[field] = body[field];
  api.store.set_pusher(s.user_id, pusher, body.value("append", json(false)) == json(true));
  return ok(json::object());
}

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
    {"GET", "/notifications", Mount::kV3AndR0, Run::kBlocking, notifications, "the events that notified the member"},
    {"GET", "/pushers", Mount::kV3AndR0, Run::kBlocking, get_pushers, "the member's pushers"},
    {"POST", "/pushers/set", Mount::kV3AndR0, Run::kBlocking, set_pusher, "add, replace or remove a pusher"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kPushRoutes = kPushTable;

}  // namespace coop::room
