// IMAP URLs (RFC 5092) as CATENATE (RFC 4469) names a message or a part of one: the
// mailbox, UIDVALIDITY, UID, section and partial range. Pure parsing, unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coop::mail::imap {

struct MessageUrl {
  std::string mailbox;                  // percent-decoded UTF-8
  std::optional<int64_t> uidvalidity;   // ";UIDVALIDITY=" when given
  int64_t uid = 0;
  std::string section;                  // percent-decoded, "" for the whole message
  std::optional<std::pair<uint64_t, std::optional<uint64_t>>> partial;  // offset, length
};

// "/INBOX;UIDVALIDITY=785799047/;UID=113330/;SECTION=1.5.9" or the same after
// "imap://user@host" (the authority is the client's business: the session is the member's own).
// nullopt when it is not such a URL (a mailbox list, a search, URLAUTH, a bad number).
std::optional<MessageUrl> parse_message_url(std::string_view url);

}  // namespace coop::mail::imap
