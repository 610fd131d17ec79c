// WebDAV/CalDAV/CardDAV XML: libxml2 parsing of request bodies and string building of responses.
#include "workers/dav/dav_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <charconv>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <tuple>

#include "common/error.h"
#include "common/text.h"

namespace coop::dav {

namespace {

constexpr std::string_view kXmlNamespace = "http://www.w3.org/XML/1998/namespace";
constexpr std::string_view kXmlDeclaration = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
constexpr std::string_view kNamespaceDeclarations =
    " xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\""
    " xmlns:CR=\"urn:ietf:params:xml:ns:carddav\" xmlns:CS=\"http://calendarserver.org/ns/\"";
constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

struct DocFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
struct ParserCtxtFree {
  void operator()(xmlParserCtxt* ctxt) const { xmlFreeParserCtxt(ctxt); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocFree>;

Error bad_request(const std::string& message) { return Error(errc::kBadRequest, message, 400); }

// ---- parsing ------------------------------------------------------------------------------

thread_local bool saw_doctype = false;

// Request bodies never need a DTD, and refusing it at <!DOCTYPE stops entity declarations (and
// so "billion laughs" and external entities) before libxml2 reads any of them.
void refuse_doctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  saw_doctype = true;
  xmlStopParser(static_cast<xmlParserCtxtPtr>(ctx));
}

bool is_blank(std::string_view body) {
  return body.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

DocPtr parse_document(std::string_view body) {
  if (body.size() > kMaxXmlBodyBytes)
    throw Error(errc::kBodyTooLarge, "XML body larger than " + std::to_string(kMaxXmlBodyBytes) + " bytes", 413);
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });

