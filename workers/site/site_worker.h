// Wires coop-site: the public HTTP listener (SiteService), the control API the CLI publishes
// through, and the pages and events it renders into each new version.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace coop {
class WorkerRuntime;
class Home;
namespace http {
class Router;
class Server;
}  // namespace http
}  // namespace coop

namespace coop::site {

class SiteStore;
class SiteService;
struct FileEntry;
struct VersionInfo;

class SiteWorker {
 public:
  explicit SiteWorker(WorkerRuntime& runtime);
  ~SiteWorker();

 private:
  // A new version from uploaded files plus the site's generated pages and events; current
  // at once. One at a time.
  VersionInfo publish(const std::string& site, std::vector<FileEntry> uploads, const std::string& source);
  // The current version's uploaded files again, with pages and events rendered anew.
  VersionInfo republish(const std::string& site, const std::string& source);
  void add_routes(WorkerRuntime& runtime);
  std::string map_url();
  struct MarkerSync {
    std::map<std::string, std::string> added;  // slug -> the marker made for it (GeoJSON text)
    std::string error;                             // coop-tiles not answering, say
  };
  MarkerSync sync_markers(const std::string& site);
  // The shard's front page (links to the map, documents, chat and published sites).
  std::string front_page(const std::vector<std::string>& sites) const;

  const Home& home_;
  std::string timezone_;
  std::string public_url_;
  std::string tiles_url_;  // coop-tiles' public URL, for links to the map
  std::string domain_;
  std::map<std::string, std::string> links_;  // worker -> its public base URL
  std::unique_ptr<SiteStore> store_;
  std::unique_ptr<SiteService> service_;
  std::mutex publish_mutex_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace coop::site
