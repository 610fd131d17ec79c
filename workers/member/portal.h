// The member portal: a small web application on coop-member's `portal` listener, where a
// member signs in with their password and manages their account without asking an admin:
// password, app passwords (shown once, with a QR code), recent logins, every client setting,
// their takeout; admins also see the members and suspend or reinstate them.
//
// Server-rendered HTML, no script and nothing from elsewhere (Content-Security-Policy
// default-src 'none'). Sessions are in memory (a restart of coop-member signs everyone out),
// 256-bit tokens in a cookie that is HttpOnly, SameSite=Strict and Secure on https; every form
// carries the session's CSRF token; a member who is suspended, removed or whose password
// changes loses the session at the next request. Passwords are never logged.
#pragma once

#include <memory>

namespace coop {
class WorkerRuntime;
}

namespace coop::member {

class MemberStore;
class AuthService;

class Portal {
 public:
  // Starts nothing when coop.toml has no [workers.member.listen] portal.
  Portal(WorkerRuntime& runtime, MemberStore& store, AuthService& auth);
  ~Portal();
  Portal(const Portal&) = delete;
  Portal& operator=(const Portal&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::member
