// A CryptPad-compatible document on the client side (the coop CLI): keys from the link's
// fragment, message encryption as chainpad-crypto does it (NaCl secretbox, Ed25519-signed,
// through libsodium), and ChainPad's message chain (patches, checkpoints, hashes), so the CLI
// and the browser read and write the same document. The server never sees any of this.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coop::docs {

// CryptPad's "v2" pad keys (chainpad-crypto createEditCryptor2): an 18-byte seed, written as
// 24 characters of base64 with '-' for '/', is the edit key in the link's fragment.
// The view key (chainpad-crypto createViewCryptor2) is the second half of SHA-512(seed), 43
// characters of base64: it opens the document but cannot sign edits.
struct PadKeys {
  std::string edit_key;  // empty for keys from a view link
  std::string view_key;
  std::string channel;  // 32 hex characters
  std::array<unsigned char, 32> crypt_key{};
  std::array<unsigned char, 64> sign_key{};  // Ed25519 secret key (edit keys only)
  std::string validate_key;                   // base64 Ed25519 public key; from the channel for view keys
  bool can_write() const { return !edit_key.empty(); }
};

PadKeys new_pad_keys();
// Throws coop::Error(errc::kBadLink) when the key is not 18 bytes of base64.
PadKeys pad_keys(const std::string& edit_key);
// Throws coop::Error(errc::kBadLink) when the key is not 32 bytes of base64.
PadKeys view_pad_keys(const std::string& view_key);

// http://HOST:PORT/docs/#/2/pad/edit/KEY/ (or .../view/VIEWKEY/); the part after '#' never
// reaches a server.
struct PadLink {
  std::string base_url;  // http://HOST:PORT
  std::string ws_url;    // ws://HOST:PORT/cryptpad_websocket
  std::string type = "pad";  // the editor the link opens: "pad" (rich text) or "sheet"
  PadKeys keys;
};
PadLink parse_link(const std::string& link);
std::string make_link(const std::string& base_url, const PadKeys& keys, const std::string& type = "pad");
std::string make_view_link(const std::string& base_url, const PadKeys& keys, const std::string& type = "pad");

// chainpad-crypto's signed encryption: base64(Ed25519-sign(base64(nonce) "|" base64(secretbox))).
// A checkpoint gets the "cp|ID|" prefix chainpad-netflux puts on it. nonce: tests only.
std::string encrypt_message(const std::string& plaintext, const PadKeys& keys, bool checkpoint = false,
                            const unsigned char* nonce = nullptr);
// nullopt when the key does not open it (or, with verify, the signature is not the pad's).
std::optional<std::string> decrypt_message(const std::string& wire, const PadKeys& keys, bool verify);

// ChainPad counts in UTF-16 code units and hashes the low byte of each (sha256.js).
std::u16string to_utf16(const std::string& utf8);
std::string to_utf8(const std::u16string& text);
std::string chainpad_hash(const std::u16string& text);
// A JSON string literal exactly as JavaScript's JSON.stringify writes it.
std::string js_string(const std::u16string& text);

// Titles of a member's documents are encrypted with a key only the member can make: Argon2id
// of the secret they log in with (password or app password), salted with their handle.
std::array<unsigned char, 32> title_key(const std::string& handle, const std::string& secret);
std::string encrypt_title(const std::string& title, const std::array<unsigned char, 32>& key);
std::optional<std::string> decrypt_title(const std::string& sealed, const std::array<unsigned char, 32>& key);

// The hash of ChainPad's implicit first message, the parent of a new document's first patch.
extern const char* const kGenesisHash;

struct PadState {
  std::u16string doc;
  std::string head = kGenesisHash;  // the hash of the best chain's last message
  std::size_t messages = 0;         // on the best chain, from its root
};

// Follows the messages (decrypted, in log order) the way ChainPad does: the longest chain
// wins, a tie goes to the smaller hash; a checkpoint whose parent is not in the list is a root.
// Messages that do not apply (wrong parent document) are left out.
PadState replay(const std::vector<std::string>& plaintexts);

// The patch message that turns state.doc into next (one operation, in ChainPad's simplified
// form), or nullopt when they are equal.
std::optional<std::string> make_patch(const PadState& state, const std::u16string& next);

}  // namespace coop::docs