  std::unique_ptr<xmlParserCtxt, ParserCtxtFree> ctxt(xmlNewParserCtxt());
  if (!ctxt) throw std::bad_alloc();
  ctxt->sax->internalSubset = refuse_doctype;
  saw_doctype = false;
  // No XML_PARSE_NOENT (no entity substitution), no DTDLOAD/DTDATTR, no HUGE (keeps libxml2's
  // depth and size limits), NONET so nothing is fetched.
  const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
  DocPtr doc(xmlCtxtReadMemory(ctxt.get(), body.data(), static_cast<int>(body.size()), nullptr,
                               nullptr, options));
  if (saw_doctype) throw Error(errc::kBadXml, "DOCTYPE is not allowed in a request body", 400);
  if (!doc || !ctxt->wellFormed || !ctxt->nsWellFormed || !xmlDocGetRootElement(doc.get())) {
    std::string message = "request body is not well-formed XML";
    const xmlError* error = &ctxt->lastError;
    if (error->message) {
      std::string detail = error->message;
      while (!detail.empty() && detail.back() == '\n') detail.pop_back();
      message += " (line " + std::to_string(error->line) + ": " + detail + ")";
    }
    throw Error(errc::kBadXml, message, 400);
  }
  return doc;
}

std::string_view ns_of(const xmlNode* node) {
  return node->ns && node->ns->href ? reinterpret_cast<const char*>(node->ns->href) : "";
}

std::string_view name_of(const xmlNode* node) { return reinterpret_cast<const char*>(node->name); }

QName qname_of(const xmlNode* node) { return {std::string(ns_of(node)), std::string(name_of(node))}; }

bool is(const xmlNode* node, std::string_view ns, std::string_view name) {
  return ns_of(node) == ns && name_of(node) == name;
}

// The element children of node, in document order.
std::vector<const xmlNode*> elements(const xmlNode* node) {
  std::vector<const xmlNode*> out;
  for (const xmlNode* child = node->children; child; child = child->next)
    if (child->type == XML_ELEMENT_NODE) out.push_back(child);
  return out;
}

void append_text(const xmlNode* node, std::string& out) {
  for (const xmlNode* child = node->children; child; child = child->next) {
    if ((child->type == XML_TEXT_NODE || child->type == XML_CDATA_SECTION_NODE) && child->content)
      out += reinterpret_cast<const char*>(child->content);
    else if (child->type == XML_ELEMENT_NODE)
      append_text(child, out);
  }
}

std::string text_of(const xmlNode* node) {
  std::string out;
  append_text(node, out);
  return out;
}

// An unqualified attribute (name=, start=, match-type= ...), as CalDAV and CardDAV use.
std::optional<std::string> attribute(const xmlNode* node, const char* name) {
  for (const xmlAttr* attr = node->properties; attr; attr = attr->next) {
    if (attr->ns || std::strcmp(reinterpret_cast<const char*>(attr->name), name) != 0) continue;
    std::string value;
    for (const xmlNode* child = attr->children; child; child = child->next)
      if (child->content) value += reinterpret_cast<const char*>(child->content);
    return value;
  }
  return std::nullopt;
}


// ---- serialising --------------------------------------------------------------------------

std::string_view known_prefix(std::string_view ns) {
  if (ns == kDav) return "D";
  if (ns == kCalDav) return "C";
  if (ns == kCardDav) return "CR";
  if (ns == kCalendarServer) return "CS";
  return {};
}

// The start of a tag for name ("D:displayname", or "X:color xmlns:X=\"...\"" outside the known
// namespaces) and the name its end tag uses. in_scope_x is the namespace "X" is bound to.
struct TagName {
  std::string qualified;     // what goes after '<' and '</'
  std::string declaration;   // " xmlns:X=..." or ""
};

TagName tag_name(std::string_view ns, std::string_view name, std::string_view in_scope_x) {
  if (ns.empty()) return {std::string(name), ""};
  if (const auto prefix = known_prefix(ns); !prefix.empty())
    return {std::string(prefix) + ":" + std::string(name), ""};
  TagName tag{"X:" + std::string(name), ""};
  if (ns != in_scope_x) tag.declaration = " xmlns:X=\"" + xml_escape(ns) + "\"";
  return tag;
}

void serialize_children(const xmlNode* node, std::string& out, std::string_view in_scope_x);

void serialize_element(const xmlNode* element, std::string& out, std::string_view in_scope_x) {
  const auto ns = ns_of(element);
  const auto tag = tag_name(ns, name_of(element), in_scope_x);
  const bool own_x = known_prefix(ns).empty() && !ns.empty();
  const std::string_view x = own_x ? ns : in_scope_x;
  out += '<';
  out += tag.qualified;
  out += tag.declaration;
  int extra_prefixes = 0;
  for (const xmlAttr* attr = element->properties; attr; attr = attr->next) {
    const std::string_view attr_ns =
        attr->ns && attr->ns->href ? reinterpret_cast<const char*>(attr->ns->href) : "";
    std::string attr_name = reinterpret_cast<const char*>(attr->name);
    if (attr_ns == kXmlNamespace) {
      attr_name = "xml:" + attr_name;
    } else if (!attr_ns.empty()) {
      if (const auto prefix = known_prefix(attr_ns); !prefix.empty()) {
        attr_name = std::string(prefix) + ":" + attr_name;
      } else if (attr_ns == x) {
        attr_name = "X:" + attr_name;
      } else {
        const std::string prefix = "Y" + std::to_string(extra_prefixes++);
        out += " xmlns:" + prefix + "=\"" + xml_escape(attr_ns) + "\"";
        attr_name = prefix + ":" + attr_name;
      }
    }
    std::string value;
    for (const xmlNode* child = attr->children; child; child = child->next)
      if (child->content) value += reinterpret_cast<const char*>(child->content);
    out += ' ' + attr_name + "=\"" + xml_escape(value) + '"';
  }
  std::string inner;
  serialize_children(element, inner, x);
  if (inner.empty()) {
    out += "/>";
  } else {
    out += '>';
    out += inner;
    out += "</" + tag.qualified + '>';
  }
}

void serialize_children(const xmlNode* node, std::string& out, std::string_view in_scope_x) {
  for (const xmlNode* child = node->children; child; child = child->next) {
    if ((child->type == XML_TEXT_NODE || child->type == XML_CDATA_SECTION_NODE) && child->content)
      out += xml_escape(reinterpret_cast<const char*>(child->content));
    else if (child->type == XML_ELEMENT_NODE)
      serialize_element(child, out, in_scope_x);
    // Comments and processing instructions carry no property value.
  }
}

// A property's content re-serialised with the document prefixes (see dav_xml.h).
std::string inner_xml(const xmlNode* property) {
  std::string out;
  serialize_children(property, out, {});
  return out;
}

// ---- REPORT filters -----------------------------------------------------------------------

void read_time_range(const xmlNode* time_range, Report& report) {
  report.time_range_start = attribute(time_range, "start");
  report.time_range_end = attribute(time_range, "end");
}

CompFilter read_comp_filter(const xmlNode* node, int depth);

// RFC 4791 9.7: filter > comp-filter VCALENDAR > comp-filter VEVENT > time-range, for the
// store's pre-selection; the whole tree goes to calendar_filter.
void read_calendar_filter(const xmlNode* filter, Report& report) {
  for (const auto* child : elements(filter))
    if (is(child, kCalDav, "comp-filter")) {
      if (report.calendar_filter) throw bad_request("a filter holds one comp-filter (VCALENDAR)");
      report.calendar_filter = read_comp_filter(child, 0);
    }
  if (!report.calendar_filter) throw bad_request("a filter holds one comp-filter (VCALENDAR)");
  const xmlNode* vcalendar = nullptr;
  for (const auto* child : elements(filter)) {
    if (!vcalendar && is(child, kCalDav, "comp-filter") && ascii_iequals(attribute(child, "name").value_or(""), "VCALENDAR"))
      vcalendar = child;
    else
      report.filter_approximated = true;
  }
  if (!vcalendar) return;
  const xmlNode* component = nullptr;
  for (const auto* child : elements(vcalendar)) {
    if (!component && is(child, kCalDav, "comp-filter"))
      component = child;
    else
      report.filter_approximated = true;
  }
  if (!component) return;
  bool negated = false;
  for (const auto* child : elements(component)) {
    if (is(child, kCalDav, "time-range")) {
      read_time_range(child, report);
    } else {
      if (is(child, kCalDav, "is-not-defined")) negated = true;
      report.filter_approximated = true;
    }
  }
  // is-not-defined selects resources without the component: "" keeps the result a superset.
  if (!negated) report.comp_filter = attribute(component, "name").value_or("");
}

CalendarTextMatch read_calendar_text_match(const xmlNode* node) {
  CalendarTextMatch match;
  match.text = text_of(node);
  // RFC 4791 7.5: i;ascii-casemap by default; i;octet too. Anything else: supported-collation.
  const auto collation = attribute(node, "collation").value_or("i;ascii-casemap");
  if (collation == "i;octet") match.octet = true;
  else if (collation != "i;ascii-casemap")
    throw Error(errc::kUnsupportedCollation, "unsupported collation \"" + collation.substr(0, 40) + "\"", 403);
  const auto negate = attribute(node, "negate-condition").value_or("no");
  if (negate != "yes" && negate != "no") throw bad_request("negate-condition is yes or no");
  match.negate = negate == "yes";
  return match;
}

CalendarTimeRange read_calendar_time_range(const xmlNode* node) {
  CalendarTimeRange range{attribute(node, "start"), attribute(node, "end")};
  if (!range.start && !range.end) throw bad_request("time-range needs start or end");
  return range;
}

// RFC 4791 9.7.1-9.7.3: comp-filter > (is-not-defined | time-range? prop-filter* comp-filter*).
CompFilter read_comp_filter(const xmlNode* node, int depth) {
  if (depth > 8) throw Error(errc::kUnsupportedFilter, "comp-filters nest too deep", 403);
  CompFilter filter;
  filter.name = attribute(node, "name").value_or("");
  if (filter.name.empty()) throw bad_request("comp-filter without a name");
  for (const auto* child : elements(node)) {
    if (is(child, kCalDav, "is-not-defined")) {
      filter.is_not_defined = true;
    } else if (is(child, kCalDav, "time-range")) {
      filter.time_range = read_calendar_time_range(child);
    } else if (is(child, kCalDav, "comp-filter")) {
      filter.comps.push_back(read_comp_filter(child, depth + 1));
    } else if (is(child, kCalDav, "prop-filter")) {
      PropFilter prop;
      prop.name = attribute(child, "name").value_or("");
      if (prop.name.empty()) throw bad_request("prop-filter without a name");
      for (const auto* part : elements(child)) {
        if (is(part, kCalDav, "is-not-defined")) prop.is_not_defined = true;
        else if (is(part, kCalDav, "time-range")) prop.time_range = read_calendar_time_range(part);
        else if (is(part, kCalDav, "text-match")) prop.text_match = read_calendar_text_match(part);
        else if (is(part, kCalDav, "param-filter")) {
          ParamFilter param;
          param.name = attribute(part, "name").value_or("");
          if (param.name.empty()) throw bad_request("param-filter without a name");
          for (const auto* p : elements(part)) {
            if (is(p, kCalDav, "is-not-defined")) param.is_not_defined = true;
            else if (is(p, kCalDav, "text-match")) param.text_match = read_calendar_text_match(p);
            else throw Error(errc::kUnsupportedFilter, "unknown element in param-filter: " + clark(qname_of(p)), 403);
          }
          prop.params.push_back(std::move(param));
        } else {
          throw Error(errc::kUnsupportedFilter, "unknown element in prop-filter: " + clark(qname_of(part)), 403);
        }
      }
      filter.props.push_back(std::move(prop));
    } else {
      throw Error(errc::kUnsupportedFilter, "unknown element in comp-filter: " + clark(qname_of(child)), 403);
    }
  }
  return filter;
}

bool read_test(const xmlNode* node) {
  const auto test = attribute(node, "test").value_or("anyof");
  if (test == "anyof") return true;
  if (test == "allof") return false;
  throw bad_request("filter test must be anyof or allof, not \"" + test + "\"");
}

// RFC 6352 10.5: filter(test) > prop-filter(name, test) > text-match(match-type, negate-condition).
void read_card_filter(const xmlNode* filter, Report& report) {
  report.anyof = read_test(filter);
  for (const auto* prop_filter : elements(filter)) {
    if (!is(prop_filter, kCardDav, "prop-filter")) {
      report.filter_approximated = true;
      continue;
    }
    const auto property = attribute(prop_filter, "name");
    if (!property || property->empty()) throw bad_request("prop-filter without a name");
    int matches = 0;
    for (const auto* child : elements(prop_filter)) {
      if (!is(child, kCardDav, "text-match")) {
        report.filter_approximated = true;
        continue;
      }
      Report::TextMatch match;
      match.property = *property;
      match.text = text_of(child);
      match.match_type = attribute(child, "match-type").value_or("contains");
      if (match.match_type != "contains" && match.match_type != "equals" &&
          match.match_type != "starts-with" && match.match_type != "ends-with")
        throw Error(errc::kUnsupportedFilter, "unsupported match-type \"" + match.match_type + "\"", 403);
      match.negate = attribute(child, "negate-condition").value_or("no") == "yes";
      report.text_matches.push_back(std::move(match));
      ++matches;
    }
    // The text-matches are flattened under the filter's test: exact only when the prop-filter's
    // own test agrees or it has at most one text-match.
    if (matches == 0 || (matches > 1 && read_test(prop_filter) != report.anyof))
      report.filter_approximated = true;
  }
}

int read_nresults(const xmlNode* limit) {
  for (const auto* child : elements(limit)) {
    if (name_of(child) != "nresults") continue;
    const auto text = text_of(child);
    const auto digits = trim(text);
    int value = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size() || value < 0 || digits.empty())
      throw bad_request("nresults must be a non-negative integer");
    return value;
  }
  throw bad_request("limit without nresults");
}

Report::Kind report_kind(const QName& root) {
  if (root.ns == kCalDav && root.name == "calendar-query") return Report::kCalendarQuery;
  if (root.ns == kCalDav && root.name == "calendar-multiget") return Report::kCalendarMultiget;
  if (root.ns == kCalDav && root.name == "free-busy-query") return Report::kFreeBusyQuery;
  if (root.ns == kCardDav && root.name == "addressbook-query") return Report::kAddressbookQuery;
  if (root.ns == kCardDav && root.name == "addressbook-multiget") return Report::kAddressbookMultiget;
  if (root.ns == kDav && root.name == "sync-collection") return Report::kSyncCollection;
  return Report::kUnknown;
}

// ---- output helpers -----------------------------------------------------------------------

// Appends the code point at text[i] (advancing i) if it is well-formed UTF-8 that XML 1.0 allows
// (2.2 Char), else U+FFFD.
void append_checked_utf8(std::string_view text, std::size_t& i, std::string& out) {
  const auto lead = static_cast<unsigned char>(text[i]);
  std::size_t length = 0;
  char32_t code = 0;
  if (lead >= 0xC2 && lead <= 0xDF) length = 2, code = lead & 0x1F;
  else if (lead >= 0xE0 && lead <= 0xEF) length = 3, code = lead & 0x0F;
  else if (lead >= 0xF0 && lead <= 0xF4) length = 4, code = lead & 0x07;
  bool valid = length != 0 && i + length <= text.size();
  for (std::size_t k = 1; valid && k < length; ++k) {
    const auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) valid = false;
    code = (code << 6) | (next & 0x3F);
  }
  if (valid) {
    const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
    const bool surrogate = code >= 0xD800 && code <= 0xDFFF;
    valid = !overlong && !surrogate && code <= 0x10FFFF && code != 0xFFFE && code != 0xFFFF;
  }
  if (valid) {
    out.append(text.substr(i, length));
    i += length;
  } else {
    out += kReplacementCharacter;
    ++i;
  }
}

}  // namespace

