// The member worker's control API: thin handlers over the store, the auth service and the feed.
#pragma once

namespace coop {
class WorkerRuntime;
}

namespace coop::member {

class MemberStore;
class AuthService;
class EventFeed;

void add_member_routes(WorkerRuntime& runtime, MemberStore& store, AuthService& auth, EventFeed& feed);

}  // namespace coop::member
