// What the client-server API's route modules (workers/room/api/*.cpp) share: the API's state,
// its helpers, and the table row each module describes its routes with.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <variant>

#include "common/blob_store.h"
#include "common/http/router.h"
#include "workers/room/client_api.h"
#include "workers/room/store/room_store.h"

namespace coop::auth {
class ThrottledError;
}

namespace coop::room {

// "Calculating the display name for a room": clients name an unnamed room from its first
// members, this many (/sync's summary, sliding sync's heroes).
inline constexpr int kHeroes = 5;

// A /sync long-poll parked until there is news or its timeout.
struct Waiter {
  std::string user_id;
  std::string device_id;
  std::set<std::string> rooms;  // joined or invited when it parked: whose changes wake it
  // How the answer is built: (body, has news), told whether this is the last try, when
  // whatever it has is the answer.
  std::function<std::pair<nlohmann::json, bool>(bool last)> build;
  // The answer when coop-room stops while it is parked: "nothing new" at the position the
  // client already holds.
  nlohmann::json on_close;
  http::Reply reply;
  std::chrono::steady_clock::time_point deadline;
  std::atomic<bool> answered{false};
};

class UrlPreviewer;
struct JitsiSettings;

struct ClientApi::Impl : std::enable_shared_from_this<ClientApi::Impl> {
  Impl(WorkerRuntime& runtime, RoomStore& store, KeyStore& keys);
  ~Impl();

  WorkerRuntime& runtime;
  RoomStore& store;
  KeyStore& keys;
  http::Runner run;
  BlobStore blobs;  // media
  std::unique_ptr<UrlPreviewer> previewer;  // null when URL previews are off
  std::shared_ptr<const JitsiSettings> jitsi;  // [workers.room.jitsi], read once at start
  std::string server() const;
  // "@localpart:<this server>": a user of this homeserver (federation reaches the others).
  bool is_local_user(const std::string& user_id) const;

  // typing: room -> user -> expiry; and the "other" stream position of the room's last change
  std::mutex typing_mutex;
  std::map<std::string, std::map<std::string, std::chrono::steady_clock::time_point>> typing;
  std::map<std::string, int64_t> typing_changed;

  // Federation EDUs (Server-Server API "EDUs"): an ephemeral event of one of our members for
  // the other servers in the room (typing, public read receipts), handed to coop-federate
  // without holding up the client; and those other servers sent us, applied once their
  // sender checks out (api/events.cpp).
  void send_edu(const std::string& room_id, nlohmann::json edu);
  // A request to coop-federate's control API; its error, if any, becomes the client's (a
  // Matrix errcode from it passes through; 502 when federation is not running).
  nlohmann::json federate(const std::string& path, const nlohmann::json& body, std::chrono::seconds timeout);
  void apply_remote_edus(const std::string& origin, const nlohmann::json& edus);

  // Set by the worker: invites a member who left one of coop's Spaces back into it when they
  // still belong there (SpaceSync::readmit).
  std::function<void(const std::string& room_id, const std::string& user_id)> readmit;

  // Password changes made over Matrix (POST /account/password), until the registry's event
  // for them arrives: the devices the change keeps logged in (all of them with
  // logout_devices false).
  struct PasswordChange {
    std::set<std::string> keep;
    bool keep_all = false;
    std::chrono::steady_clock::time_point until;
  };
  std::mutex password_changes_mutex;
  std::map<std::string, PasswordChange> password_changes;

  std::mutex waiters_mutex;
  std::list<std::shared_ptr<Waiter>> waiters;

  // ---- helpers (client_api.cpp) ----

  // Where clients reach this homeserver: `[workers.room] public_url` (the TLS proxy's address
  // in production); without it, the address the request came to, which is right on a test
  // shard. Never the Host header alone when an admin named the address: a client must not be
  // sent wherever a forged header points.
  std::string public_base_url(const http::Request& q);
  Session authenticate(const http::Request& q);
  std::string token_of(const http::Request& q);
  std::string resolve_room(const std::string& id_or_alias);
  void require_joined(const std::string& room_id, const std::string& user_id);
  // Reading history: members, and those who left or were banned (history visibility then
  // stops them at the moment they left).
  void require_reader(const std::string& room_id, const std::string& user_id);
  // A member's power level and a named level ("redact", "state_default") in a room.
  std::pair<int64_t, int64_t> power(const std::string& room_id, const std::string& user_id, const char* level,
                                    int64_t level_default);
  std::string display_name(const std::string& user_id);
  nlohmann::json client_event(const nlohmann::json& event);
  // An event of a timeline as `viewer` sees it: client_event, with unsigned.transaction_id when
  // the viewer's device sent it, and the bundled aggregations of its relations
  // (Client-Server API "Aggregations of child events": the latest edit, the thread summary,
  // references).
  nlohmann::json timeline_event(const StoredEvent& e, const Session& viewer);
  http::Response error(int status, const std::string& code, const std::string& message);
  // Client-Server API "User-interactive authentication" with m.login.password: nullopt when
  // the body's auth carries the member's password, else the 401 that asks for it.
  std::optional<http::Response> password_again(const http::Request& q, const Session& s, const std::string& uia_session);
  // Devices go with their keys; their owner's peers hear of it in device_lists.
  void remove_devices(const std::string& user_id, const std::vector<std::string>& devices);
  // Keys of devices room.db no longer has (a crash between the two stores' deletes).
  void forget_orphan_keys();

