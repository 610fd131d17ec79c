// POST /v1/auth/verify: every protocol's logins are checked here, against the registry,
// with throttling and an audit trail (issue #3).
#pragma once

#include <string>

#include "common/auth/password.h"
#include "common/auth/throttle.h"
#include "common/control/http.h"

namespace coop::member {

class MemberStore;
struct LoginRecord;
struct AuditEntry;

class AuthService {
 public:
  AuthService(MemberStore& store, auth::HashParams params, auth::ThrottleLimits limits);

  // user: a handle or one of the member's addresses; protocol: mail, dav, room...; source:
  // the client's address. 200 with the member, 401 bad_credentials, 403 member_suspended or
  // out_of_scope, 429 throttled with retry_after_ms. Blocks for one password hash.
  control::Response verify(const std::string& user, const std::string& password, const std::string& protocol,
                           const std::string& source);

  // RFC 6750: an app password given alone, as a Bearer token (for HTTP APIs such as JMAP):
  // the member whose app password it is, when its scopes open protocol. Answers as verify()
  // does; throttled by the client's address.
  control::Response verify_token(const std::string& token, const std::string& protocol, const std::string& source);

  std::string hash(std::string_view password) const;
  // Derives and keeps the SCRAM-SHA-256 secrets of a member's account password.
  void remember_scram(const std::string& handle, std::string_view password);
  // SCRAM (RFC 5802) for IMAP: the secrets to check a member's proof with (an unknown user
  // gets steady fake ones), then the outcome, throttled and audited as verify() is.
  control::Response scram_secrets(const std::string& user, const std::string& source);
  control::Response scram_outcome(const std::string& user, const std::string& protocol, const std::string& source,
                                  bool proved);
  const auth::HashParams& params() const { return params_; }

 private:
  control::Response admitted(const LoginRecord& record, AuditEntry audit, const std::string& source);
  control::Response verified(const std::string& handle, const std::string& credential);
  MemberStore& store_;
  auth::HashParams params_;
  auth::Throttle throttle_;
  std::string dummy_hash_;  // verified against for unknown users, so timing does not tell
};

}  // namespace coop::member
