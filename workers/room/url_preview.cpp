// URL previews: a guarded fetch with libcurl and OpenGraph read with libxml2's HTML parser.
#include "workers/room/url_preview.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>

#include "common/error.h"
#include "common/net/cidr.h"
#include "common/net/special_addresses.h"
#include "common/text.h"

namespace coop::room {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxUrlBytes = 2048;
constexpr std::size_t kMaxPageBytes = 1 << 20;
constexpr std::size_t kMaxFieldBytes = 500;
constexpr std::size_t kMaxCached = 1000;
constexpr auto kCacheFor = std::chrono::hours(1);
constexpr long kTimeoutMs = 10000;
constexpr long kMaxRedirects = 5;

struct Fetch {
  const std::vector<net::Cidr>* allowed = nullptr;
  bool refused = false;
  std::string body;
  bool truncated = false;
};

// Every connection curl opens, first or after a redirect, comes here with the address it
// resolved: the check is on the address connected to, so DNS cannot answer differently later.
curl_socket_t open_checked(void* data, curlsocktype, curl_sockaddr* address) {
  auto* fetch = static_cast<Fetch*>(data);
  char text[INET6_ADDRSTRLEN] = {};
  if (address->family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&address->addr)->sin_addr, text, sizeof text);
  else if (address->family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&address->addr)->sin6_addr, text, sizeof text);
  bool allowed = net::is_public_address(text);
  for (const auto& range : *fetch->allowed) allowed = allowed || range.contains(text);
  if (!allowed) {
    fetch->refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype, address->protocol);
}

std::size_t collect(char* data, std::size_t size, std::size_t count, void* out) {
  auto* fetch = static_cast<Fetch*>(out);
  const auto n = size * count;
  if (fetch->body.size() + n > kMaxPageBytes) {
    fetch->truncated = true;
    return 0;  // enough: the head of a page holds what a preview shows
  }
  fetch->body.append(data, n);
  return n;
}

std::string attribute(xmlNode* node, const char* name) {
  xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (!value) return "";
  std::string text(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return text;
}

std::string clipped(std::string text) {
  if (text.size() > kMaxFieldBytes) {
    text.resize(kMaxFieldBytes);
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();  // whole characters
    if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
  }
  return text;
}

// og:title, og:description, og:site_name, og:type and og:url, with <title> and the description
// meta tag where the page has no og: ones. Images are not fetched.
void read_opengraph(xmlNode* node, json& og, std::string& title, std::string& description) {
  for (; node; node = node->next) {
    if (node->type == XML_ELEMENT_NODE) {
      const std::string name = ascii_lower(reinterpret_cast<const char*>(node->name));
      if (name == "meta") {
        const auto key = ascii_lower(attribute(node, "property").empty() ? attribute(node, "name") : attribute(node, "property"));
        const auto content = attribute(node, "content");
        if ((key == "og:title" || key == "og:description" || key == "og:site_name" || key == "og:type" || key == "og:url") &&
            !og.contains(key) && is_valid_utf8(content))
          og[key] = clipped(content);
        if (key == "description" && description.empty()) description = content;
      } else if (name == "title" && title.empty()) {
        xmlChar* text = xmlNodeGetContent(node);
        if (text) {
          title = reinterpret_cast<const char*>(text);
          xmlFree(text);
        }
      }
    }
    read_opengraph(node->children, og, title, description);
  }
}

}  // namespace

struct UrlPreviewer::Impl {
  PreviewSettings settings;
  std::vector<net::Cidr> allowed;
  std::mutex mutex;
  std::map<std::string, std::pair<json, std::chrono::steady_clock::time_point>> cache;
};

UrlPreviewer::UrlPreviewer(PreviewSettings settings) : impl_(std::make_unique<Impl>()) {
  for (const auto& text : settings.allow_networks) {
    auto range = net::Cidr::parse(text);
    if (!range) throw Error(errc::kConfigInvalid, "workers.room.url_previews.allow_networks: '" + text + "' is not a network", 400);
    impl_->allowed.push_back(*range);
  }
  impl_->settings = std::move(settings);
}

UrlPreviewer::~UrlPreviewer() = default;

bool UrlPreviewer::enabled() const { return impl_->settings.enabled; }

json UrlPreviewer::preview(const std::string& url) {
  const auto lower = ascii_lower(url.substr(0, 8));
  if (url.size() > kMaxUrlBytes || !is_valid_utf8(url) || (lower.rfind("http://", 0) != 0 && lower.rfind("https://", 0) != 0))
    throw Error(errc::kMInvalidParam, "only http and https URLs are previewed", 400);
  {
    std::lock_guard lock(impl_->mutex);
    const auto it = impl_->cache.find(url);
    if (it != impl_->cache.end() && it->second.second > std::chrono::steady_clock::now()) return it->second.first;
  }
  Fetch fetch;
  fetch.allowed = &impl_->allowed;
  CURL* curl = curl_easy_init();
  if (!curl) throw Error(errc::kMUnknown, "cannot fetch", 502);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");  // a proxy would connect where the check cannot see
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, kTimeoutMs);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "coop URL preview");
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, open_checked);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &fetch);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &fetch);
  const auto result = curl_easy_perform(curl);
  long status = 0;
  char* type = nullptr;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
  const std::string content_type = ascii_lower(type ? type : "");
  curl_easy_cleanup(curl);
  if (fetch.refused) throw Error(errc::kMForbidden, "that address is not one this server fetches from", 403);
  if ((result != CURLE_OK && !(result == CURLE_WRITE_ERROR && fetch.truncated)) || status < 200 || status >= 300)
    throw Error(errc::kMUnknown, "the page could not be fetched", 502);

  json og = json::object();
  if (content_type.rfind("text/html", 0) == 0 || content_type.rfind("application/xhtml+xml", 0) == 0) {
    htmlDocPtr doc = htmlReadMemory(fetch.body.data(), static_cast<int>(fetch.body.size()), url.c_str(), nullptr,
                                    HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    if (doc) {
      std::string title, description;
      read_opengraph(xmlDocGetRootElement(doc), og, title, description);
      xmlFreeDoc(doc);
      if (!og.contains("og:title") && !title.empty() && is_valid_utf8(title)) og["og:title"] = clipped(title);
      if (!og.contains("og:description") && !description.empty() && is_valid_utf8(description))
        og["og:description"] = clipped(description);
    }
  }
  std::lock_guard lock(impl_->mutex);
  if (impl_->cache.size() >= kMaxCached) impl_->cache.clear();
  impl_->cache[url] = {og, std::chrono::steady_clock::now() + kCacheFor};
  return og;
}

}  // namespace coop::room