  // ---- keys (api/keys.cpp) ----

  // Client-Server API "Tracking the device list for a user": users (sharing a room with
  // user_id) whose devices changed between two positions, and those who no longer share one.
  std::pair<std::set<std::string>, std::set<std::string>> device_list_delta(const std::string& user_id,
                                                                          const StreamPosition& from,
                                                                          const StreamPosition& to);

  // Server-Server API "End-to-End Encryption" and "Device Management", as coop-federate asks
  // once it has checked the requesting server: our users' keys (POST /user/keys/query with
  // {user: [devices]}), one-time keys claimed ({user: {device: algorithm}}), and a user's
  // device list (GET /user/devices/{userId}).
  nlohmann::json keys_for_server(const nlohmann::json& wanted);
  nlohmann::json claims_for_server(const nlohmann::json& wanted);
  nlohmann::json devices_for_server(const std::string& user_id);
  // Our members' device and cross-signing key changes go to every server that shares a room
  // with them (m.device_list_update, m.signing_key_update), through coop-federate's durable
  // queue; a cursor in e2ee.db remembers how far. Throws when coop-federate does not take them.
  void federate_device_changes();
  // A member joined a room: the other servers in it hear of their devices now (an
  // m.device_list_update each), not at the next change. Runs off the request's thread.
  void announce_devices(const std::string& user_id, const std::string& room_id);

  // ---- sync (api/sync.cpp) ----

  nlohmann::json sync_filter(const http::Request& q, const std::string& user_id);
  static int timeline_limit(const nlohmann::json& filter);
  // Client-Server API "Lazy-loading room members": only the members the timeline needs.
  static bool lazy_members(const nlohmann::json& filter);
  // (unread_notifications, unread_thread_notifications) of a room for a member.
  std::pair<nlohmann::json, nlohmann::json> unread_counts(const std::string& room_id, const std::string& user_id,
                                                          bool by_thread);
  // Builds a sync response; empty() is true when an incremental sync has nothing new.
  std::pair<nlohmann::json, bool> build_sync(const Session& session, const http::Request& q);
  // "Stripped state" of a room the user is invited to or knocks on: enough to show what it is,
  // read without its members (the invitation's own, for a room of another server).
  nlohmann::json stripped_state(const std::string& room_id, const std::string& user_id,
                                const std::optional<RoomStore::RemoteInvite>& remote_invite);
  // The positions a sync answers up to, and typing as it was at that moment.
  struct SyncMoment {
    StreamPosition now;
    std::map<std::string, int64_t> typing_changed;
    std::map<std::string, std::map<std::string, std::chrono::steady_clock::time_point>> typing;
  };
  SyncMoment sync_moment();
  // Simplified sliding sync (MSC4186, api/sliding_sync.cpp): the answer to one request body,
  // and whether it has news; the new position is stored only when `commit`.
  std::pair<nlohmann::json, bool> build_sliding_sync(const Session& session, const nlohmann::json& body,
                                                     const std::string& pos, bool commit);
  // The user's rooms for sliding sync's lists as of an events position, kept between answers
  // and brought up to date from the rooms that had events since (a wake-up for one message
  // reads that room, not every room the member is in).
  std::vector<RoomStore::ListedRoom> room_listing(const std::string& user_id, int64_t up_to);
  struct Listing {
    int64_t at = 0, memberships = 0;
    std::vector<RoomStore::ListedRoom> rooms;
  };
  std::mutex listings_mutex;
  std::map<std::string, Listing> listings;  // by user
  // A long-poll of `session` to park: woken by changes to its joined and invited rooms,
  // answered by `reply` with what `build` makes when there is news or after timeout_ms.
  std::shared_ptr<Waiter> new_waiter(const Session& session, http::Reply reply, int timeout_ms,
                                     std::function<std::pair<nlohmann::json, bool>(bool last)> build,
                                     nlohmann::json on_close);
  void park(const std::shared_ptr<Waiter>& waiter);
  // Re-runs a parked sync; answers it when there is news or its time is up.
  void retry(const std::shared_ptr<Waiter>& waiter, bool final);
  // The registry ended this user's sessions: parked syncs hear so now, not at their timeout.
  void end_waiters(const std::string& user_id, const std::set<std::string>& devices = {});  // {}: all of them
  // Wakes the parked syncs a change concerns: members of the changed rooms, the users named,
  // and those who share a room with a user whose keys changed. Bursts of changes coalesce
  // into one pass over the waiters: a change during a pass schedules exactly one more.
  void notify(const StoreChange& change);
  std::mutex changes_mutex;
  StoreChange changes;  // what the next pass wakes for
  bool pass_queued = false;