bool QName::operator<(const QName& other) const {
  return std::tie(ns, name) < std::tie(other.ns, other.name);
}

bool QName::operator==(const QName& other) const { return ns == other.ns && name == other.name; }

std::string clark(const QName& name) { return "{" + name.ns + "}" + name.name; }

PropfindRequest parse_propfind(std::string_view body) {
  PropfindRequest request;
  if (is_blank(body)) return request;  // RFC 4918 9.1: no body means allprop
  const auto doc = parse_document(body);
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!is(root, kDav, "propfind")) throw bad_request("PROPFIND body must be DAV:propfind, not " + clark(qname_of(root)));
  bool chosen = false;
  for (const auto* child : elements(root)) {
    if (is(child, kDav, "prop")) {
      request.kind = PropfindRequest::kProp;
      for (const auto* prop : elements(child)) request.props.push_back(qname_of(prop));
      chosen = true;
    } else if (is(child, kDav, "allprop")) {
      request.kind = PropfindRequest::kAllprop;
      chosen = true;
    } else if (is(child, kDav, "propname")) {
      request.kind = PropfindRequest::kPropname;
      chosen = true;
    } else if (is(child, kDav, "include")) {
      for (const auto* prop : elements(child)) request.include.push_back(qname_of(prop));
    }
    // RFC 4918 17: unknown elements are ignored.
  }
  if (!chosen) throw bad_request("DAV:propfind needs prop, allprop or propname");
  return request;
}

