// Pad keys, message encryption and ChainPad's chain, written from the formats chainpad-crypto
// 0.3 and chainpad 5.3 use on the wire (see pad.h).
#include "workers/docs/pad.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "common/error.h"
#include "common/text.h"

namespace coop::docs {

const char* const kGenesisHash = "a4b411975be1d48a91f0ebfcd967add000f69564b2dc5ee644b87bf2bbfd786f";

namespace {

void init_sodium() {
  if (sodium_init() < 0) throw Error(errc::kCryptoFailed, "libsodium did not start", 500);
}

std::string b64(const unsigned char* data, std::size_t size) {
  std::string out(sodium_base64_encoded_len(size, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, size, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

std::optional<std::vector<unsigned char>> unb64(std::string text) {
  // chainpad-crypto pads missing '=' before decoding; accept the same.
  while (text.size() % 4) text += '=';
  std::vector<unsigned char> out(text.size());
  std::size_t length = 0;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &length, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    return std::nullopt;
  out.resize(length);
  return out;
}

std::string hex(const unsigned char* data, std::size_t size) {
  std::string out(size * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, size);
  out.pop_back();
  return out;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return hex(digest, sizeof digest);
}

struct Op {
  std::size_t offset = 0, remove = 0;
  std::u16string insert;
};

struct Parsed {
  int type = 0;  // 2 patch, 4 checkpoint
  std::vector<Op> ops;
  std::string parent_doc_hash;
  std::string parent;  // lastMsgHash
};

// ChainPad messages are JSON arrays of integers and strings. Strings are read straight into
// UTF-16, the way JavaScript holds them: a patch may split a surrogate pair (ChainPad counts
// UTF-16 units), and JSON.stringify then writes the lone half as \udXXX, which a UTF-8 JSON
// library refuses.
struct Value {
  enum class Kind { kArray, kString, kNumber } kind = Kind::kNumber;
  std::vector<Value> items;
  std::u16string text;
  int64_t number = 0;
};

class MessageParser {
 public:
  explicit MessageParser(const std::string& text) : s_(text) {}
  std::optional<Value> parse() {
    auto v = value(0);
    skip_space();
    if (!v || i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  std::optional<Value> value(int depth) {
    skip_space();
    if (i_ >= s_.size() || depth > 8) return std::nullopt;
    const char c = s_[i_];
    if (c == '[') return array(depth);
    if (c == '"') return string();
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    return std::nullopt;
  }
  std::optional<Value> array(int depth) {
    Value v;
    v.kind = Value::Kind::kArray;
    ++i_;
    skip_space();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return v;
    }
    for (;;) {
      auto item = value(depth + 1);
      if (!item) return std::nullopt;
      v.items.push_back(std::move(*item));
      skip_space();
      if (i_ >= s_.size()) return std::nullopt;
      if (s_[i_] == ']') {
        ++i_;
        return v;
      }
      if (s_[i_] != ',') return std::nullopt;
      ++i_;
    }
  }
  std::optional<Value> number() {
    Value v;
    const std::size_t start = i_;
    if (s_[i_] == '-') ++i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    if (i_ == start || i_ - start > 18) return std::nullopt;
    v.number = std::stoll(s_.substr(start, i_ - start));
    return v;
  }
  std::optional<Value> string() {
    Value v;
    v.kind = Value::Kind::kString;
    ++i_;
    std::string raw;  // UTF-8 between escapes
    auto flush = [&] {
      v.text += to_utf16(raw);
      raw.clear();
    };
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') {
        flush();
        return v;
      }
      if (c != '\\') {
        raw += c;
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      const char e = s_[i_++];
      char16_t unit = 0;
      switch (e) {
        case '"': unit = u'"'; break;
        case '\\': unit = u'\\'; break;
        case '/': unit = u'/'; break;
        case 'b': unit = u'\b'; break;
        case 'f': unit = u'\f'; break;
        case 'n': unit = u'\n'; break;
        case 'r': unit = u'\r'; break;
        case 't': unit = u'\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) return std::nullopt;
          unsigned value = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            value <<= 4;
            if (h >= '0' && h <= '9') value |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') value |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') value |= static_cast<unsigned>(h - 'A' + 10);
            else return std::nullopt;
          }
          unit = static_cast<char16_t>(value);
          break;
        }
        default: return std::nullopt;
      }
      flush();
      v.text += unit;
    }
    return std::nullopt;
  }
  const std::string& s_;
  std::size_t i_ = 0;
};

std::optional<Parsed> parse_message(const std::string& plaintext) {
  // Very old clients put a bencode length before the message ("123:[...").
  std::size_t start = 0;
  while (start < plaintext.size() && std::isdigit(static_cast<unsigned char>(plaintext[start]))) ++start;
  const std::string body = start > 0 && start < plaintext.size() && plaintext[start] == ':' ? plaintext.substr(start + 1)
                                                                                            : plaintext;
  MessageParser parser(body);
  const auto root = parser.parse();
  using Kind = Value::Kind;
  if (!root || root->kind != Kind::kArray || root->items.size() < 3) return std::nullopt;
  const auto& items = root->items;
  if (items[0].kind != Kind::kNumber || items[1].kind != Kind::kArray || items[1].items.empty() ||
      items[2].kind != Kind::kString)
    return std::nullopt;
  Parsed p;
  p.type = static_cast<int>(items[0].number);
  if (p.type != 2 && p.type != 4) return std::nullopt;
  const auto& patch = items[1].items;
  for (std::size_t i = 0; i + 1 < patch.size(); ++i) {
    const auto& op = patch[i];
    if (op.kind != Kind::kArray || op.items.size() != 3 || op.items[0].kind != Kind::kNumber ||
        op.items[1].kind != Kind::kNumber || op.items[2].kind != Kind::kString || op.items[0].number < 0 ||
        op.items[1].number < 0)
      return std::nullopt;
    p.ops.push_back({static_cast<std::size_t>(op.items[0].number), static_cast<std::size_t>(op.items[1].number),
                     op.items[2].text});
  }
  if (patch.back().kind != Kind::kString) return std::nullopt;
  p.parent_doc_hash = to_utf8(patch.back().text);
  p.parent = to_utf8(items[2].text);
  return p;
}

// "base64(nonce)|base64(box)" opened with key; nullopt when anything does not fit.
std::optional<std::string> open_sealed(const std::string& sealed, const unsigned char* key) {
  const auto bar = sealed.find('|');
  if (bar == std::string::npos) return std::nullopt;
  const auto nonce = unb64(sealed.substr(0, bar));
  const auto box = unb64(sealed.substr(bar + 1));
  if (!nonce || nonce->size() != crypto_secretbox_NONCEBYTES || !box || box->size() < crypto_secretbox_MACBYTES)
    return std::nullopt;
  std::string plain(box->size() - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()), box->data(), box->size(), nonce->data(),
                                 key) != 0)
    return std::nullopt;
  return plain;
}