  // ---- routes ----

  void add_routes(http::Router& r);
};

// ---- answers and errors (client_api.cpp) ----

// CORS on every /_matrix answer, as the Client-Server API "Web Browser Clients" section asks.
http::Response cors(http::Response response);
http::Response ok(const nlohmann::json& body);
// Client-Server API "Rate limiting": 429 M_LIMIT_EXCEEDED with retry_after_ms.
http::Response rate_limited(const auth::ThrottledError& e);
[[noreturn]] void fail(int status, const std::string& errcode, const std::string& message);
// The number in a page token this server handed out (digits only, at most max_digits);
// otherwise 400 M_INVALID_PARAM naming the parameter.
int64_t page_token(const std::string& text, const char* parameter, std::size_t max_digits = 9);
std::string localpart(const std::string& user_id);

// ---- the route table ----

// A handler that answers at once (blocking or inline), and one that answers later (long-poll).
using ClientHandler = http::Response (*)(ClientApi::Impl& api, const http::Request& q);
using LongPollHandler = void (*)(ClientApi::Impl& api, const http::Request& q, http::Reply reply);

struct ClientRoute {
  enum class Mount {
    kV3AndR0,  // path is below /_matrix/client/v3 and /_matrix/client/r0, registered under both
    kExact,    // path is registered as written (/_matrix/media/..., /_matrix/client/v1/..., /.well-known)
  };
  enum class Run {
    kBlocking,  // on the blocking pool: SQLite, password checks, the registry's socket
    kInline,    // on the connection's strand: answers that touch no disk and no socket
    kLongPoll,  // answers later, from anywhere (/sync)
  };
  const char* method;
  const char* path;
  Mount mount;
  Run run;
  std::variant<ClientHandler, LongPollHandler> handler;  // LongPollHandler exactly when run is kLongPoll
  const char* summary;
};

// One table per spec module, registered in client_api.cpp from one list. Each is constinit
// where it is defined, so the list can be read at any time.
namespace api {
extern const std::span<const ClientRoute> kAccountRoutes;      // discovery, login, devices (api/account.cpp)
extern const std::span<const ClientRoute> kSyncRoutes;         // /sync and filters (api/sync.cpp)
extern const std::span<const ClientRoute> kSlidingSyncRoutes;  // MSC4186 (api/sliding_sync.cpp)
extern const std::span<const ClientRoute> kRoomRoutes;         // rooms, membership, state, aliases (api/rooms.cpp)
extern const std::span<const ClientRoute> kEventRoutes;        // events, relations, receipts, typing (api/events.cpp)
extern const std::span<const ClientRoute> kAccountDataRoutes;  // account data and tags (api/account_data.cpp)
extern const std::span<const ClientRoute> kPushRoutes;         // push rules (api/push.cpp)
extern const std::span<const ClientRoute> kProfileRoutes;      // profiles and the user directory (api/profile.cpp)
extern const std::span<const ClientRoute> kSpaceRoutes;        // the Space hierarchy (api/spaces.cpp)
extern const std::span<const ClientRoute> kMediaRoutes;        // media repository (api/media.cpp)
extern const std::span<const ClientRoute> kKeyRoutes;          // device and cross-signing keys (api/keys.cpp)
extern const std::span<const ClientRoute> kToDeviceRoutes;     // send-to-device messaging (api/to_device.cpp)
extern const std::span<const ClientRoute> kKeyBackupRoutes;    // server-side key backups (api/key_backup.cpp)
extern const std::span<const ClientRoute> kVoipRoutes;         // TURN credentials (api/voip.cpp)
extern const std::span<const ClientRoute> kJitsiRoutes;        // Jitsi calls, OpenID userinfo (api/jitsi.cpp)
extern const std::span<const ClientRoute> kSearchRoutes;       // server-side search (api/search.cpp)
}  // namespace api

}  // namespace coop::room
