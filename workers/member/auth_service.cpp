// Credential verification: account password or a scoped app password, throttled and audited.
#include "workers/member/auth_service.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <gsasl.h>

#include <algorithm>

#include "common/auth/app_password.h"
#include "common/base64.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/text.h"
#include "workers/member/store/member_store.h"

namespace coop::member {

namespace {

control::Response refuse(int status, const std::string& code, const std::string& message) {
  return control::Response::error(code, message, status);
}

// RFC 7677: SCRAM-SHA-256, with the iteration count it recommends at least.
constexpr unsigned kScramIterations = 4096;

control::Response throttled(std::chrono::milliseconds wait) {
  nlohmann::json body;
  body["error"] = {{"code", "throttled"},
                   {"message", "too many failed logins; try again in " + std::to_string((wait.count() + 999) / 1000) + " s"},
                   {"retry_after_ms", wait.count()}};
  return control::Response::bytes(429, body.dump(), "application/json");
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
    return throttled(wait);
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
  auto answer = admitted(*record, audit, source);
  // Members from before SCRAM get its secrets at their next login with the password.
  if (answer.status == 200 && credential == "password" && !store_.scram(record->handle)) remember_scram(record->handle, password);
  return answer;
}

control::Response AuthService::verify_token(const std::string& token, const std::string& protocol, const std::string& source) {
  if (!auth::parse_protocol(protocol))
    throw Error(errc::kBadProtocol, "unknown protocol '" + protocol + "' (" + auth::scope_names() + ")", 400);
  // Guesses are counted against the address they come from only: there is no member to
  // name, and a shared key would let anyone lock every member's tokens out.
  AuditEntry audit{0, "bearer", protocol, source, "", ""};
  if (const auto wait = throttle_.retry_after("", source); wait.count() > 0) {
    audit.outcome = "throttled";
    store_.record_audit(audit);
    return throttled(wait);
  }
  const auto digest = auth::app_password_digest(token);
  const auto record = token.empty() ? std::nullopt : store_.find_login_by_app_password(digest);
  const AppPassword* app = nullptr;
  if (record)
    for (const auto& a : record->app_passwords)
      if (auth::digest_equals(a.digest, digest)) app = &a;
  if (!record || !app) {
    throttle_.record_failure("", source);
    audit.outcome = "bad_credentials";
    store_.record_audit(audit);
    return refuse(401, errc::kBadCredentials, "unknown or revoked token");
  }
  audit.handle = record->handle;
  audit.credential = "app:" + app->label;
  if (!auth::scope_allows(app->scopes, protocol)) {
    audit.outcome = "out_of_scope";
    store_.record_audit(audit);
    return refuse(403, errc::kOutOfScope, "this app password is not valid for " + protocol);
  }
  store_.touch_app_password(app->id);
  return admitted(*record, audit, source);
}

// The credential was right: the member in, unless suspended or removed (said only to someone
// who knew the password, so a guesser learns nothing from it).
control::Response AuthService::admitted(const LoginRecord& record, AuditEntry audit, const std::string& source) {
  if (record.status != "active") {
    audit.outcome = record.status;
    store_.record_audit(audit);
    return refuse(403, record.status == "suspended" ? "member_suspended" : "member_removed",
                  "the account of " + record.handle + " is " + record.status);
  }
  throttle_.record_success(record.handle, source);
  audit.outcome = "ok";
  store_.record_audit(audit);
  return verified(record.handle, audit.credential);
}

control::Response AuthService::verified(const std::string& handle, const std::string& credential) {
  const auto member = store_.get_member(handle);
  return control::Response::json({{"handle", member.handle},
                                  {"name", member.display_name},
                                  {"role", member.role},
                                  {"groups", store_.effective_groups(member.handle)},
                                  {"emails", member.emails},
                                  {"credential", credential}});
}

void AuthService::remember_scram(const std::string& handle, std::string_view password) {
  // RFC 5802 2.2: Hi() over the SASLprep'd password (RFC 4013), as the client computes it.
  char* prepared = nullptr;
  const std::string text(password);
  const bool prepped = gsasl_saslprep(text.c_str(), GSASL_ALLOW_UNASSIGNED, &prepared, nullptr) == GSASL_OK;
  char salt[16];
  if (gsasl_nonce(salt, sizeof salt) != GSASL_OK) throw Error(errc::kInternal, "no randomness for a SCRAM salt", 500);
  char salted[GSASL_HASH_MAX_SIZE], client_key[GSASL_HASH_MAX_SIZE], server_key[GSASL_HASH_MAX_SIZE], stored_key[GSASL_HASH_MAX_SIZE];
  const int rc = gsasl_scram_secrets_from_password(GSASL_HASH_SHA256, prepped ? prepared : text.c_str(), kScramIterations, salt,
                                                   sizeof salt, salted, client_key, server_key, stored_key);
  gsasl_free(prepared);
  if (rc != GSASL_OK) throw Error(errc::kInternal, std::string("SCRAM secrets: ") + gsasl_strerror(rc), 500);
  const std::size_t n = gsasl_hash_length(GSASL_HASH_SHA256);
  store_.set_scram(handle, {static_cast<int>(kScramIterations), base64_encode(std::string_view(salt, sizeof salt)),
                            base64_encode(std::string_view(stored_key, n)), base64_encode(std::string_view(server_key, n))});
}

control::Response AuthService::scram_secrets(const std::string& user_in, const std::string& source) {
  const std::string user = ascii_lower(user_in);
  const auto record = store_.find_login(user);
  const std::string key = record ? record->handle : user;
  if (const auto wait = throttle_.retry_after(key, source); wait.count() > 0) {
    store_.record_audit({0, key, "mail", source, "throttled", ""});
    return throttled(wait);
  }
  if (record)
    if (const auto secrets = store_.scram(record->handle))
      return control::Response::json({{"known", true}, {"handle", record->handle}, {"iterations", secrets->iterations},
                                      {"salt", secrets->salt}, {"stored_key", secrets->stored_key},
                                      {"server_key", secrets->server_key}});
  // RFC 5802 9: an unknown user gets a salt as steady as a real one's and keys nothing
  // matches, so the exchange fails only at its end and tells a guesser nothing.
  const auto fake = sha256_hex("coop-scram:" + dummy_hash_ + ":" + user);
  return control::Response::json({{"known", false}, {"handle", user}, {"iterations", kScramIterations},
                                  {"salt", base64_encode(fake.substr(0, 16))}, {"stored_key", base64_encode(fake.substr(0, 32))},
                                  {"server_key", base64_encode(fake.substr(32, 32))}});
}

control::Response AuthService::scram_outcome(const std::string& user_in, const std::string& protocol,
                                             const std::string& source, bool proved) {
  const std::string user = ascii_lower(user_in);
  const auto record = store_.find_login(user);
  const std::string key = record ? record->handle : user;
  AuditEntry audit{0, key, protocol, source, "", "password"};
  if (!proved || !record) {
    throttle_.record_failure(key, source);
    audit.outcome = record ? "bad_credentials" : "unknown_user";
    store_.record_audit(audit);
    return refuse(401, errc::kBadCredentials, "wrong user name or password");
  }
  return admitted(*record, audit, source);
}

}  // namespace coop::member
