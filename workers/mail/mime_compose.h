// Builds a message from its parts (RFC 5322 fields, RFC 2045-2046 MIME) with GMime: what JMAP's
// Email/set create (RFC 8621 4.6) and the vacation responder write.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace coop::mail {

struct ComposedAddress {
  std::string name;   // UTF-8, may be empty
  std::string email;  // local@domain
};

// A header field: name and value, the value as UTF-8 text (RFC 2047-encoded when it is not
// ASCII) or, with raw, as it is to be written (the caller made it valid).
struct ComposedField {
  std::string name, value;
  bool raw = false;
};

struct ComposedPart {
  std::string type = "text/plain";  // a media type; multipart/* takes sub_parts
  std::string content;              // the bytes as they are, not transfer-encoded (text: UTF-8)
  std::string disposition;          // "inline", "attachment" or ""
  std::string name;                 // the file name (UTF-8), or ""
  std::string cid;                  // Content-ID without <>, or ""
  std::string language, location;
  std::vector<ComposedField> fields;  // more of the part's header (Content-Type and -Transfer-Encoding excepted)
  std::vector<ComposedPart> sub_parts;
};

struct ComposedMessage {
  // By field name: "From", "Sender", "Reply-To", "To", "Cc", "Bcc".
  std::vector<std::pair<std::string, std::vector<ComposedAddress>>> addresses;
  std::optional<std::string> subject;  // UTF-8
  std::optional<int64_t> date;         // Unix seconds, written in UTC
  std::vector<std::string> message_id, in_reply_to, references;  // without <>
  std::vector<ComposedField> fields;  // any other field
  ComposedPart body;
};

// The message with CRLF line ends. Throws std::invalid_argument for a field name that is not
// printable ASCII without ':' (RFC 5322 2.2), a CR or LF in a field value or an address, or
// a media type without a '/'.
std::string compose_message(const ComposedMessage& message);

}  // namespace coop::mail