ProppatchRequest parse_proppatch(std::string_view body) {
  if (is_blank(body)) throw bad_request("PROPPATCH needs a DAV:propertyupdate body");
  const auto doc = parse_document(body);
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!is(root, kDav, "propertyupdate"))
    throw bad_request("PROPPATCH body must be DAV:propertyupdate, not " + clark(qname_of(root)));
  ProppatchRequest request;
  for (const auto* instruction : elements(root)) {
    const bool set = is(instruction, kDav, "set");
    if (!set && !is(instruction, kDav, "remove")) continue;
    for (const auto* prop : elements(instruction)) {
      if (!is(prop, kDav, "prop")) continue;
      for (const auto* property : elements(prop))
        request.changes.emplace_back(qname_of(property),
                                     set ? std::optional<std::string>(inner_xml(property)) : std::nullopt);
    }
  }
  if (request.changes.empty()) throw bad_request("DAV:propertyupdate changes no property");
  return request;
}

LockRequest parse_lockinfo(std::string_view body) {
  LockRequest request;
  if (is_blank(body)) return request;  // a refresh (RFC 4918 9.10.2)
  const auto doc = parse_document(body);
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!is(root, kDav, "lockinfo")) throw bad_request("LOCK body must be DAV:lockinfo, not " + clark(qname_of(root)));
  request.refresh = false;
  for (const auto* child : elements(root)) {
    if (is(child, kDav, "lockscope")) {
      for (const auto* scope : elements(child)) request.exclusive = is(scope, kDav, "exclusive");
    } else if (is(child, kDav, "locktype")) {
      for (const auto* type : elements(child))
        if (!is(type, kDav, "write")) throw bad_request("only write locks exist");
    } else if (is(child, kDav, "owner")) {
      request.owner = inner_xml(child);
    }
  }
  return request;
}

