// room.db: the Matrix event store of this homeserver (rooms, events in stream order, current
// state, memberships) and its client-side tables (devices, tokens, transaction ids, account
// data, receipts). The federation worker will share this store.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "workers/room/store/store_change.h"

namespace coop::sqlite {
class Database;
}
namespace coop::matrix {
class SigningKey;
}

namespace coop::room {

struct StoredEvent {
  int64_t stream = 0;
  nlohmann::json event;  // the full event as clients see it (event_id included)
};

struct Session {
  std::string user_id;
  std::string device_id;
};

// Allocated positions of the sync token: events, and everything else (account data, receipts).
// The third, keys, is KeyStore's (device list changes and to-device messages); tokens from
// before it existed have two parts and read as keys 0.
struct StreamPosition {
  int64_t events = 0;
  int64_t other = 0;
  int64_t keys = 0;
  std::string token() const {
    return "s" + std::to_string(events) + "_" + std::to_string(other) + "_" + std::to_string(keys);
  }
  static std::optional<StreamPosition> parse(const std::string& token);
};

// Client-Server API "History visibility": which events of one room one user may read. Built
// once per request from the user's membership events and the room's history_visibility
// changes, then asked per event.
class HistoryVisibility {
 public:
  HistoryVisibility(std::string user_id, std::vector<std::pair<int64_t, std::string>> memberships,
                    std::vector<std::pair<int64_t, std::string>> visibilities)
      : user_id_(std::move(user_id)), memberships_(std::move(memberships)), visibilities_(std::move(visibilities)) {}
  bool allows(const StoredEvent& e) const;

 private:
  std::string user_id_;
  std::vector<std::pair<int64_t, std::string>> memberships_;   // (stream, membership), in order
  std::vector<std::pair<int64_t, std::string>> visibilities_;  // (stream, history_visibility), in order
};

class RoomStore {
 public:
  RoomStore(const std::filesystem::path& file, std::string server_name, const matrix::SigningKey& key);
  ~RoomStore();

  const std::string& server_name() const { return server_name_; }
  // The version /createRoom uses when the client names none ("12" unless `[workers.room]
  // default_room_version` says otherwise); throws for a version this server cannot create.
  void set_default_room_version(const std::string& version);
  const std::string& default_room_version() const { return default_room_version_; }
  // Called after every commit that clients may want to see, with what it changed (sync wakes up).
  void on_change(std::function<void(const StoreChange&)> callback);

  // ---- sessions ----
  // A new access token (returned once; only its hash is kept) for a device; returns
  // {token, device_id}, the device id generated when none was asked for.
  std::pair<std::string, std::string> create_session(const std::string& user_id, const std::string& device_id,
                                                     const std::string& display_name);
  // OpenID tokens: made for a member, answered with their user ID until they expire.
  std::string create_openid_token(const std::string& user_id, int64_t lifetime_seconds);
  std::optional<std::string> openid_user(const std::string& token);
  // Login tokens (m.login.token): one a signed-in member makes for a new device, and the
  // member it names, used up by the asking (nullopt when unknown, used or expired).
  std::string create_login_token(const std::string& user_id, int64_t lifetime_ms);
  std::optional<std::string> take_login_token(const std::string& token);
  // (displayname, avatar_url) the member set over Matrix; nullopt where they did not.
  std::pair<std::optional<std::string>, std::optional<std::string>> profile(const std::string& user_id);
  // field is "displayname" or "avatar_url".
  void set_profile_field(const std::string& user_id, const std::string& field, const std::string& value);
  // A position on the "other" stream, for changes kept in memory (typing).
  int64_t allocate_other_position();
  std::optional<Session> session_for(const std::string& access_token);
  void delete_session(const std::string& access_token);
  void delete_sessions(const std::string& user_id);  // logout/all, suspension
  // Every session of the user but those of `keep`; the devices it removed.
  std::vector<std::string> delete_sessions_except(const std::string& user_id, const std::set<std::string>& keep);
  nlohmann::json devices(const std::string& user_id);
  bool rename_device(const std::string& user_id, const std::string& device_id, const std::string& display_name);
  // The device and its access token; false when there is no such device.
  bool delete_device(const std::string& user_id, const std::string& device_id);

