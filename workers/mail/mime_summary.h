// The IMAP ENVELOPE and BODYSTRUCTURE of a stored message, parsed once at delivery with GMime.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Not json_fwd.hpp: MimeSummary holds json by value, which needs the complete type. Only
// mail_service.cpp and the tests include this header, and both need json.hpp anyway.
#include <nlohmann/json.hpp>

namespace coop::mail {

// Nesting and part limits of summarize_message: deeper multiparts or message/rfc822 bodies,
// and parts past the count, are left out (their node carries "truncated": true).
inline constexpr int kMaxMimeDepth = 50;
inline constexpr int kMaxMimeParts = 10000;

struct MimeSummary {
  // RFC 3501 7.4.2 / RFC 9051 7.5.2 ENVELOPE fields: {"date","subject","from","sender",
  // "reply_to","to","cc","bcc","in_reply_to","message_id"}; addresses are
  // [{"name","mailbox","host"}]; "date", "in_reply_to" and "message_id" are the raw
  // (unfolded) header values, "subject" and names are decoded UTF-8.
  nlohmann::json envelope;
  // One node per MIME part (see mime_summary.cpp for the fields), enough for IMAP
  // BODYSTRUCTURE and JMAP bodyStructure.
  nlohmann::json body_structure;
  std::string message_id;  // the Message-ID without angle brackets, "" if absent
  std::string subject;     // decoded UTF-8, "" if absent
  int64_t date = 0;        // unix seconds from the Date header, 0 if absent/unparseable
  bool has_attachments = false;
};

// Never throws on bad input: any bytes give a best-effort summary whose strings are valid
// UTF-8, so envelope.dump() and body_structure.dump() cannot throw.
MimeSummary summarize_message(std::string_view bytes);

// RFC 8970 PREVIEW: up to 256 characters of the message's first text part (text/plain, else
// text/html without its markup), decoded to UTF-8, blanks collapsed; "" when there is none.
std::string message_preview(std::string_view bytes);

// What the spam filter reads of a message: its decoded subject, the From mailbox
// ("local@domain", "" when there is none), and the text of every text part that is not an
// attachment (text/html as text, followed by the links in its markup), at most max_bytes,
// valid UTF-8.
struct MessageText {
  std::string subject, from, body;
  // What the spam filter's rules read of the message's form, from the same parse:
  std::string from_name;    // From's display name, decoded
  std::string raw_subject;  // the Subject field as sent, RFC 2047 words not decoded
  std::string mailer;       // X-Mailer, else User-Agent
  bool has_from = false, has_date = false, has_message_id = false;
  std::optional<int64_t> date;  // Date: as Unix seconds, when it parses
  int plain_parts = 0, html_parts = 0;  // text parts that are not attachments
  bool base64_text = false;  // a text part sent in base64
  std::vector<std::string> charsets;           // of the text parts, lower-cased
  std::vector<std::string> attachment_names;   // every part's file name, as sent
  struct Anchor {
    std::string href, text;  // <a href="...">text</a> of the HTML parts, the text without markup
  };
  std::vector<Anchor> anchors;  // at most 200
};
MessageText message_text(std::string_view bytes, std::size_t max_bytes = 256 * 1024);

// The decoded text (UTF-8) of every text part, by body part number ("1", "2.1", as IMAP
// numbers them): JMAP's bodyValues.
std::map<std::string, std::string> text_part_values(std::string_view bytes);
// The bytes of one leaf part by its number, transfer encoding undone; nullopt when there is
// no such part.
std::optional<std::string> part_content(std::string_view bytes, std::string_view part_id);

// An address header field's value (From, To, Cc, Bcc) as SEARCH reads it: each mailbox as
// "name <local@domain>", groups as "name: ...;", names decoded (RFC 2047), comments, routes
// and the spaces of RFC 5322 4.4 obsolete syntax gone; ASCII lower-cased.
std::string address_search_text(std::string_view value);

// The header section of every leaf part by its number ("1", "2.1"): JMAP's part headers.
std::map<std::string, std::string> part_header_sections(std::string_view bytes);

// RFC 8621 4.1.2: one header field's raw value (what follows the colon) as text, unfolded,
// RFC 2047 encoded words decoded, white space at both ends trimmed, valid UTF-8 (asText).
std::string decode_header_text(std::string_view raw);
// The same value as an address list, in the envelope's form ([{"name","mailbox","host"}],
// groups between markers with "group": true), for asAddresses and asGroupedAddresses.
nlohmann::json parse_address_field(std::string_view raw);

// RFC 6047 iMIP: the From: mailbox (empty unless exactly one) and the decoded bodies of the
// text/calendar (or application/ics) parts of a message, at most eight.
struct CalendarMail {
  std::string from;
  std::vector<std::string> calendars;
};
CalendarMail calendar_parts(std::string_view bytes);

}  // namespace coop::mail