// Patch.apply: operations in reverse order, so earlier offsets stay valid.
std::optional<std::u16string> apply(const std::vector<Op>& ops, std::u16string doc) {
  for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
    if (it->offset + it->remove > doc.size()) return std::nullopt;
    doc = doc.substr(0, it->offset) + it->insert + doc.substr(it->offset + it->remove);
  }
  return doc;
}

}  // namespace

std::u16string to_utf16(const std::string& utf8) {
  std::u16string out;
  for (std::size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    uint32_t cp = 0xfffd;
    std::size_t n = 1;
    if (c < 0x80) cp = c;
    else if ((c >> 5) == 0x6 && i + 1 < utf8.size()) cp = ((c & 0x1f) << 6) | (utf8[i + 1] & 0x3f), n = 2;
    else if ((c >> 4) == 0xe && i + 2 < utf8.size())
      cp = ((c & 0x0f) << 12) | ((utf8[i + 1] & 0x3f) << 6) | (utf8[i + 2] & 0x3f), n = 3;
    else if ((c >> 3) == 0x1e && i + 3 < utf8.size())
      cp = ((c & 0x07) << 18) | ((utf8[i + 1] & 0x3f) << 12) | ((utf8[i + 2] & 0x3f) << 6) | (utf8[i + 3] & 0x3f), n = 4;
    i += n;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out += static_cast<char16_t>(0xd800 + (cp >> 10));
      out += static_cast<char16_t>(0xdc00 + (cp & 0x3ff));
    } else {
      out += static_cast<char16_t>(cp);
    }
  }
  return out;
}

std::string to_utf8(const std::u16string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    uint32_t cp = text[i];
    if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < text.size() && text[i + 1] >= 0xdc00 && text[i + 1] < 0xe000) {
      cp = 0x10000 + ((cp - 0xd800) << 10) + (text[i + 1] - 0xdc00);
      ++i;
    } else if (cp >= 0xd800 && cp < 0xe000) {
      cp = 0xfffd;  // a lone surrogate has no UTF-8 form
    }
    append_utf8(out, cp);
  }
  return out;
}

