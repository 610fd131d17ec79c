// libFuzzer target: WebDAV/CalDAV/CardDAV request bodies, and multistatus built from what they parse to.
#include <libxml/parser.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "workers/dav/dav_xml.h"

namespace {

// Whatever a client sent, the multistatus echoing its properties must be well-formed XML.
void require_well_formed(const std::string& xml) {
  xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), nullptr, nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc) __builtin_trap();
  xmlFreeDoc(doc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  using namespace coop::dav;
  std::vector<PropValue> echoed;
  try {
    const auto propfind = parse_propfind(body);
    for (const auto& name : propfind.props) echoed.push_back({name, std::nullopt, 404});
  } catch (const coop::Error&) {
  }
  try {
    for (const auto& [name, value] : parse_proppatch(body).changes) echoed.push_back({name, value, 200});
  } catch (const coop::Error&) {
  }
  try {
    for (const auto& [name, value] : parse_mkcol(body).props) echoed.push_back({name, value, 403});
  } catch (const coop::Error&) {
  }
  try {
    const auto report = parse_report(body);
    for (const auto& name : report.props) echoed.push_back({name, xml_escape(report.sync_token), 200});
    Multistatus hrefs;
    for (const auto& href : report.hrefs) hrefs.add_status_response(href, 404);
    hrefs.set_sync_token(report.sync_token);
    require_well_formed(hrefs.str());
  } catch (const coop::Error&) {
  }
  if (!echoed.empty()) {
    Multistatus multistatus;
    multistatus.add_response(std::string(body.substr(0, 64)), echoed);
    require_well_formed(multistatus.str());
  }
  return 0;
}