  // ---- rooms and events ----
  // Builds, hashes, signs, authorises and stores one event; returns it. coop::Error with a
  // Matrix errcode (M_FORBIDDEN...) when the auth rules refuse it.
  // creator_profile (displayname, avatar_url) goes into the creator's join, as clients show it.
  nlohmann::json create_room(const std::string& creator, const nlohmann::json& request,
                             const nlohmann::json& creator_profile = nlohmann::json::object());
  nlohmann::json send_event(const std::string& room_id, const std::string& sender, const std::string& type,
                            const nlohmann::json& content, const std::optional<std::string>& state_key,
                            const std::string& txn_device = {}, const std::string& txn_id = {});
  std::optional<std::string> event_for_txn(const std::string& user_id, const std::string& device_id,
                                           const std::string& txn_id);
  // (device id, the client's transaction id) of an event sent with one.
  std::optional<std::pair<std::string, std::string>> txn_of(const std::string& event_id);
  std::optional<std::string> room_version(const std::string& room_id);
  std::optional<nlohmann::json> state_event(const std::string& room_id, const std::string& type,
                                            const std::string& state_key);
  // Which state entries a caller wants, by (type, state_key); empty means all. Lazy-loading
  // members skips reading the member events it would drop.
  using StateWanted = std::function<bool(const std::string& type, const std::string& state_key)>;
  std::vector<nlohmann::json> current_state(const std::string& room_id, const StateWanted& wanted = {});
  std::string membership(const std::string& room_id, const std::string& user_id);  // "" when none
  // Rooms where the user's membership is one of these, with the stream position of it.
  std::vector<std::pair<std::string, std::string>> rooms_of(const std::string& user_id);
  // Users who are joined to or invited into a room the user is joined to (the user included):
  // whose device lists the user's clients track.
  std::set<std::string> users_sharing_rooms(const std::string& user_id);
  // The room summary of /sync from the memberships table: joined and invited counts, and up
  // to `heroes` other joined or invited members, in the order they joined.
  struct RoomSummary {
    int64_t joined = 0, invited = 0;
    std::vector<std::string> heroes;
  };
  RoomSummary room_summary(const std::string& room_id, const std::string& user_id, int heroes);
  // Users joined to or invited into one room.
  std::vector<std::string> room_members(const std::string& room_id);
  struct MembershipChange {
    std::string room_id, user_id, membership;
  };
  // Membership events in (after, up_to] of the rooms the user has any membership in.
  std::vector<MembershipChange> membership_changes(const std::string& user_id, int64_t after, int64_t up_to);
  // The rooms the user has any membership in with an event after events_after or a receipt
  // after other_after.
  std::set<std::string> rooms_changed_since(const std::string& user_id, int64_t events_after, int64_t other_after);
  HistoryVisibility history_visibility(const std::string& room_id, const std::string& user_id);
  std::vector<StoredEvent> events_between(const std::string& room_id, int64_t after, int64_t up_to, int limit,
                                          bool backwards);
  // Every room the user has a membership in (not forgotten), for sliding sync's room lists:
  // the membership, its event's position and sender, the room's latest event position, its
  // bump stamp (the latest message-like event, MSC4186) and its type.
  struct ListedRoom {
    std::string room_id, membership, member_sender, room_type;
    std::string member_event_membership;  // the membership its event says (a declined remote invitation's says invite)
    int64_t member_stream = 0, latest = 0, bump = 0;
  };
  std::vector<ListedRoom> listed_rooms(const std::string& user_id, const std::string& only_room = {});
  // What may have moved in a user's room listing since an events position: the rooms with
  // events after it, and how many memberships the user has (a forgotten room changes that).
  struct ListingChanges {
    int64_t memberships = 0;
    std::set<std::string> rooms;
  };
  ListingChanges listing_changes(const std::string& user_id, int64_t after);
  // Sliding sync positions (MSC4186): one a connection (user, device, conn_id) was handed, or
  // nullopt; and a new one after `used` (0: the connection starts afresh), whose ID it returns.
  struct SlidingPosition {
    int64_t id = 0;
    std::string token;     // the StreamPosition it stands for
    nlohmann::json rooms;  // room ID -> events position the room was sent up to
  };
  std::optional<SlidingPosition> sliding_position(const std::string& user_id, const std::string& device_id,
                                                  const std::string& conn_id, int64_t id);
  int64_t save_sliding_position(const std::string& user_id, const std::string& device_id, const std::string& conn_id,
                                int64_t used, const std::string& token, const nlohmann::json& rooms);
  std::optional<StoredEvent> event(const std::string& event_id);
  std::optional<std::string> room_for_alias(const std::string& alias);
  void add_alias(const std::string& alias, const std::string& room_id, const std::string& creator);
  // The room directory: rooms published by their moderators (or created with visibility
  // "public"); not every room with a public join rule.
  std::vector<std::string> public_rooms();
  void set_published(const std::string& room_id, bool published);
  bool published(const std::string& room_id);
  std::vector<std::string> aliases_of(const std::string& room_id);
  void remove_alias(const std::string& alias);
  std::string alias_creator(const std::string& alias);  // "" when there is no such alias
  // Hides a room the user has left from their /sync (Client-Server "forget").
  void forget(const std::string& room_id, const std::string& user_id);

