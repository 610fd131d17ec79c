// WebDAV/CalDAV/CardDAV XML: namespace-aware parsing of request bodies and building of responses.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coop::dav {

inline constexpr std::string_view kDav = "DAV:";
inline constexpr std::string_view kCalDav = "urn:ietf:params:xml:ns:caldav";
inline constexpr std::string_view kCardDav = "urn:ietf:params:xml:ns:carddav";
inline constexpr std::string_view kCalendarServer = "http://calendarserver.org/ns/";

// Bodies larger than this are refused with Error(errc::kBodyTooLarge, ..., 413) before parsing.
inline constexpr std::size_t kMaxXmlBodyBytes = 4 * 1024 * 1024;

// An element or property name: namespace URI plus local name ("" ns = no namespace).
struct QName {
  std::string ns, name;
  bool operator<(const QName& other) const;
  bool operator==(const QName& other) const;
};

// "{DAV:}displayname" (Clark notation), for logs and messages.
std::string clark(const QName& name);

// Parsers throw coop::Error(errc::kBadXml, ..., 400) for XML that is not well-formed (including
// namespace errors and any DOCTYPE, which request bodies never need) and
// coop::Error(errc::kBadRequest, ..., 400) for well-formed XML of the wrong shape.

// RFC 4918 9.1 / 14.20
struct PropfindRequest {
  enum Kind { kProp, kAllprop, kPropname } kind = kAllprop;
  std::vector<QName> props;    // kProp: the requested properties, in document order
  std::vector<QName> include;  // kAllprop: RFC 4918 14.8 <D:include> children
};
// An empty (or all-whitespace) body is allprop (RFC 4918 9.1).
PropfindRequest parse_propfind(std::string_view body);

// RFC 4918 9.2 / 14.19: set carries the property's inner XML (see inner XML below), remove nullopt.
struct ProppatchRequest {
  std::vector<std::pair<QName, std::optional<std::string>>> changes;  // document order
};
ProppatchRequest parse_proppatch(std::string_view body);

// RFC 4918 9.10 / 14.11: a LOCK body; an empty body is a refresh of a lock named in If.
struct LockRequest {
  bool refresh = true;
  bool exclusive = true;
  std::string owner;  // inner XML of DAV:owner, echoed in lockdiscovery
};
LockRequest parse_lockinfo(std::string_view body);

// Extended MKCOL (RFC 5689 5.1) and MKCALENDAR (RFC 4791 5.3.1) bodies; empty body = no props.
struct MkcolRequest {
  std::vector<std::pair<QName, std::string>> props;  // every <D:set><D:prop> child, inner XML
  std::vector<QName> resourcetype;                   // children of DAV:resourcetype when set
  std::vector<std::string> components;               // C:supported-calendar-component-set names
};
MkcolRequest parse_mkcol(std::string_view body);

// RFC 4791 9.7: a calendar-query filter, whole. Text matches compare with i;ascii-casemap
// (the default) or i;octet; any other collation is refused when parsed
// (Error(errc::kUnsupportedCollation, 403): CALDAV:supported-collation).
struct CalendarTextMatch {
  std::string text;
  bool octet = false;  // i;octet instead of i;ascii-casemap
  bool negate = false;
};
struct CalendarTimeRange {
  std::optional<std::string> start, end;  // as given, 20260105T000000Z
};
struct ParamFilter {
  std::string name;
  bool is_not_defined = false;
  std::optional<CalendarTextMatch> text_match;
};
struct PropFilter {
  std::string name;
  bool is_not_defined = false;
  std::optional<CalendarTimeRange> time_range;
  std::optional<CalendarTextMatch> text_match;
  std::vector<ParamFilter> params;
};
struct CompFilter {
  std::string name;
  bool is_not_defined = false;
  std::optional<CalendarTimeRange> time_range;
  std::vector<PropFilter> props;
  std::vector<CompFilter> comps;
};

// REPORT bodies: RFC 4791 7.8/7.9/7.10, RFC 6352 8.6/8.7, RFC 6578 3.2.
struct Report {
  enum Kind {
    kCalendarQuery,
    kCalendarMultiget,
    kAddressbookQuery,
    kAddressbookMultiget,
    kSyncCollection,
    kFreeBusyQuery,
    kUnknown
  } kind = kUnknown;
  static constexpr int kSyncLevelInfinite = -1;