MkcolRequest parse_mkcol(std::string_view body) {
  MkcolRequest request;
  if (is_blank(body)) return request;
  const auto doc = parse_document(body);
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!is(root, kDav, "mkcol") && !is(root, kCalDav, "mkcalendar"))
    throw bad_request("body must be DAV:mkcol or CALDAV:mkcalendar, not " + clark(qname_of(root)));
  for (const auto* set : elements(root)) {
    if (!is(set, kDav, "set")) continue;
    for (const auto* prop : elements(set)) {
      if (!is(prop, kDav, "prop")) continue;
      for (const auto* property : elements(prop)) {
        request.props.emplace_back(qname_of(property), inner_xml(property));
        if (is(property, kDav, "resourcetype")) {
          for (const auto* type : elements(property)) request.resourcetype.push_back(qname_of(type));
        } else if (is(property, kCalDav, "supported-calendar-component-set")) {
          // RFC 4791 5.2.3: <C:comp name="VEVENT"/>
          for (const auto* comp : elements(property))
            if (is(comp, kCalDav, "comp"))
              if (auto name = attribute(comp, "name"); name && !name->empty())
                request.components.push_back(std::move(*name));
        }
      }
    }
  }
  return request;
}

Report parse_report(std::string_view body) {
  if (is_blank(body)) throw bad_request("REPORT needs a body");
  const auto doc = parse_document(body);
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  Report report;
  report.root = qname_of(root);
  report.kind = report_kind(report.root);
  if (report.kind == Report::kUnknown) return report;
  for (const auto* child : elements(root)) {
    const auto ns = ns_of(child);
    const auto name = name_of(child);
    if (ns == kDav && name == "prop") {
      for (const auto* prop : elements(child)) {
        report.props.push_back(qname_of(prop));
        if (!is(prop, kCalDav, "calendar-data")) continue;
        for (const auto* option : elements(prop)) {
          if (is(option, kCalDav, "expand")) report.expand = read_calendar_time_range(option);
          else if (is(option, kCalDav, "limit-recurrence-set")) report.limit_recurrence_set = read_calendar_time_range(option);
        }
      }
    } else if (ns == kDav && name == "allprop") {
      report.allprop = true;
    } else if (ns == kDav && name == "href") {
      report.hrefs.emplace_back(trim(text_of(child)));
    } else if (ns == kDav && name == "sync-token") {
      report.sync_token = std::string(trim(text_of(child)));
    } else if (ns == kDav && name == "sync-level") {
      // RFC 6578 6.3
      const auto level = text_of(child);
      if (trim(level) == "1") report.sync_level = 1;
      else if (trim(level) == "infinite") report.sync_level = Report::kSyncLevelInfinite;
      else throw bad_request("sync-level must be 1 or infinite");
    } else if ((ns == kDav || ns == kCardDav) && name == "limit") {
      report.limit = read_nresults(child);
    } else if (ns == kCalDav && name == "filter") {
      read_calendar_filter(child, report);
    } else if (ns == kCardDav && name == "filter") {
      read_card_filter(child, report);
    } else if (ns == kCalDav && name == "time-range" && report.kind == Report::kFreeBusyQuery) {
      read_time_range(child, report);  // RFC 4791 7.10
    }
  }
  return report;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\r': out += "&#13;"; break;  // a raw CR would be normalised away by the reader
      case '\t':
      case '\n': out += c; break;
      default:
        if (static_cast<unsigned char>(c) >= 0x80) {
          append_checked_utf8(text, i, out);
          continue;
        }
        if (static_cast<unsigned char>(c) < 0x20)
          out += kReplacementCharacter;  // XML 1.0 2.2 has no way to carry other C0 controls
        else
          out += c;
    }
    ++i;
  }
  return out;
}

