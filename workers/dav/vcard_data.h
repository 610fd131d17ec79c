// vCard address object resources for CardDAV (RFC 6350, RFC 6352): parsing, filters, building.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coop::dav {

struct VCard {
  std::string uid, version, fn;
  // Every content line between BEGIN and END in order: upper-case name without group and
  // parameters -> unescaped value. VERSION, UID and FN are included.
  std::vector<std::pair<std::string, std::string>> properties;
};

// One vCard 3.0 or 4.0 (RFC 6350 3.2 unfolding, 3.3 content lines, 3.4 escaping). UID is
// required (RFC 6352 5.1 lets the server insist), FN too for 4.0. Throws
// coop::Error("valid-address-data", message, 403), the RFC 6352 precondition name.
VCard parse_vcard(std::string_view vcf);

// Every card of a .vcf file, each validated as parse_vcard does; blank lines between cards are
// fine, anything else outside BEGIN/END is not. An empty file holds no cards.
std::vector<VCard> split_vcards(std::string_view vcf);

// RFC 6352 10.5.4: whether some instance of property (any case) matches text with match_type
// "equals", "contains" (also for ""), "starts-with" or "ends-with", inverted per instance when
// negate. i;unicode-casemap is approximated by ASCII case folding with other bytes compared
// as they are. A card without the property matches nothing. An unknown match_type throws
// coop::Error("supported-filter", message, 403).
bool text_match(const VCard& card, const std::string& property, const std::string& text,
                const std::string& match_type, bool negate);

// A vCard 4.0 with UID, FN (the first email, else the uid, when fn is empty), one EMAIL per
// address and the extra properties as given ({"X-MATRIX", "@a:b"}), each value escaped as one
// text value (RFC 6350 3.4, so not for structured N or ADR) and lines folded at 75 octets
// (3.2), CRLF line ends. An extra name that is not a
// property name throws coop::Error(errc::kBadVcardProperty, message, 400).
std::string make_vcard(const std::string& uid, const std::string& fn, const std::vector<std::string>& emails,
                       const std::vector<std::pair<std::string, std::string>>& extra);

}  // namespace coop::dav