  // ---- account data, receipts ----
  void set_account_data(const std::string& user_id, const std::string& room_id, const std::string& type,
                        const nlohmann::json& content);
  std::optional<nlohmann::json> account_data(const std::string& user_id, const std::string& room_id,
                                             const std::string& type);
  // (room_id or "" for global, type, content) changed after `after`.
  std::vector<std::tuple<std::string, std::string, nlohmann::json>> account_data_since(const std::string& user_id,
                                                                                         int64_t after);
  // thread_id: '' for an unthreaded receipt, "main" or a thread root's event ID for a threaded one.
  void set_receipt(const std::string& room_id, const std::string& user_id, const std::string& type,
                   const std::string& event_id, const std::string& thread_id = {});
  // m.receipt content for a room, for receipts changed after `after`.
  nlohmann::json receipts_since(const std::string& room_id, int64_t after, const std::string& viewer);
  // {notifications, highlights} after the member's read receipt, from what their push rules
  // made of each event; by_thread puts thread replies in `threads` (root -> counts) instead of
  // `main` ("Receiving notifications", unread_thread_notifications).
  struct UnreadCounts {
    std::pair<int64_t, int64_t> main{0, 0};
    std::map<std::string, std::pair<int64_t, int64_t>> threads;
  };
  UnreadCounts unread_counts(const std::string& room_id, const std::string& user_id, bool by_thread);
  struct Notification {
    int64_t id = 0;
    std::string room_id;
    nlohmann::json actions;
    int64_t ts = 0;
    nlohmann::json event;
    bool read = false;
  };
  // Newest first, those with id below before_id (0: from the newest).
  std::vector<Notification> notifications(const std::string& user_id, int64_t before_id, int limit, bool only_highlights);
  // Full-text search in these rooms: match is an FTS5 query, keys among content.body,
  // content.name and content.topic; best first (by_rank) or newest first; `visible` decides
  // per event (history visibility).
  struct SearchResult {
    StoredEvent event;
    double rank = 0;
  };
  struct SearchPage {
    std::vector<SearchResult> results;
    int count = 0;  // visible matches in all
    bool more = false;
  };
  SearchPage search(const std::vector<std::string>& rooms, const std::string& match, const std::vector<std::string>& keys,
                    bool by_rank, int limit, int offset, const std::function<bool(const StoredEvent&)>& visible);
  // Push gateway delivery: notifications in id order after a position, the position kept, and
  // a member's unread total for the badge.
  struct PendingPush {
    int64_t id = 0;
    std::string user_id;
    nlohmann::json actions, event;
  };
  std::vector<PendingPush> notifications_after(int64_t after_id, int limit);
  int64_t push_position();
  void set_push_position(int64_t position);
  int64_t unread_total(const std::string& user_id);
  nlohmann::json pushers(const std::string& user_id);
  void set_pusher(const std::string& user_id, const nlohmann::json& pusher, bool append);
  void delete_pusher(const std::string& user_id, const std::string& app_id, const std::string& pushkey);
  int64_t filter_create(const std::string& user_id, const nlohmann::json& filter);
  std::optional<nlohmann::json> filter(const std::string& user_id, int64_t id);