std::string href_xml(std::string_view href) { return "<D:href>" + xml_escape(href) + "</D:href>"; }

std::string element_xml(const QName& name, std::optional<std::string_view> inner) {
  const auto tag = tag_name(name.ns, name.name, {});
  if (!inner || inner->empty()) return "<" + tag.qualified + tag.declaration + "/>";
  std::string out = "<" + tag.qualified + tag.declaration + ">";
  out += *inner;
  out += "</" + tag.qualified + ">";
  return out;
}

void Multistatus::add_response(std::string_view href, const std::vector<PropValue>& props) {
  // RFC 4918 14.22: one propstat per status, each prop listed once.
  std::map<int, std::string> by_status;
  for (const auto& prop : props)
    by_status[prop.status] += element_xml(prop.name, prop.value ? std::optional<std::string_view>(*prop.value) : std::nullopt);
  if (by_status.empty()) by_status[200];
  responses_ += "<D:response>" + href_xml(href);
  for (const auto& [status, xml] : by_status) {
    responses_ += "<D:propstat><D:prop>" + xml + "</D:prop><D:status>" + status_line(status) +
                  "</D:status></D:propstat>";
  }
  responses_ += "</D:response>\n";
}

void Multistatus::add_status_response(std::string_view href, int status) {
  responses_ += "<D:response>" + href_xml(href) + "<D:status>" + status_line(status) + "</D:status></D:response>\n";
}

