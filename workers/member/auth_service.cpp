// Credential verification: account password or a scoped app password, throttled and audited.
#include "workers/member/auth_service.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/auth/app_password.h"
#include "common/error.h"
#include "common/text.h"
#include "workers/member/store/member_store.h"

namespace coop::member {

namespace {

control::Response refuse(int status, const std::string& code, const std::string& message) {
  return control::Response::error(code, message, status);
}

}  // namespace

AuthService::AuthService(MemberStore& store, auth::HashParams params, auth::ThrottleLimits limits)
    : store_(store), params_(params), throttle_(limits), dummy_hash_(auth::hash_password("coop-dummy-password", params)) {}

std::string AuthService::hash(std::string_view password) const { return auth::hash_password(password, params_); }

control::Response AuthService::verify(const std::string& user_in, const std::string& password,
                                      const std::string& protocol, const std::string& source) {
  // "portal": the member portal, which only the member's own password opens (no app
  // password has it among its scopes).
  if (protocol != "portal" && !auth::parse_protocol(protocol))
    throw Error(errc::kBadProtocol, "unknown protocol '" + protocol + "' (" + auth::scope_names() + ")", 400);
  const std::string user = ascii_lower(user_in);

  auto record = store_.find_login(user);
  const std::string key = record ? record->handle : user;
  AuditEntry audit{0, key, protocol, source, "", ""};

  if (const auto wait = throttle_.retry_after(key, source); wait.count() > 0) {
    audit.outcome = "throttled";
    store_.record_audit(audit);
    nlohmann::json body;
    body["error"] = {{"code", "throttled"},
                     {"message", "too many failed logins; try again in " + std::to_string((wait.count() + 999) / 1000) + " s"},
                     {"retry_after_ms", wait.count()}};
    return control::Response::bytes(429, body.dump(), "application/json");
  }

  if (!record) {
    auth::verify_password(dummy_hash_, password);
    throttle_.record_failure(key, source);
    audit.outcome = "unknown_user";
    store_.record_audit(audit);
    return refuse(401, errc::kBadCredentials, "wrong user name or password");
  }

  std::string credential;
  bool out_of_scope = false;
  if (!record->password_hash.empty() && auth::verify_password(record->password_hash, password)) {
    credential = "password";
  } else {
    const auto digest = auth::app_password_digest(password);
    for (const auto& app : record->app_passwords) {
      if (!auth::digest_equals(app.digest, digest)) continue;
      if (auth::scope_allows(app.scopes, protocol)) {
        credential = "app:" + app.label;
        store_.touch_app_password(app.id);
      } else {
        out_of_scope = true;
        audit.credential = "app:" + app.label;
      }
      break;
    }
    if (record->password_hash.empty() && credential.empty() && !out_of_scope)
      auth::verify_password(dummy_hash_, password);  // same cost as a member with a password
  }

  if (out_of_scope) {
    audit.outcome = "out_of_scope";
    store_.record_audit(audit);
    return refuse(403, errc::kOutOfScope, "this app password is not valid for " + protocol);
  }
  if (credential.empty()) {
    throttle_.record_failure(key, source);
    audit.outcome = "bad_credentials";
    store_.record_audit(audit);
    return refuse(401, errc::kBadCredentials, "wrong user name or password");
  }
  audit.credential = credential;
  if (record->status != "active") {
    // Said only to someone who knew the password: a guesser learns nothing from it.
    audit.outcome = record->status;
    store_.record_audit(audit);
    return refuse(403, record->status == "suspended" ? "member_suspended" : "member_removed",
                  "the account of " + record->handle + " is " + record->status);
  }
  throttle_.record_success(key, source);
  audit.outcome = "ok";
  store_.record_audit(audit);
  const auto member = store_.get_member(record->handle);
  return control::Response::json({{"handle", member.handle},
                                  {"name", member.display_name},
                                  {"role", member.role},
                                  {"groups", store_.effective_groups(member.handle)},
                                  {"emails", member.emails},
                                  {"credential", credential}});
}

}  // namespace coop::member