std::string chainpad_hash(const std::u16string& text) {
  std::string low(text.size(), '\0');
  for (std::size_t i = 0; i < text.size(); ++i) low[i] = static_cast<char>(text[i] & 0xff);
  return sha256_hex(low);
}

// ECMA-262 QuoteJSONString: \b \t \n \f \r " \\ short escapes, other controls and lone
// surrogates as \u with lowercase hex, everything else as is.
std::string js_string(const std::u16string& text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::u16string out = u"\"";
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char16_t c = text[i];
    switch (c) {
      case u'\b': out += u"\\b"; continue;
      case u'\t': out += u"\\t"; continue;
      case u'\n': out += u"\\n"; continue;
      case u'\f': out += u"\\f"; continue;
      case u'\r': out += u"\\r"; continue;
      case u'"': out += u"\\\""; continue;
      case u'\\': out += u"\\\\"; continue;
      default: break;
    }
    const bool high = c >= 0xd800 && c < 0xdc00, low = c >= 0xdc00 && c < 0xe000;
    const bool paired = (high && i + 1 < text.size() && text[i + 1] >= 0xdc00 && text[i + 1] < 0xe000) ||
                        (low && i > 0 && text[i - 1] >= 0xd800 && text[i - 1] < 0xdc00);
    if (c < 0x20 || ((high || low) && !paired)) {
      out += u"\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += static_cast<char16_t>(kHex[(c >> shift) & 15]);
    } else {
      out += c;
    }
  }
  out += u'"';
  return to_utf8(out);
}

PadKeys pad_keys(const std::string& edit_key) {
  init_sodium();
  std::string standard = edit_key;
  std::replace(standard.begin(), standard.end(), '-', '/');
  const auto seed = unb64(standard);
  if (!seed || seed->size() != 18) throw Error(errc::kBadLink, "the link's key is not a coop document key", 400);
  PadKeys keys;
  keys.edit_key = edit_key;
  // chainpad-crypto createEditCryptor2: H1 = SHA-512(seed); H1[0,32) seeds the Ed25519 signing
  // key, H1[32,64) is the view seed; H2 = SHA-512(view seed): H2[0,16) is the channel,
  // H2[16,48) the secretbox key.
  unsigned char h1[crypto_hash_sha512_BYTES], h2[crypto_hash_sha512_BYTES];
  crypto_hash_sha512(h1, seed->data(), seed->size());
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_seed_keypair(pk, keys.sign_key.data(), h1);
  keys.validate_key = b64(pk, sizeof pk);
  crypto_hash_sha512(h2, h1 + 32, 32);
  keys.channel = hex(h2, 16);
  std::copy(h2 + 16, h2 + 48, keys.crypt_key.begin());
  // chainpad-crypto's b64Encode: '/' as '-', no padding.
  keys.view_key = b64(h1 + 32, 32);
  std::replace(keys.view_key.begin(), keys.view_key.end(), '/', '-');
  while (!keys.view_key.empty() && keys.view_key.back() == '=') keys.view_key.pop_back();
  sodium_memzero(h1, sizeof h1);
  sodium_memzero(h2, sizeof h2);
  return keys;
}

PadKeys view_pad_keys(const std::string& view_key) {
  init_sodium();
  std::string standard = view_key;
  std::replace(standard.begin(), standard.end(), '-', '/');
  const auto seed = unb64(standard);
  if (!seed || seed->size() != 32) throw Error(errc::kBadLink, "the link's key is not a coop document view key", 400);
  PadKeys keys;
  keys.view_key = view_key;
  // createViewCryptor2: H = SHA-512(view seed); H[0,16) the channel, H[16,48) the secretbox key.
  unsigned char h[crypto_hash_sha512_BYTES];
  crypto_hash_sha512(h, seed->data(), seed->size());
  keys.channel = hex(h, 16);
  std::copy(h + 16, h + 48, keys.crypt_key.begin());
  sodium_memzero(h, sizeof h);
  return keys;
}

PadKeys new_pad_keys() {
  init_sodium();
  unsigned char seed[18];
  randombytes_buf(seed, sizeof seed);
  std::string key = b64(seed, sizeof seed);
  std::replace(key.begin(), key.end(), '/', '-');
  return pad_keys(key);
}

