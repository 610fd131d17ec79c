// POST /v1/auth/verify: every protocol's logins are checked here, against the registry,
// with throttling and an audit trail (issue #3).
#pragma once

#include <string>

#include "common/auth/password.h"
#include "common/auth/throttle.h"
#include "common/control/http.h"

namespace coop::member {

class MemberStore;

class AuthService {
 public:
  AuthService(MemberStore& store, auth::HashParams params, auth::ThrottleLimits limits);

  // user: a handle or one of the member's addresses; protocol: mail, dav, room...; source:
  // the client's address. 200 with the member, 401 bad_credentials, 403 member_suspended or
  // out_of_scope, 429 throttled with retry_after_ms. Blocks for one password hash.
  control::Response verify(const std::string& user, const std::string& password, const std::string& protocol,
                           const std::string& source);

  std::string hash(std::string_view password) const;
  const auth::HashParams& params() const { return params_; }

 private:
  MemberStore& store_;
  auth::HashParams params_;
  auth::Throttle throttle_;
  std::string dummy_hash_;  // verified against for unknown users, so timing does not tell
};

}  // namespace coop::member
