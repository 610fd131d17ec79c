// Routes of coop-member's control socket; each parses, calls the store or a service, serialises.
#include "workers/member/member_api.h"

#include <nlohmann/json.hpp>

#include <ctime>

#include "common/auth/app_password.h"
#include "common/auth/password.h"
#include "common/error.h"
#include "common/http/date.h"
#include "common/worker_runtime.h"
#include "workers/member/auth_service.h"
#include "workers/member/event_feed.h"
#include "workers/member/member_csv.h"
#include "workers/member/store/member_store.h"

namespace coop::member {

namespace {

using control::Request;
using control::Response;
using nlohmann::json;

using http::iso8601;

json member_json(const Member& m) {
  json j = {{"handle", m.handle},   {"name", m.display_name},       {"emails", m.emails},
            {"groups", m.groups},   {"role", m.role},               {"status", m.status},
            {"quota_bytes", m.quota_bytes}, {"has_password", m.has_password},
            {"created_at", iso8601(m.created_at)}, {"updated_at", iso8601(m.updated_at)}};
  if (!m.status_reason.empty()) j["status_reason"] = m.status_reason;
  return j;
}

json members_json(const std::vector<Member>& members) {
  auto list = json::array();
  for (const auto& m : members) list.push_back(member_json(m));
  return list;
}

json app_password_json(const AppPassword& p) {
  json j = {{"label", p.label}, {"scopes", p.scopes}, {"created_at", iso8601(p.created_at)}};
  j["last_used_at"] = p.last_used_at ? json(iso8601(*p.last_used_at)) : json(nullptr);
  return j;
}

std::vector<std::string> string_list(const json& body, const char* key) {
  if (!body.contains(key)) return {};
  const auto& value = body[key];
  if (!value.is_array()) throw Error(errc::kBadRequest, std::string(key) + " must be a list of strings", 400);
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) throw Error(errc::kBadRequest, std::string(key) + " must be a list of strings", 400);
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::string string_field(const json& body, const char* key, const std::string& fallback = {}) {
  if (!body.contains(key)) return fallback;
  if (!body[key].is_string()) throw Error(errc::kBadRequest, std::string(key) + " must be a string", 400);
  return body[key].get<std::string>();
}

// A password from the request, or a generated one; returns {hash, shown_password}.
// The hash to store, the generated password to show (if any), and the password itself for
// the SCRAM secrets.
struct NewPassword {
  std::string hash, generated, plain;
};

NewPassword password_from(const json& body, const AuthService& auth) {
  if (body.value("generate_password", false)) {
    auto password = auth::generate_password();
    return {auth.hash(password), password, password};
  }
  auto password = string_field(body, "password");
  auth::check_password_strength(password);
  return {auth.hash(password), "", password};
}

}  // namespace

void add_member_routes(WorkerRuntime& runtime, MemberStore& store, AuthService& auth, EventFeed& feed) {
  auto& r = runtime.router();
  auto run = runtime.blocking_runner();

  r.add_blocking("GET", "/v1/members", run, [&store](const Request& q) {
    return Response::json(members_json(store.list_members(q.query_value("status"), q.query_value("group"))));
  }, "list members (?status=, ?group= includes subgroups)");

  r.add_blocking("POST", "/v1/members", run, [&store, &auth](const Request& q) {
    const auto body = q.json();
    NewMember m;
    m.handle = string_field(body, "handle");
    m.display_name = string_field(body, "name");
    m.emails = string_list(body, "emails");
    m.groups = string_list(body, "groups");
    m.role = string_field(body, "role", "member");
    m.quota_bytes = body.value("quota_bytes", int64_t{0});
    std::string shown, plain;
    if (body.contains("password") || body.value("generate_password", false)) {
      auto chosen = password_from(body, auth);
      m.password_hash = chosen.hash;
      shown = chosen.generated;
      plain = chosen.plain;
    }
    auto j = member_json(store.add_member(m, body.value("create_groups", false) == true));
    if (!plain.empty()) auth.remember_scram(m.handle, plain);
    if (!shown.empty()) j["password"] = shown;  // shown once, never stored in the clear
    return Response::json(j, 201);
  }, "add a member");

  r.add_blocking("GET", "/v1/members/{handle}", run, [&store](const Request& q) {
    return Response::json(member_json(store.get_member(q.param("handle"))));
  }, "one member");

  r.add_blocking("PATCH", "/v1/members/{handle}", run, [&store](const Request& q) {
    const auto body = q.json();
    MemberChanges c;
    if (body.contains("name")) c.display_name = string_field(body, "name");
    if (body.contains("emails")) c.emails = string_list(body, "emails");
    c.add_emails = string_list(body, "add_emails");
    c.remove_emails = string_list(body, "remove_emails");
    if (body.contains("role")) c.role = string_field(body, "role");
    if (body.contains("quota_bytes")) c.quota_bytes = body["quota_bytes"].get<int64_t>();
    c.add_groups = string_list(body, "add_groups");
    c.remove_groups = string_list(body, "remove_groups");
    return Response::json(member_json(store.update_member(q.param("handle"), c)));
  }, "change name, emails, role, quota, groups");

  r.add_blocking("PUT", "/v1/members/{handle}/password", run, [&store, &auth](const Request& q) {
    const auto handle = q.param("handle");
    store.get_member(handle);  // 404 before spending a hash on nobody
    const auto chosen = password_from(q.json(), auth);
    store.set_password(handle, chosen.hash);
    auth.remember_scram(handle, chosen.plain);
    json j = {{"handle", handle}, {"changed", true}};
    if (!chosen.generated.empty()) j["password"] = chosen.generated;
    return Response::json(j);
  }, "set the account password ({password} or {generate_password:true})");

  r.add_blocking("POST", "/v1/members/{handle}/suspend", run, [&store](const Request& q) {
    return Response::json(member_json(store.set_status(q.param("handle"), "suspended", string_field(q.json(), "reason"))));
  }, "suspend: refused by every protocol, sessions end");

  r.add_blocking("POST", "/v1/members/{handle}/reinstate", run, [&store](const Request& q) {
    return Response::json(member_json(store.set_status(q.param("handle"), "active", "")));
  }, "reinstate a suspended member");

  r.add_blocking("DELETE", "/v1/members/{handle}", run, [&store](const Request& q) {
    const bool purge = q.query_value("purge") == "true" || q.query_value("purge") == "1";
    return Response::json(member_json(store.remove_member(q.param("handle"), purge)));
  }, "remove (?purge=true also erases name, addresses, groups)");

  r.add_blocking("POST", "/v1/import/members", run, [&store](const Request& q) {
    const auto rows = members_from_csv(q.body);
    const auto create = q.query_value("create_groups");
    return Response::json({{"imported", store.add_members(rows, create == "true" || create == "1")}});
  }, "import CSV: every row or none (?create_groups=true makes missing groups)");

  r.add_blocking("GET", "/v1/export/members", run, [&store](const Request& q) {
    const auto format = q.query_value("format", "json");
    const auto members = store.list_members(q.query_value("status"), "");
    if (format == "csv") return Response::bytes(200, members_to_csv(members), "text/csv; charset=utf-8");
    if (format != "json") throw Error(errc::kBadFormat, "format is csv or json", 400);
    return Response::json(members_json(members));
  }, "export all members (?format=csv|json)");

  r.add_blocking("GET", "/v1/groups", run, [&store](const Request&) {
    auto list = json::array();
    for (const auto& g : store.list_groups())
      list.push_back({{"name", g.name}, {"description", g.description},
                      {"parent", g.parent.empty() ? json(nullptr) : json(g.parent)},
                      {"direct_members", g.direct_members}, {"created_at", iso8601(g.created_at)}});
    return Response::json(list);
  }, "list groups");

  r.add_blocking("POST", "/v1/groups", run, [&store](const Request& q) {
    const auto body = q.json();
    const auto g = store.add_group(string_field(body, "name"), string_field(body, "parent"), string_field(body, "description"));
    return Response::json({{"name", g.name}, {"parent", g.parent.empty() ? json(nullptr) : json(g.parent)},
                           {"description", g.description}}, 201);
  }, "create a group ({name, parent, description})");

  r.add_blocking("DELETE", "/v1/groups/{name}", run, [&store](const Request& q) {
    store.remove_group(q.param("name"));
    return Response::json({{"removed", q.param("name")}});
  }, "remove a group without subgroups");

  r.add_blocking("GET", "/v1/groups/{name}/members", run, [&store](const Request& q) {
    const bool direct = q.query_value("direct") == "true" || q.query_value("direct") == "1";
    return Response::json(members_json(store.group_members(q.param("name"), direct)));
  }, "members of a group and its subgroups (?direct=true: only its own)");

  r.add_blocking("GET", "/v1/members/{handle}/app-passwords", run, [&store](const Request& q) {
    auto list = json::array();
    for (const auto& p : store.list_app_passwords(q.param("handle"))) list.push_back(app_password_json(p));
    return Response::json(list);
  }, "a member's app passwords (never the secrets)");

  r.add_blocking("POST", "/v1/members/{handle}/app-passwords", run, [&store](const Request& q) {
    const auto body = q.json();
    const auto scopes = auth::parse_scopes(string_field(body, "scopes"));
    const auto secret = auth::make_app_password();
    auto j = app_password_json(store.add_app_password(q.param("handle"), string_field(body, "label"), secret.digest, scopes));
    j["password"] = secret.secret;  // shown once
    return Response::json(j, 201);
  }, "create an app password ({label, scopes}); the secret is in this answer only");

  r.add_blocking("DELETE", "/v1/members/{handle}/app-passwords/{label}", run, [&store](const Request& q) {
    store.revoke_app_password(q.param("handle"), q.param("label"));
    return Response::json({{"revoked", q.param("label")}});
  }, "revoke an app password; sessions using it end");

  r.add_blocking("POST", "/v1/auth/verify", run, [&auth](const Request& q) {
    const auto body = q.json();
    return auth.verify(string_field(body, "user"), string_field(body, "password"), string_field(body, "protocol"),
                       string_field(body, "source"));
  }, "verify a login ({user, password, protocol, source})");
  r.add_blocking("POST", "/v1/auth/token", run, [&auth](const Request& q) {
    const auto body = q.json();
    return auth.verify_token(string_field(body, "token"), string_field(body, "protocol"), string_field(body, "source"));
  }, "verify an app password used as a Bearer token ({token, protocol, source})");
  r.add_blocking("POST", "/v1/auth/scram", run, [&auth](const Request& q) {
    const auto body = q.json();
    return auth.scram_secrets(string_field(body, "user"), string_field(body, "source"));
  }, "SCRAM-SHA-256 secrets to check a login with ({user, source}); throttled");
  r.add_blocking("POST", "/v1/auth/scram/outcome", run, [&auth](const Request& q) {
    const auto body = q.json();
    return auth.scram_outcome(string_field(body, "user"), string_field(body, "protocol"), string_field(body, "source"),
                              body.value("proved", false));
  }, "the end of a SCRAM login ({user, protocol, source, proved}): the member, or why not");

  r.add_blocking("GET", "/v1/resolve", run, [&store](const Request& q) {
    auto [kind, members] = store.resolve_address(q.query_value("address"), q.query_value("local"));
    auto list = json::array();
    for (const auto& m : members)
      list.push_back({{"handle", m.handle}, {"status", m.status}, {"quota_bytes", m.quota_bytes}});
    return Response::json({{"kind", kind}, {"members", list}});
  }, "who mail to ?address= (local part ?local=) reaches: a member, a group's members, or none");

  r.add_blocking("GET", "/v1/audit", run, [&store](const Request& q) {
    const int limit = std::clamp(std::atoi(q.query_value("limit", "100").c_str()), 1, 10000);
    auto list = json::array();
    for (const auto& e : store.audit(q.query_value("handle"), limit))
      list.push_back({{"at", iso8601(e.at)}, {"handle", e.handle}, {"protocol", e.protocol}, {"source", e.source},
                      {"outcome", e.outcome}, {"credential", e.credential}});
    return Response::json(list);
  }, "the login audit log, newest first (?handle=, ?limit=)");

  r.add_async("GET", "/v1/events", [&feed](const Request& q, control::Reply reply) {
    const auto since = std::strtoll(q.query_value("since", "0").c_str(), nullptr, 10);
    const int limit = std::clamp(std::atoi(q.query_value("limit", "1000").c_str()), 1, 10000);
    const int timeout_ms = std::clamp(std::atoi(q.query_value("timeout_ms", "25000").c_str()), 0, 60000);
    feed.wait(since, limit, std::chrono::milliseconds(timeout_ms), std::move(reply));
  }, "change feed after ?since=N, long-polled up to ?timeout_ms=");
}

}  // namespace coop::member