PadLink parse_link(const std::string& link) {
  const auto hash = link.find('#');
  const auto scheme_end = link.find("://");
  if (hash == std::string::npos || scheme_end == std::string::npos)
    throw Error(errc::kBadLink, "a document link looks like http://HOST/docs/#/2/pad/edit/KEY/", 400);
  const std::string scheme = link.substr(0, scheme_end);
  if (scheme != "http" && scheme != "ws")
    throw Error(errc::kBadLink, "only http:// document links are supported here (put TLS in front for https)", 400);
  const auto path_start = link.find('/', scheme_end + 3);
  const std::string host = link.substr(scheme_end + 3, (path_start == std::string::npos ? hash : path_start) - scheme_end - 3);
  if (host.empty()) throw Error(errc::kBadLink, "the link has no host", 400);
  std::string fragment = link.substr(hash + 1);
  // #/2/pad/edit/KEY/ (CryptPad's form) or #/2/code/edit/KEY/...
  std::vector<std::string> parts;
  for (std::size_t start = 0; start <= fragment.size();) {
    auto slash = fragment.find('/', start);
    if (slash == std::string::npos) slash = fragment.size();
    if (slash > start) parts.push_back(fragment.substr(start, slash - start));
    start = slash + 1;
  }
  if (parts.size() < 4 || parts[0] != "2" || (parts[2] != "edit" && parts[2] != "view"))
    throw Error(errc::kBadLink, "the link's fragment is not #/2/pad/edit/KEY/ or #/2/pad/view/KEY/", 400);
  PadLink out;
  out.base_url = "http://" + host;
  out.ws_url = "ws://" + host + "/cryptpad_websocket";
  out.keys = parts[2] == "edit" ? pad_keys(parts[3]) : view_pad_keys(parts[3]);
  if (parts[1] != "pad" && parts[1] != "sheet")
    throw Error(errc::kBadLink, "coop opens rich-text (pad) and spreadsheet (sheet) documents, not " + parts[1], 400);
  out.type = parts[1];
  return out;
}

std::string make_link(const std::string& base_url, const PadKeys& keys, const std::string& type) {
  return keys.can_write() ? base_url + "/docs/#/2/" + type + "/edit/" + keys.edit_key + "/"
                          : make_view_link(base_url, keys, type);
}

std::string make_view_link(const std::string& base_url, const PadKeys& keys, const std::string& type) {
  return base_url + "/docs/#/2/" + type + "/view/" + keys.view_key + "/";
}

std::string encrypt_message(const std::string& plaintext, const PadKeys& keys, bool checkpoint,
                            const unsigned char* fixed_nonce) {
  init_sodium();
  unsigned char nonce[crypto_secretbox_NONCEBYTES];
  if (fixed_nonce) std::copy(fixed_nonce, fixed_nonce + sizeof nonce, nonce);
  else randombytes_buf(nonce, sizeof nonce);
  std::vector<unsigned char> box(plaintext.size() + crypto_secretbox_MACBYTES);
  crypto_secretbox_easy(box.data(), reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(), nonce,
                        keys.crypt_key.data());
  const std::string inner = b64(nonce, sizeof nonce) + "|" + b64(box.data(), box.size());
  std::vector<unsigned char> signed_message(inner.size() + crypto_sign_BYTES);
  unsigned long long length = 0;
  crypto_sign(signed_message.data(), &length, reinterpret_cast<const unsigned char*>(inner.data()), inner.size(),
              keys.sign_key.data());
  std::string wire = b64(signed_message.data(), static_cast<std::size_t>(length));
  if (checkpoint) {
    // chainpad-netflux: "cp|" + base64(SHA-512(plaintext)[0,8)) + "|"
    unsigned char digest[crypto_hash_sha512_BYTES];
    crypto_hash_sha512(digest, reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size());
    wire = "cp|" + b64(digest, 8) + "|" + wire;
  }
  return wire;
}