std::string Multistatus::str() const {
  std::string out(kXmlDeclaration);
  out += "<D:multistatus";
  out += kNamespaceDeclarations;
  out += ">\n";
  out += responses_;
  if (sync_token_) out += "<D:sync-token>" + xml_escape(*sync_token_) + "</D:sync-token>\n";
  out += "</D:multistatus>\n";
  return out;
}

std::string error_body(const QName& precondition, std::optional<std::string_view> inner_xml) {
  std::string out(kXmlDeclaration);
  out += "<D:error";
  out += kNamespaceDeclarations;
  out += ">";
  out += element_xml(precondition, inner_xml);
  out += "</D:error>\n";
  return out;
}

std::string status_line(int status) {
  // RFC 9110 15 reason phrases, plus RFC 4918 11 for 207, 422, 423, 424, 507.
  static const std::map<int, std::string_view> kReasons = {
      {200, "OK"},
      {201, "Created"},
      {204, "No Content"},
      {207, "Multi-Status"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {304, "Not Modified"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {409, "Conflict"},
      {412, "Precondition Failed"},
      {413, "Content Too Large"},
      {415, "Unsupported Media Type"},
      {422, "Unprocessable Content"},
      {423, "Locked"},
      {424, "Failed Dependency"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {507, "Insufficient Storage"},
  };
  const auto found = kReasons.find(status);
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(found == kReasons.end() ? "Unknown" : found->second);
}

}  // namespace coop::dav
