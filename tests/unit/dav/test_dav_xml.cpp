// DAV XML: request bodies parsed by namespace, not by prefix, and multistatus bodies that parse back.
#include <catch2/catch.hpp>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "workers/dav/dav_xml.h"

using namespace coop::dav;

namespace {

const QName kDisplayname{"DAV:", "displayname"};
const QName kGetetag{"DAV:", "getetag"};
const QName kResourcetype{"DAV:", "resourcetype"};
const QName kCalendarData{"urn:ietf:params:xml:ns:caldav", "calendar-data"};
const QName kAddressData{"urn:ietf:params:xml:ns:carddav", "address-data"};

// The code of the coop::Error that call throws, or "" when it throws none.
template <typename Call>
std::string error_code_of(Call call) {
  try {
    call();
  } catch (const coop::Error& e) {
    return e.code();
  }
  return "";
}

struct DocFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
struct XPathContextFree {
  void operator()(xmlXPathContext* context) const { xmlXPathFreeContext(context); }
};
struct XPathObjectFree {
  void operator()(xmlXPathObject* object) const { xmlXPathFreeObject(object); }
};
struct XmlCharFree {
  void operator()(xmlChar* text) const { xmlFree(text); }
};

// A parsed document with DAV prefixes registered for XPath, so assertions read like the RFC.
class ParsedXml {
 public:
  explicit ParsedXml(const std::string& xml)
      : doc_(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), nullptr, nullptr,
                           XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)) {
    if (!doc_) return;
    xpath_.reset(xmlXPathNewContext(doc_.get()));
    xmlXPathRegisterNs(xpath_.get(), BAD_CAST "d", BAD_CAST "DAV:");
    xmlXPathRegisterNs(xpath_.get(), BAD_CAST "c", BAD_CAST "urn:ietf:params:xml:ns:caldav");
    xmlXPathRegisterNs(xpath_.get(), BAD_CAST "cr", BAD_CAST "urn:ietf:params:xml:ns:carddav");
    xmlXPathRegisterNs(xpath_.get(), BAD_CAST "ical", BAD_CAST "http://apple.com/ns/ical/");
  }
  bool well_formed() const { return doc_ != nullptr; }

  std::string string(const std::string& expression) const {
    return evaluate("string(" + expression + ")");
  }
  int count(const std::string& expression) const {
    return std::stoi(evaluate("count(" + expression + ")"));
  }

 private:
  std::string evaluate(const std::string& expression) const {
    std::unique_ptr<xmlXPathObject, XPathObjectFree> result(
        xmlXPathEvalExpression(BAD_CAST expression.c_str(), xpath_.get()));
    REQUIRE(result);
    std::unique_ptr<xmlChar, XmlCharFree> text(xmlXPathCastToString(result.get()));
    return reinterpret_cast<const char*>(text.get());
  }

  std::unique_ptr<xmlDoc, DocFree> doc_;
  std::unique_ptr<xmlXPathContext, XPathContextFree> xpath_;
};

}  // namespace

TEST_CASE("propfind prop lists the requested properties in document order") {
  const auto request = parse_propfind(R"(<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:resourcetype/><D:getetag/><C:calendar-data/></D:prop>
</D:propfind>)");
  CHECK(request.kind == PropfindRequest::kProp);
  CHECK(request.props == std::vector<QName>{kResourcetype, kGetetag, kCalendarData});
}

TEST_CASE("propfind allprop, propname and an empty body") {
  CHECK(parse_propfind(R"(<propfind xmlns="DAV:"><allprop/></propfind>)").kind == PropfindRequest::kAllprop);
  CHECK(parse_propfind(R"(<propfind xmlns="DAV:"><propname/></propfind>)").kind == PropfindRequest::kPropname);
  // RFC 4918 9.1: no body is allprop.
  CHECK(parse_propfind("").kind == PropfindRequest::kAllprop);
  CHECK(parse_propfind(" \r\n").kind == PropfindRequest::kAllprop);
  const auto with_include = parse_propfind(
      R"(<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:sync-token/></D:include></D:propfind>)");
  CHECK(with_include.kind == PropfindRequest::kAllprop);
  CHECK(with_include.include == std::vector<QName>{{"DAV:", "sync-token"}});
}