std::optional<std::string> decrypt_message(const std::string& wire, const PadKeys& keys, bool verify) {
  init_sodium();
  std::string body = wire;
  if (body.rfind("cp|", 0) == 0) {
    const auto bar = body.find('|', 3);
    body = bar == std::string::npos ? body.substr(3) : body.substr(bar + 1);
  }
  const auto signed_message = unb64(body);
  if (!signed_message || signed_message->size() < crypto_sign_BYTES) return std::nullopt;
  std::string inner;
  if (verify) {
    const auto pk = unb64(keys.validate_key);
    if (!pk || pk->size() != crypto_sign_PUBLICKEYBYTES) return std::nullopt;
    std::vector<unsigned char> opened(signed_message->size());
    unsigned long long length = 0;
    if (crypto_sign_open(opened.data(), &length, signed_message->data(), signed_message->size(), pk->data()) != 0)
      return std::nullopt;
    inner.assign(reinterpret_cast<const char*>(opened.data()), static_cast<std::size_t>(length));
  } else {
    inner.assign(reinterpret_cast<const char*>(signed_message->data()) + crypto_sign_BYTES,
                 signed_message->size() - crypto_sign_BYTES);
  }
  return open_sealed(inner, keys.crypt_key.data());
}

std::array<unsigned char, 32> title_key(const std::string& handle, const std::string& secret) {
  init_sodium();
  unsigned char salt[crypto_hash_sha256_BYTES];
  const std::string label = "coop-docs titles:" + handle;
  crypto_hash_sha256(salt, reinterpret_cast<const unsigned char*>(label.data()), label.size());
  std::array<unsigned char, 32> key{};
  if (crypto_pwhash(key.data(), key.size(), secret.data(), secret.size(), salt, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                    crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw Error(errc::kCryptoFailed, "not enough memory to derive the title key", 500);
  return key;
}

std::string encrypt_title(const std::string& title, const std::array<unsigned char, 32>& key) {
  unsigned char nonce[crypto_secretbox_NONCEBYTES];
  randombytes_buf(nonce, sizeof nonce);
  std::vector<unsigned char> box(title.size() + crypto_secretbox_MACBYTES);
  crypto_secretbox_easy(box.data(), reinterpret_cast<const unsigned char*>(title.data()), title.size(), nonce, key.data());
  return b64(nonce, sizeof nonce) + "|" + b64(box.data(), box.size());
}

std::optional<std::string> decrypt_title(const std::string& sealed, const std::array<unsigned char, 32>& key) {
  return open_sealed(sealed, key.data());
}

PadState replay(const std::vector<std::string>& plaintexts) {
  struct Node {
    std::u16string doc;
    std::size_t depth = 0;
  };
  std::map<std::string, Node> nodes;
  nodes[kGenesisHash] = Node{};
  PadState best;
  for (const auto& text : plaintexts) {
    const auto parsed = parse_message(text);
    if (!parsed) continue;
    const std::string hash = chainpad_hash(to_utf16(text));
    if (nodes.count(hash)) continue;
    Node node;
    auto parent = nodes.find(parsed->parent);
    if (parent != nodes.end()) {
      // ChainPad checks that a patch was made on its parent's document.
      if (chainpad_hash(parent->second.doc) != parsed->parent_doc_hash) continue;
      auto doc = apply(parsed->ops, parent->second.doc);
      if (!doc) continue;
      node = Node{std::move(*doc), parent->second.depth + 1};
    } else if (parsed->type == 4 && parsed->ops.size() == 1 && parsed->ops[0].offset == 0) {
      // A checkpoint whose parent is older than the history we got: it holds the whole
      // document, so the chain starts here.
      node = Node{parsed->ops[0].insert, 1};
    } else {
      continue;
    }
    const bool better = node.depth > best.messages || (node.depth == best.messages && node.depth > 0 && hash < best.head);
    if (better) {
      best.doc = node.doc;
      best.head = hash;
      best.messages = node.depth;
    }
    nodes.emplace(hash, std::move(node));
  }
  return best;
}

std::optional<std::string> make_patch(const PadState& state, const std::u16string& next) {
  const auto& old = state.doc;
  if (old == next) return std::nullopt;
  std::size_t prefix = 0;
  while (prefix < old.size() && prefix < next.size() && old[prefix] == next[prefix]) ++prefix;
  std::size_t suffix = 0;
  while (suffix < old.size() - prefix && suffix < next.size() - prefix &&
         old[old.size() - 1 - suffix] == next[next.size() - 1 - suffix])
    ++suffix;
  const std::size_t remove = old.size() - prefix - suffix;
  const std::u16string insert = next.substr(prefix, next.size() - prefix - suffix);
  // JSON.stringify([2, [[offset, remove, insert], parentHash], lastMsgHash])
  return "[2,[[" + std::to_string(prefix) + "," + std::to_string(remove) + "," + js_string(insert) + "],\"" +
         chainpad_hash(old) + "\"],\"" + state.head + "\"]";
}

}  // namespace coop::docs
