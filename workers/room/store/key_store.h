// e2ee.db: what end-to-end encryption needs the homeserver to keep (Client-Server API
// "End-to-end encryption", "Send-to-Device messaging", "Server-side key backups"): device
// keys, one-time and fallback keys, cross-signing keys and signatures, to-device inboxes and
// key backups. Every value here is public key material or ciphertext the clients made; the
// server never holds a secret that decrypts a message.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "workers/room/store/store_change.h"

namespace coop::room {

class KeyStore {
 public:
  explicit KeyStore(const std::filesystem::path& file);
  ~KeyStore();

  // Called after every commit a /sync may want to see (to-device messages, device lists).
  void on_change(std::function<void(const StoreChange&)> callback);
  // The newest position of the keys stream (device list changes and to-device messages),
  // the third part of a sync token.
  int64_t position();

  // ---- keys/upload ----
  // Stores what one device uploads, all or nothing. device_keys is null when not sent. A
  // one-time key id already stored with other content is refused (coop::Error
  // M_INVALID_PARAM); the same key again is ignored, as clients retry uploads.
  void upload(const std::string& user_id, const std::string& device_id, const nlohmann::json& device_keys,
              const nlohmann::json& one_time_keys, const nlohmann::json& fallback_keys);
  // {algorithm: count} of unclaimed one-time keys; signed_curve25519 is always present.
  std::map<std::string, int64_t> one_time_key_counts(const std::string& user_id, const std::string& device_id);
  // Algorithms whose fallback key has not been handed out yet.
  std::vector<std::string> unused_fallback_key_types(const std::string& user_id, const std::string& device_id);

  // ---- keys/query, keys/claim ----
  // {device_id: device keys with every stored signature}; all devices when `devices` is empty.
  nlohmann::json device_keys(const std::string& user_id, const std::vector<std::string>& devices);
  // One-time key for a device, oldest first, then the fallback key (kept, marked used):
  // {"alg:id": key}; nullopt when the device has neither.
  std::optional<nlohmann::json> claim(const std::string& user_id, const std::string& device_id,
                                      const std::string& algorithm);

  // ---- cross-signing ----
  // usage is "master", "self_signing" or "user_signing"; the key with every stored signature.
  std::optional<nlohmann::json> cross_signing_key(const std::string& user_id, const std::string& usage);
  void set_cross_signing_keys(const std::string& user_id, const std::map<std::string, nlohmann::json>& keys);
  struct Signature {
    std::string target_user, target_key;  // target_key: a device id or a cross-signing public key
    std::string signer_user, signer_key_id, signature;
  };
  void add_signatures(const std::vector<Signature>& signatures);

  // ---- device lists ----
  // Users whose devices or cross-signing keys changed in (from, to].
  std::set<std::string> changed_users(int64_t from, int64_t to);
  // A device is gone: its keys, its inbox and its signatures go, and its user's peers hear.
  void delete_devices(const std::string& user_id, const std::vector<std::string>& devices);
  void delete_user(const std::string& user_id);
  // Another server said one of its users' devices or keys changed (Server-Server API
  // m.device_list_update, m.signing_key_update): local members sharing a room hear of it.
  void remote_device_list_changed(const std::string& user_id);
  // The device list changes after a position, oldest first: for other servers to hear of.
  struct DeviceChange {
    int64_t position = 0;
    std::string user_id;
    std::string device_id;  // a device, a signed cross-signing key, or "" (cross-signing keys)
    int64_t previous = 0;   // the user's change before this one; 0 when none
  };
  std::vector<DeviceChange> device_changes_after(int64_t after, int limit);
  // The position of a user's latest device list change (the stream_id of a device list).
  int64_t last_device_change(const std::string& user_id);
  // A named position some follower of the keys stream has reached ("federation.device_lists").
  int64_t cursor(const std::string& name);
  void set_cursor(const std::string& name, int64_t position);
  // {user: devices} of every device that has keys here.
  std::map<std::string, std::vector<std::string>> devices_with_keys();

  // ---- send-to-device ----
  struct ToDevice {
    std::string user_id, device_id;  // device_id is never "*": the caller expands it
    nlohmann::json content;
  };
  // Queues messages once per (sender, sender device, txn id); false when that transaction was
  // already stored (a retry), which is then not stored again.
  bool send_to_device(const std::string& sender, const std::string& sender_device, const std::string& txn_id,
                      const std::string& type, const std::vector<ToDevice>& messages);
  // A device's messages in (after, up_to], oldest first, at most `limit`; with the position
  // of the last one returned.
  std::pair<std::vector<nlohmann::json>, int64_t> to_device(const std::string& user_id, const std::string& device_id,
                                                            int64_t after, int64_t up_to, int limit);
  // The device synced with a token past up_to: those messages arrived and go.
  void acknowledge_to_device(const std::string& user_id, const std::string& device_id, int64_t up_to);

  // ---- server-side key backups ----
  struct BackupVersion {
    int64_t version = 0;
    std::string algorithm;
    nlohmann::json auth_data;
    int64_t count = 0;
    std::string etag;
  };
  // The member's current backup (the newest not deleted), or a named one.
  std::optional<BackupVersion> backup_version(const std::string& user_id, std::optional<int64_t> version = std::nullopt);
  int64_t create_backup_version(const std::string& user_id, const std::string& algorithm, const nlohmann::json& auth_data);
  bool update_backup_version(const std::string& user_id, int64_t version, const nlohmann::json& auth_data);
  bool delete_backup_version(const std::string& user_id, int64_t version);
  struct BackedUpKey {
    std::string room_id, session_id;
    nlohmann::json key_data;  // first_message_index, forwarded_count, is_verified, session_data
  };
  // Stores keys under the spec's replacement rules; returns the version's new etag and count.
  std::pair<std::string, int64_t> put_backup_keys(const std::string& user_id, int64_t version,
                                                  const std::vector<BackedUpKey>& keys);
  // Keys of a version, all or of one room ("") or of one session ("").
  std::vector<BackedUpKey> backup_keys(const std::string& user_id, int64_t version, const std::string& room_id,
                                       const std::string& session_id);
  std::pair<std::string, int64_t> delete_backup_keys(const std::string& user_id, int64_t version,
                                                     const std::string& room_id, const std::string& session_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::room