TEST_CASE("propfind elements are recognised by namespace whatever their prefix") {
  const auto request = parse_propfind(R"(<x:propfind xmlns:x="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">
    <x:prop><x:displayname/><cal:calendar-data/></x:prop></x:propfind>)");
  CHECK(request.kind == PropfindRequest::kProp);
  CHECK(request.props == std::vector<QName>{kDisplayname, kCalendarData});

  // D: bound to something else is not DAV:.
  CHECK(error_code_of([] { parse_propfind(R"(<D:propfind xmlns:D="urn:other"><D:allprop/></D:propfind>)"); }) ==
        "bad_request");
}

TEST_CASE("propfind with default namespaces, switched per element") {
  const auto request = parse_propfind(R"(<propfind xmlns="DAV:"><prop>
    <getetag/>
    <address-data xmlns="urn:ietf:params:xml:ns:carddav"/>
    <calendar-color xmlns="http://apple.com/ns/ical/"/>
    <unqualified xmlns=""/>
  </prop></propfind>)");
  CHECK(request.props == std::vector<QName>{kGetetag, kAddressData, {"http://apple.com/ns/ical/", "calendar-color"},
                                            {"", "unqualified"}});
}

TEST_CASE("a propfind root without the DAV: namespace is a bad request") {
  CHECK(error_code_of([] { parse_propfind("<propfind><allprop/></propfind>"); }) == "bad_request");
  CHECK(error_code_of([] { parse_propfind(R"(<propfind xmlns="DAV:"/>)"); }) == "bad_request");
}

TEST_CASE("proppatch keeps set and remove in document order with values as inner XML") {
  const auto request = parse_proppatch(R"(<?xml version="1.0"?>
<d:propertyupdate xmlns:d="DAV:" xmlns:i="http://apple.com/ns/ical/" xmlns:cal="urn:ietf:params:xml:ns:caldav">
  <d:remove><d:prop><i:calendar-order/></d:prop></d:remove>
  <d:set><d:prop><d:displayname>Work &amp; Play</d:displayname><i:calendar-color>#FF0000FF</i:calendar-color></d:prop></d:set>
  <d:set><d:prop><cal:schedule-calendar-transp><cal:transparent/></cal:schedule-calendar-transp></d:prop></d:set>
  <d:remove><d:prop><d:displayname/></d:prop></d:remove>
</d:propertyupdate>)");
  REQUIRE(request.changes.size() == 5);
  CHECK(request.changes[0].first == QName{"http://apple.com/ns/ical/", "calendar-order"});
  CHECK_FALSE(request.changes[0].second);
  CHECK(request.changes[1].first == kDisplayname);
  CHECK(request.changes[1].second == std::optional<std::string>("Work &amp; Play"));
  CHECK(request.changes[2].second == std::optional<std::string>("#FF0000FF"));
  // Inner elements come back with the document prefixes, whatever the client used.
  CHECK(request.changes[3].first == QName{"urn:ietf:params:xml:ns:caldav", "schedule-calendar-transp"});
  CHECK(request.changes[3].second == std::optional<std::string>("<C:transparent/>"));
  CHECK(request.changes[4].first == kDisplayname);
  CHECK_FALSE(request.changes[4].second);
}

TEST_CASE("a proppatch value in a foreign namespace survives a round trip through multistatus") {
  const auto request = parse_proppatch(R"(<propertyupdate xmlns="DAV:"><set><prop>
    <x xmlns="urn:example:a"><y attr="1&quot;" xmlns:q="urn:q" q:k="v" xml:lang="en"/><z xmlns="urn:example:b"><w xmlns="">t &lt; u</w></z><d:href xmlns:d="DAV:">/p/</d:href></x>
  </prop></set></propertyupdate>)");
  REQUIRE(request.changes.size() == 1);
  REQUIRE(request.changes[0].second);
  Multistatus multistatus;
  multistatus.add_response("/cal/", {{request.changes[0].first, request.changes[0].second, 200}});
  ParsedXml parsed(multistatus.str());
  REQUIRE(parsed.well_formed());
  const std::string x = "//d:prop/*[local-name()='x' and namespace-uri()='urn:example:a']";
  CHECK(parsed.count(x) == 1);
  const std::string y = x + "/*[local-name()='y' and namespace-uri()='urn:example:a']";
  CHECK(parsed.count(y) == 1);
  CHECK(parsed.string(y + "/@attr") == "1\"");
  CHECK(parsed.string(y + "/@*[local-name()='k' and namespace-uri()='urn:q']") == "v");
  CHECK(parsed.string(y + "/@xml:lang") == "en");
  CHECK(parsed.string(x + "/*[namespace-uri()='urn:example:b']/*[local-name()='w' and namespace-uri()='']") ==
        "t < u");
  CHECK(parsed.string(x + "/d:href") == "/p/");
}