  QName root;                // the report element as sent (useful for kUnknown)
  std::vector<QName> props;  // <D:prop> children; empty with allprop or no <D:prop>
  bool allprop = false;      // <D:allprop/> instead of <D:prop> (RFC 4791 7.8)
  std::vector<std::string> hrefs;  // multiget <D:href>s, whitespace-trimmed, as sent (not decoded)
  std::string sync_token;          // "" on the initial sync (RFC 6578 3.2)
  int sync_level = 1;              // 1 or kSyncLevelInfinite
  std::optional<int> limit;        // RFC 5323 <D:limit><D:nresults>, RFC 6352 8.6.1

  // calendar-query: the comp-filter directly under VCALENDAR (e.g. "VEVENT", "" when none) and
  // its time-range (RFC 4791 9.7.1, 9.9), which pre-select candidates; calendar_filter is the
  // whole filter that decides. free-busy-query: its time-range.
  std::string comp_filter;
  std::optional<std::string> time_range_start, time_range_end;  // as given, e.g. 20260101T000000Z
  std::optional<CompFilter> calendar_filter;
  // <C:calendar-data> asking for <C:expand> or <C:limit-recurrence-set> (RFC 4791 9.6.5, 9.6.6).
  std::optional<CalendarTimeRange> expand, limit_recurrence_set;

  // addressbook-query (RFC 6352 10.5): one entry per prop-filter/text-match.
  struct TextMatch {
    std::string property, text, match_type;  // match_type: contains|equals|starts-with|ends-with
    bool negate = false;
  };
  std::vector<TextMatch> text_matches;
  bool anyof = true;  // the filter's test attribute (RFC 6352 10.5)

  // True when the filter held conditions the fields above do not carry (prop-filter on
  // calendars, param-filter, is-not-defined, deeper comp-filters, text-match-less prop-filters):
  // the fields then describe a superset and the caller must match the rest itself or accept it.
  bool filter_approximated = false;
};
// An unknown report root gives kUnknown (the caller answers 403 supported-report), not an error.
Report parse_report(std::string_view body);

// Inner XML, both parsed and built, uses the document prefixes D, C, CR, CS for the four
// namespaces above; an element in any other namespace declares its own prefix
// (<X:color xmlns:X="http://apple.com/ns/ical/">); unprefixed elements are in no namespace.
// So a value parse_proppatch returns can be passed unchanged to Multistatus.

// Escapes text for element content and attribute values; CR becomes &#13; so CRLF survives
// (RFC 4791 9.6 calendar data) and characters XML 1.0 cannot carry become U+FFFD.
std::string xml_escape(std::string_view text);

// "<D:href>escaped</D:href>"
std::string href_xml(std::string_view href);

// <P:name>inner_xml</P:name>, or <P:name/> for nullopt, with the prefixes above.
std::string element_xml(const QName& name, std::optional<std::string_view> inner_xml = std::nullopt);

// One property in a response: value is inner XML (text through xml_escape), nullopt = empty
// element, as for propname or for a 404.
struct PropValue {
  QName name;
  std::optional<std::string> value;
  int status = 200;
};

// A <D:multistatus> document (RFC 4918 13, 14.16).
class Multistatus {
 public:
  // One <D:response> with its props grouped by status into <D:propstat>s, in ascending status.
  void add_response(std::string_view href, const std::vector<PropValue>& props);
  // A <D:response> with only <D:status>, e.g. 404 for a multiget member or a sync deletion.
  void add_status_response(std::string_view href, int status);
  // RFC 6578 3.2: written after the responses.
  void set_sync_token(std::string token) { sync_token_ = std::move(token); }

  std::string str() const;

 private:
  std::string responses_;
  std::optional<std::string> sync_token_;
};

// <D:error> body naming a failed precondition (RFC 4918 16, RFC 4791 1.3), with what it
// says inside when it says more (no-uid-conflict's <D:href>, RFC 4791 5.3.2.1).
std::string error_body(const QName& precondition, std::optional<std::string_view> inner_xml = std::nullopt);

// "HTTP/1.1 404 Not Found", for <D:status> (RFC 4918 14.28).
std::string status_line(int status);

}  // namespace coop::dav
