// FETCH (RFC 9051 6.4.5, 7.5.2): the data items a client asks for, and the pieces of a
// stored message they name: header, text, chosen header fields, partial ranges, ENVELOPE.
#pragma once

#include "common/mail/message.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail::imap {

struct FetchItem {
  enum class Kind { uid, flags, internaldate, size, envelope, body, bodystructure, section, rfc822, rfc822_header, rfc822_text, modseq, preview, savedate };
  Kind kind = Kind::uid;
  // section: BODY[...] / BODY.PEEK[...], or BINARY[part] / BINARY.PEEK / BINARY.SIZE (RFC 3516):
  // the part with its Content-Transfer-Encoding undone.
  bool peek = false;
  bool binary = false, binary_size = false;
  std::string spec;                 // "", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "1", "1.2"...
  std::vector<std::string> fields;  // HEADER.FIELDS (...)
  std::optional<std::pair<uint64_t, uint64_t>> partial;  // <offset.length>
  // How the response names it: "BODY[HEADER.FIELDS (DATE FROM)]<0>".
  std::string response_name() const;
};

// The text after the sequence set: one item, a parenthesized list, or ALL / FAST / FULL.
// nullopt on a syntax error.
std::optional<std::vector<FetchItem>> parse_fetch_items(std::string_view text);

// The bytes a section names in a whole message (CRLF line ends as stored); nullopt when the
// message has no such part. Part numbers find their bytes through the stored structure
// (each leaf's offset and size, mime_summary.h).
std::optional<std::string> message_section(std::string_view message, const FetchItem& item,
                                           const std::string& body_structure_json);

// RFC 3516 BINARY[part]: the part's body with its transfer encoding (base64,
// quoted-printable) undone; nullopt when there is no such leaf part or it does not decode.
std::optional<std::string> binary_section(std::string_view message, const FetchItem& item,
                                          const std::string& body_structure_json);

// Where a message's header section ends (common/mail/message.h).
using coop::mail::header_end;

// ENVELOPE from the JSON the store keeps (mime_summary.h), as an IMAP parenthesized list.
std::string envelope_text(const std::string& envelope_json);

// BODYSTRUCTURE (extended: with each part's extension data, RFC 9051 7.5.2) or BODY (not
// extended) from the stored JSON, for single-part and multipart messages. Types and subtypes
// are given in the case the message wrote them.
std::string bodystructure_text(const std::string& body_structure_json, bool extended = true);

// INTERNALDATE: "25-Nov-2026 14:30:00 +0000".
std::string internal_date_text(int64_t unix_seconds);
// A date in SEARCH and APPEND: "25-Nov-2026" (and with a time for APPEND).
std::optional<int64_t> parse_imap_date(std::string_view text);
std::optional<int64_t> parse_imap_date_time(std::string_view text);

}  // namespace coop::mail::imap