TEST_CASE("an empty proppatch is a bad request") {
  CHECK(error_code_of([] { parse_proppatch(""); }) == "bad_request");
  CHECK(error_code_of([] { parse_proppatch(R"(<D:propertyupdate xmlns:D="DAV:"/>)"); }) == "bad_request");
}

TEST_CASE("mkcalendar gives displayname and supported-calendar-component-set") {
  const auto request = parse_mkcol(R"(<?xml version="1.0" encoding="utf-8" ?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>Lisa's Events</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="VTODO"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>)");
  REQUIRE(request.props.size() == 2);
  CHECK(request.props[0].first == kDisplayname);
  CHECK(request.props[0].second == "Lisa's Events");
  CHECK(request.props[1].second == R"(<C:comp name="VEVENT"/><C:comp name="VTODO"/>)");
  CHECK(request.components == std::vector<std::string>{"VEVENT", "VTODO"});
  CHECK(request.resourcetype.empty());
  CHECK(parse_mkcol("").props.empty());
}

TEST_CASE("extended mkcol exposes the requested resourcetype") {
  const auto request = parse_mkcol(R"(<mkcol xmlns="DAV:"><set><prop>
    <resourcetype><collection/><addressbook xmlns="urn:ietf:params:xml:ns:carddav"/></resourcetype>
  </prop></set></mkcol>)");
  CHECK(request.resourcetype ==
        std::vector<QName>{{"DAV:", "collection"}, {"urn:ietf:params:xml:ns:carddav", "addressbook"}});
  REQUIRE(request.props.size() == 1);
  CHECK(request.props[0].second.find("<D:collection/>") != std::string::npos);
  CHECK(request.props[0].second.find("<CR:addressbook/>") != std::string::npos);
  CHECK(error_code_of([] { parse_mkcol(R"(<D:propfind xmlns:D="DAV:"/>)"); }) == "bad_request");
}

TEST_CASE("calendar-query gives props, the component and its time-range") {
  const auto report = parse_report(R"(<?xml version="1.0" encoding="utf-8" ?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter>
    <C:comp-filter name="VCALENDAR">
      <C:comp-filter name="VEVENT">
        <C:time-range start="20260101T000000Z" end="20260201T000000Z"/>
      </C:comp-filter>
    </C:comp-filter>
  </C:filter>
</C:calendar-query>)");
  CHECK(report.kind == Report::kCalendarQuery);
  CHECK(report.props == std::vector<QName>{kGetetag, kCalendarData});
  CHECK(report.comp_filter == "VEVENT");
  CHECK(report.time_range_start == std::optional<std::string>("20260101T000000Z"));
  CHECK(report.time_range_end == std::optional<std::string>("20260201T000000Z"));
  CHECK_FALSE(report.filter_approximated);
}

TEST_CASE("calendar-query with an open time-range and no component filter") {
  const auto open = parse_report(R"(<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
    <D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">
    <C:time-range start="20260101T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>)");
  CHECK(open.comp_filter == "VTODO");
  CHECK(open.time_range_start == std::optional<std::string>("20260101T000000Z"));
  CHECK_FALSE(open.time_range_end);

  const auto all = parse_report(R"(<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
    <D:allprop/><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>)");
  CHECK(all.allprop);
  CHECK(all.comp_filter.empty());
  CHECK_FALSE(all.time_range_start);
}

TEST_CASE("calendar-query conditions beyond component and time-range are flagged as approximated") {
  const auto alarm = parse_report(R"(<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
    <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
      <C:comp-filter name="VALARM"><C:time-range start="20260101T000000Z" end="20260102T000000Z"/></C:comp-filter>
    </C:comp-filter></C:comp-filter></C:filter></C:calendar-query>)");
  CHECK(alarm.comp_filter == "VEVENT");
  CHECK_FALSE(alarm.time_range_start);
  CHECK(alarm.filter_approximated);

  const auto absent = parse_report(R"(<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
    <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO"><C:is-not-defined/></C:comp-filter>
    </C:comp-filter></C:filter></C:calendar-query>)");
  CHECK(absent.comp_filter.empty());
  CHECK(absent.filter_approximated);
}