  StreamPosition position();

  // ---- coop-managed Spaces, rooms for admins, media, relations ----
  void mark_space(const std::string& room_id, const std::string& kind, const std::string& group);
  // (room_id, kind, group): the cooperative's Space, group Spaces, and Spaces made by `coop room`.
  std::vector<std::tuple<std::string, std::string, std::string>> coop_spaces();
  std::vector<std::string> all_rooms();
  void add_media(const std::string& media_id, const std::string& blob, const std::string& content_type,
                 const std::string& filename, int64_t size, const std::string& uploader);
  struct Media {
    std::string blob, content_type, filename;
    int64_t size = 0;
  };
  std::optional<Media> media(const std::string& media_id);
  // Events whose m.relates_to points at event_id (optionally of one rel_type), oldest first.
  std::vector<StoredEvent> relations(const std::string& room_id, const std::string& event_id,
                                     const std::string& rel_type, int limit);
  // What "Aggregations of child events" bundles with an event, for one viewer: the latest
  // replacement by the original sender (not redacted), the thread's reply count, latest reply
  // and whether the viewer replied, and the events that reference it.
  struct RelationSummary {
    std::optional<StoredEvent> latest_edit, latest_reply;
    int64_t replies = 0;
    bool viewer_replied = false;
    std::vector<std::string> references;
    bool empty() const { return !latest_edit && !latest_reply && references.empty(); }
  };
  RelationSummary relation_summary(const nlohmann::json& event, const std::string& viewer);
  // The room's state right after an event (from the state groups); nullopt for events
  // stored before state groups existed.
  std::optional<std::vector<nlohmann::json>> state_after(const std::string& event_id, const StateWanted& wanted = {});
  // The room's state right before an event (a remote room's timeline starts at our join,
  // after state we hold only as outliers).
  std::optional<std::vector<nlohmann::json>> state_before(const std::string& event_id, const StateWanted& wanted = {});
  // Thread replies (rel_type m.thread) of a room, oldest first.
  std::vector<StoredEvent> thread_replies(const std::string& room_id, int limit);
  // Every event of a room, oldest first, in pages (export).
  std::vector<StoredEvent> room_events(const std::string& room_id, int64_t after, int limit);

