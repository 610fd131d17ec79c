// Client-Server API "URL previews" (GET /media/preview_url): the OpenGraph title and
// description of a page a member links to. Off unless [workers.room] url_previews.enabled;
// when on, the fetch never connects to a loopback, private or otherwise special address (each
// connection's resolved address is checked, redirects included), follows http and https
// only, ignores proxies, and reads at most 1 MiB.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace coop::room {

struct PreviewSettings {
  bool enabled = false;
  std::vector<std::string> allow_networks;  // CIDRs let through although special (tests, an intranet)
};

class UrlPreviewer {
 public:
  explicit UrlPreviewer(PreviewSettings settings);
  ~UrlPreviewer();
  bool enabled() const;
  // The page's og: fields ({} when it has none or is not HTML). coop::Error: 400 for a URL
  // that is not http(s), 403 for an address the policy refuses, 502 when the fetch fails.
  nlohmann::json preview(const std::string& url);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coop::room