TEST_CASE("calendar-query keeps the whole filter tree, and refuses what it cannot evaluate") {
  const auto report = parse_report(R"(<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
    <D:prop><C:calendar-data><C:expand start="20260101T000000Z" end="20260201T000000Z"/></C:calendar-data></D:prop>
    <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
      <C:prop-filter name="ATTENDEE"><C:text-match collation="i;octet">bob</C:text-match>
        <C:param-filter name="PARTSTAT"><C:text-match negate-condition="yes">DECLINED</C:text-match></C:param-filter>
      </C:prop-filter>
      <C:prop-filter name="CATEGORIES"><C:is-not-defined/></C:prop-filter>
      <C:comp-filter name="VALARM"><C:time-range start="20260101T000000Z" end="20260102T000000Z"/></C:comp-filter>
    </C:comp-filter></C:comp-filter></C:filter></C:calendar-query>)");
  REQUIRE(report.calendar_filter);
  const auto& event = report.calendar_filter->comps.at(0);
  CHECK(event.name == "VEVENT");
  REQUIRE(event.props.size() == 2);
  CHECK(event.props[0].text_match->text == "bob");
  CHECK(event.props[0].text_match->octet);
  CHECK(event.props[0].params.at(0).text_match->negate);
  CHECK(event.props[1].is_not_defined);
  CHECK(event.comps.at(0).time_range->start == std::optional<std::string>("20260101T000000Z"));
  REQUIRE(report.expand);
  CHECK(report.expand->end == std::optional<std::string>("20260201T000000Z"));

  auto code_of = [](const char* body) {
    try {
      parse_report(body);
    } catch (const coop::Error& e) {
      return std::string(e.code());
    }
    return std::string("accepted");
  };
  // RFC 4791 7.5.1: collations other than i;ascii-casemap and i;octet are refused by name.
  CHECK(code_of(R"(<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:filter><C:comp-filter name="VCALENDAR">
    <C:prop-filter name="SUMMARY"><C:text-match collation="i;unicode-casemap">x</C:text-match></C:prop-filter>
    </C:comp-filter></C:filter></C:calendar-query>)") == coop::errc::kUnsupportedCollation);
  CHECK(code_of(R"(<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:filter><C:comp-filter name="VCALENDAR">
    <C:frobnicate/></C:comp-filter></C:filter></C:calendar-query>)") == coop::errc::kUnsupportedFilter);
}

TEST_CASE("calendar-multiget gives its hrefs trimmed, in order") {
  const auto report = parse_report(R"(<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <D:href>/dav/calendars/ann/work/a.ics</D:href>
  <D:href>
    /dav/calendars/ann/work/b%20c.ics
  </D:href>
</C:calendar-multiget>)");
  CHECK(report.kind == Report::kCalendarMultiget);
  CHECK(report.props == std::vector<QName>{kGetetag, kCalendarData});
  CHECK(report.hrefs == std::vector<std::string>{"/dav/calendars/ann/work/a.ics", "/dav/calendars/ann/work/b%20c.ics"});
}

TEST_CASE("addressbook-query gives text-matches with match-type, negation and the filter test") {
  const auto report = parse_report(R"(<?xml version="1.0" encoding="utf-8" ?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><C:address-data><C:prop name="VERSION"/><C:prop name="FN"/></C:address-data></D:prop>
  <C:filter test="allof">
    <C:prop-filter name="FN"><C:text-match collation="i;unicode-casemap" match-type="starts-with">Dan</C:text-match></C:prop-filter>
    <C:prop-filter name="EMAIL"><C:text-match negate-condition="yes">example.com</C:text-match></C:prop-filter>
  </C:filter>
  <C:limit><C:nresults>10</C:nresults></C:limit>
</C:addressbook-query>)");
  CHECK(report.kind == Report::kAddressbookQuery);
  CHECK(report.props == std::vector<QName>{kGetetag, kAddressData});
  CHECK_FALSE(report.anyof);
  REQUIRE(report.text_matches.size() == 2);
  CHECK(report.text_matches[0].property == "FN");
  CHECK(report.text_matches[0].text == "Dan");
  CHECK(report.text_matches[0].match_type == "starts-with");
  CHECK_FALSE(report.text_matches[0].negate);
  CHECK(report.text_matches[1].property == "EMAIL");
  CHECK(report.text_matches[1].match_type == "contains");  // RFC 6352 10.5.4 default
  CHECK(report.text_matches[1].negate);
  CHECK(report.limit == std::optional<int>(10));
  CHECK_FALSE(report.filter_approximated);
}

TEST_CASE("addressbook-query defaults to anyof and refuses unknown match-types") {
  const auto report = parse_report(R"(<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
    <C:filter><C:prop-filter name="UID"><C:text-match match-type="equals">abc</C:text-match></C:prop-filter>
    <C:prop-filter name="NICKNAME"><C:is-not-defined/></C:prop-filter></C:filter></C:addressbook-query>)");
  CHECK(report.anyof);
  REQUIRE(report.text_matches.size() == 1);
  CHECK(report.text_matches[0].match_type == "equals");
  CHECK(report.filter_approximated);

  CHECK(error_code_of([] {
          parse_report(R"(<C:addressbook-query xmlns:C="urn:ietf:params:xml:ns:carddav"><C:filter>
            <C:prop-filter name="FN"><C:text-match match-type="regex">.*</C:text-match></C:prop-filter>
            </C:filter></C:addressbook-query>)");
        }) == "unsupported_filter");
}

TEST_CASE("addressbook-multiget gives its hrefs") {
  const auto report = parse_report(R"(<card:addressbook-multiget xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav">
    <d:prop><d:getetag/><card:address-data/></d:prop><d:href>/a/1.vcf</d:href></card:addressbook-multiget>)");
  CHECK(report.kind == Report::kAddressbookMultiget);
  CHECK(report.hrefs == std::vector<std::string>{"/a/1.vcf"});
}

TEST_CASE("sync-collection gives token, level and limit") {
  const auto report = parse_report(R"(<?xml version="1.0" encoding="utf-8" ?>
<D:sync-collection xmlns:D="DAV:">
  <D:sync-token>http://example.com/ns/sync/1234</D:sync-token>
  <D:sync-level>1</D:sync-level>
  <D:limit><D:nresults>100</D:nresults></D:limit>
  <D:prop><D:getetag/></D:prop>
</D:sync-collection>)");
  CHECK(report.kind == Report::kSyncCollection);
  CHECK(report.sync_token == "http://example.com/ns/sync/1234");
  CHECK(report.sync_level == 1);
  CHECK(report.limit == std::optional<int>(100));
  CHECK(report.props == std::vector<QName>{kGetetag});

  const auto initial = parse_report(R"(<sync-collection xmlns="DAV:"><sync-token/><sync-level>infinite</sync-level>
    <prop><getetag/></prop></sync-collection>)");
  CHECK(initial.sync_token.empty());
  CHECK(initial.sync_level == Report::kSyncLevelInfinite);
  CHECK_FALSE(initial.limit);

  CHECK(error_code_of([] {
          parse_report(R"(<sync-collection xmlns="DAV:"><sync-token/><sync-level>2</sync-level></sync-collection>)");
        }) == "bad_request");
  CHECK(error_code_of([] {
          parse_report(R"(<sync-collection xmlns="DAV:"><limit><nresults>-1</nresults></limit></sync-collection>)");
        }) == "bad_request");
}

TEST_CASE("free-busy-query gives its time-range") {
  const auto report = parse_report(R"(<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">
    <C:time-range start="20260101T000000Z" end="20260108T000000Z"/></C:free-busy-query>)");
  CHECK(report.kind == Report::kFreeBusyQuery);
  CHECK(report.time_range_start == std::optional<std::string>("20260101T000000Z"));
  CHECK(report.time_range_end == std::optional<std::string>("20260108T000000Z"));
}

TEST_CASE("an unknown report root is kUnknown, not an error") {
  const auto report = parse_report(R"(<D:expand-property xmlns:D="DAV:"><D:property name="owner"/></D:expand-property>)");
  CHECK(report.kind == Report::kUnknown);
  CHECK(report.root == QName{"DAV:", "expand-property"});
  // A familiar name in the wrong namespace is unknown too.
  CHECK(parse_report(R"(<calendar-query xmlns="DAV:"/>)").kind == Report::kUnknown);
}

TEST_CASE("XML that is not well-formed is bad_xml with status 400") {
  for (const std::string& body : std::vector<std::string>{
           "<D:propfind xmlns:D=\"DAV:\"><D:allprop></D:propfind>",  // mismatched tag
           "<D:propfind><D:allprop/></D:propfind>",                   // undeclared prefix
           "<D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind><extra/>",
           "<?xml version=\"1.0\"?>",
           "not xml at all",
           std::string("<a xmlns=\"DAV:\">\xff\xfe</a>"),  // not UTF-8
       }) {
    CAPTURE(body);
    try {
      parse_propfind(body);
      FAIL("no error");
    } catch (const coop::Error& e) {
      CHECK(e.code() == "bad_xml");
      CHECK(e.status() == 400);
    }
    CHECK(error_code_of([&] { parse_proppatch(body); }) == "bad_xml");
    CHECK(error_code_of([&] { parse_mkcol(body); }) == "bad_xml");
    CHECK(error_code_of([&] { parse_report(body); }) == "bad_xml");
  }
}

TEST_CASE("a billion laughs body is refused quickly") {
  std::string body = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n";
  for (int i = 1; i <= 9; ++i) {
    body += "<!ENTITY lol" + std::to_string(i) + " \"";
    for (int k = 0; k < 10; ++k) body += "&lol" + (i == 1 ? std::string() : std::to_string(i - 1)) + ";";
    body += "\">\n";
  }
  body += "]>\n<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><D:displayname>&lol9;</D:displayname>"
          "</D:prop></D:set></D:propertyupdate>";
  const auto started = std::chrono::steady_clock::now();
  CHECK(error_code_of([&] { parse_proppatch(body); }) == "bad_xml");
  CHECK(error_code_of([&] { parse_report(body); }) == "bad_xml");
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
}

TEST_CASE("an external entity is never read") {
  const std::string body = R"(<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>&xxe;</D:displayname></D:prop></D:set></D:propertyupdate>)";
  CHECK(error_code_of([&] { parse_proppatch(body); }) == "bad_xml");
}

TEST_CASE("a body over the size limit is refused before parsing") {
  const std::string body = "<D:propfind xmlns:D=\"DAV:\"><D:allprop/>" + std::string(kMaxXmlBodyBytes, ' ') + "</D:propfind>";
  try {
    parse_propfind(body);
    FAIL("no error");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "body_too_large");
    CHECK(e.status() == 413);
  }
}

TEST_CASE("multistatus groups props by status and parses back") {
  Multistatus multistatus;
  const std::string ics = "BEGIN:VCALENDAR\r\nSUMMARY:Tom & Jerry <3\r\nEND:VCALENDAR\r\n";
  multistatus.add_response("/cal/ann/work/a b.ics", {
                                                        {kGetetag, "\"etag-1\"", 200},
                                                        {{"DAV:", "quota-used-bytes"}, std::nullopt, 404},
                                                        {kCalendarData, xml_escape(ics), 200},
                                                        {{"http://apple.com/ns/ical/", "calendar-color"}, std::nullopt, 404},
                                                        {kResourcetype, "<D:collection/><C:calendar/>", 200},
                                                    });
  multistatus.add_status_response("/cal/ann/work/missing.ics", 404);
  multistatus.set_sync_token("http://coop/sync/7?a=1&b=2");
  const auto xml = multistatus.str();

  ParsedXml parsed(xml);
  REQUIRE(parsed.well_formed());
  CHECK(parsed.count("/d:multistatus/d:response") == 2);
  const std::string first = "/d:multistatus/d:response[1]";
  CHECK(parsed.string(first + "/d:href") == "/cal/ann/work/a b.ics");
  CHECK(parsed.count(first + "/d:propstat") == 2);
  const std::string ok = first + "/d:propstat[d:status='HTTP/1.1 200 OK']/d:prop";
  const std::string missing = first + "/d:propstat[d:status='HTTP/1.1 404 Not Found']/d:prop";
  CHECK(parsed.count(ok + "/*") == 3);
  CHECK(parsed.string(ok + "/d:getetag") == "\"etag-1\"");
  CHECK(parsed.string(ok + "/c:calendar-data") == ics);  // CRLF and markup characters survive
  CHECK(parsed.count(ok + "/d:resourcetype/d:collection") == 1);
  CHECK(parsed.count(ok + "/d:resourcetype/c:calendar") == 1);
  CHECK(parsed.count(missing + "/*") == 2);
  CHECK(parsed.count(missing + "/d:quota-used-bytes") == 1);
  CHECK(parsed.count(missing + "/ical:calendar-color") == 1);

  const std::string second = "/d:multistatus/d:response[2]";
  CHECK(parsed.string(second + "/d:href") == "/cal/ann/work/missing.ics");
  CHECK(parsed.string(second + "/d:status") == "HTTP/1.1 404 Not Found");
  CHECK(parsed.count(second + "/d:propstat") == 0);
  // RFC 6578 3.2: the token follows the responses.
  CHECK(parsed.string("/d:multistatus/*[last()][self::d:sync-token]") == "http://coop/sync/7?a=1&b=2");
}

TEST_CASE("address data in multistatus is escaped text") {
  Multistatus multistatus;
  const std::string vcard = "BEGIN:VCARD\r\nFN:<b>A&B</b>\r\nEND:VCARD\r\n";
  multistatus.add_response("/ab/1.vcf", {{kAddressData, xml_escape(vcard), 200}});
  ParsedXml parsed(multistatus.str());
  REQUIRE(parsed.well_formed());
  CHECK(parsed.string("//cr:address-data") == vcard);
  CHECK(parsed.count("//cr:address-data/*") == 0);
}

TEST_CASE("xml_escape keeps output well-formed for control characters and broken UTF-8") {
  const std::string nasty = std::string("a\x01" "b\xC3\xA9" "c\xFF" "d\xED\xA0\x80" "e\xEF\xBF\xBF" "f\xF0\x9F\x98\x80");
  Multistatus multistatus;
  multistatus.add_response(nasty, {{kDisplayname, xml_escape(nasty), 200}});
  ParsedXml parsed(multistatus.str());
  REQUIRE(parsed.well_formed());
  const auto shown = parsed.string("//d:displayname");
  CHECK(shown.find("b\xC3\xA9" "c") != std::string::npos);   // valid é kept
  CHECK(shown.find("f\xF0\x9F\x98\x80") != std::string::npos);  // valid emoji kept
  CHECK(xml_escape("<a href=\"x\">&</a>") == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
}

TEST_CASE("error_body names the precondition in its namespace") {
  const auto body = error_body({"urn:ietf:params:xml:ns:caldav", "valid-calendar-data"});
  ParsedXml parsed(body);
  REQUIRE(parsed.well_formed());
  CHECK(parsed.count("/d:error/c:valid-calendar-data") == 1);
  CHECK(body.find("<C:valid-calendar-data/>") != std::string::npos);
  CHECK(ParsedXml(error_body({"DAV:", "valid-sync-token"})).count("/d:error/d:valid-sync-token") == 1);
}

TEST_CASE("status_line gives the HTTP/1.1 status with its reason phrase") {
  CHECK(status_line(200) == "HTTP/1.1 200 OK");
  CHECK(status_line(404) == "HTTP/1.1 404 Not Found");
  CHECK(status_line(403) == "HTTP/1.1 403 Forbidden");
  CHECK(status_line(507) == "HTTP/1.1 507 Insufficient Storage");
  CHECK(status_line(299) == "HTTP/1.1 299 Unknown");
}

TEST_CASE("element_xml uses the document prefixes and declares foreign namespaces") {
  CHECK(element_xml({"DAV:", "href"}, "/x/") == "<D:href>/x/</D:href>");
  CHECK(element_xml({"http://calendarserver.org/ns/", "getctag"}) == "<CS:getctag/>");
  CHECK(element_xml({"urn:ietf:params:xml:ns:carddav", "addressbook"}) == "<CR:addressbook/>");
  CHECK(element_xml({"http://apple.com/ns/ical/", "calendar-order"}, "1") ==
        "<X:calendar-order xmlns:X=\"http://apple.com/ns/ical/\">1</X:calendar-order>");
  CHECK(href_xml("/a&b/") == "<D:href>/a&amp;b/</D:href>");
  CHECK(clark(kDisplayname) == "{DAV:}displayname");
}