  // ---- events from and for other servers (coop-federate; room_federation.cpp) ----
  // What became of an event another server sent ("Checks performed on receipt of a PDU",
  // steps 4 to 6; steps 1 to 3, format, signatures and hashes, are the caller's).
  struct Accepted {
    enum class Kind {
      kStored,      // in the timeline (or stored as an outlier when asked to)
      kSoftFailed,  // passes against the state before it, not against the current state
      kRejected,    // fails the auth rules: kept out, and refused when it comes again
      kDuplicate,   // already here
      kMissing,     // prev_events or auth_events we do not have: `missing` names them
    };
    Kind kind = Kind::kStored;
    std::string reason;
    std::vector<std::string> missing;
    int64_t stream = 0;
  };
  // A room this server takes part in through others (a remote join): its row, so that its
  // events may be stored. Nothing when the room is known already.
  void add_remote_room(const std::string& room_id, const std::string& version, const nlohmann::json& create_event);
  // A PDU for the timeline: auth against its auth events, against the state before it (from
  // its prev_events, resolved where they fork), then soft-fail against the current state;
  // then stored, the forward extremities and the current state moved on (resolving the
  // current state with the state after it where the room forked).
  // relay: we send it on to the other servers in the room (a join or leave made through us).
  Accepted accept_remote(const nlohmann::json& event, bool relay = false);
  // Events outside the timeline (the auth chain and state a join answer brings): each checked
  // against its own auth events only; give them oldest first.
  Accepted accept_outlier(const nlohmann::json& event);
  // The state before an outlier, as another server gave it (state_ids at a prev event we
  // could not get the history of): the outlier gets the state after it, so that events built
  // on it can be checked. The state's events must be stored already. False when the event is
  // no outlier here or has its state already.
  bool accept_outlier_state(const std::string& event_id, const std::vector<std::string>& state_before);
  // Our own join to a room hosted elsewhere (send_join): `state` is the state before it (event
  // IDs already stored as outliers); the join becomes the room's one forward extremity.
  Accepted accept_join(const nlohmann::json& join, const std::vector<std::string>& state);
  // The unsigned template of a membership event for a remote user (make_join, make_leave):
  // prev_events, auth_events and depth as our next event would have them. coop::Error
  // M_FORBIDDEN when the auth rules would refuse it now.
  // For an invite, sender is the inviter (else the user themself).
  nlohmann::json membership_template(const std::string& room_id, const std::string& user_id,
                                     const std::string& membership, const std::string& sender = {});
  // An invitation of one of our users into a room on another server (Server-Server API
  // "Inviting to a room"): the invite event kept as an outlier, the user's membership
  // "invite", and the room's stripped state for their client.
  // False when refused: the room's state is here (its invitations come as events), or the
  // user is joined or banned.
  bool add_remote_invite(const nlohmann::json& invite, const nlohmann::json& stripped_state);
  struct RemoteInvite {
    nlohmann::json state;  // the stripped state events
    int64_t stream = 0;    // of the invite event
    std::string sender;
  };
  // While the user's membership is that invitation.
  std::optional<RemoteInvite> remote_invite(const std::string& room_id, const std::string& user_id);
  // Declining an invitation to a room this server is not in, when its server cannot be asked:
  // the membership becomes "leave" here only.
  void decline_remote_invite(const std::string& room_id, const std::string& user_id);
  // Events by ID as stored (any status); those unknown or rejected are left out.
  std::vector<nlohmann::json> events_by_id(const std::vector<std::string>& event_ids);
  // Those of these IDs the store has never seen (neither stored nor rejected), in order.
  std::vector<std::string> unknown_event_ids(const std::vector<std::string>& event_ids);
  // The auth chain of these events: every event reachable through auth_events.
  std::vector<nlohmann::json> auth_chain(const std::vector<std::string>& event_ids);
  // The room state before an event (event IDs), nullopt when the event is unknown.
  std::optional<std::vector<std::string>> state_ids_before(const std::string& event_id);
  std::vector<std::string> extremities(const std::string& room_id);
  // "Retrieving events": up to `limit` events reachable backwards from `latest` through
  // prev_events, not reaching into `earliest`, newest first (get_missing_events, backfill).
  std::vector<nlohmann::json> events_before(const std::string& room_id, const std::vector<std::string>& latest,
                                            const std::set<std::string>& earliest, int limit);
  // Whether a server has a member joined to the room (who may read its events).
  bool server_in_room(const std::string& room_id, const std::string& server);
  // Other servers with a user joined to this room.
  std::vector<std::string> remote_servers_in(const std::string& room_id);
  // Whether any user of the server has or had a membership (of any kind) in a room here.
  bool server_has_memberships(const std::string& server);
  // Servers with a user joined to any room here, but this one.
  std::vector<std::string> remote_servers();
  // Outbound: the events this server must send `server` after stream position `after`:
  // relayed events of rooms the server is in, not those its own users sent.
  std::vector<StoredEvent> events_for_server(const std::string& server, int64_t after, int limit);
  // Where `server`'s view of our rooms starts: the stream of its earliest current join.
  int64_t first_join_stream(const std::string& server);
  // Why an event was rejected, nullopt when it was not.
  std::optional<std::string> rejection(const std::string& event_id);

  struct Impl;  // room_store_impl.h, for the store's own sources

 private:
  std::unique_ptr<Impl> impl_;
  std::string server_name_;
  std::string default_room_version_ = "12";
};

}  // namespace coop::room
