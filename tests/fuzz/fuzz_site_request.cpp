// libFuzzer target: requests to coop-site. The input is split at newlines into the request
// target, then Host, Range, If-None-Match, If-Range, If-Modified-Since and Accept-Encoding
// values. Whatever arrives, the answer has a known status, and any body it carries is one
// of the published files, one of their variants, a slice of a file, or a short message.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>

#include "common/digest.h"
#include "workers/site/site_service.h"
#include "workers/site/store/site_store.h"

namespace fs = std::filesystem;
using namespace coop::site;

namespace {

struct World {
  fs::path dir = fs::temp_directory_path() / ("coop-fuzz-site-" + std::to_string(::getpid()));
  std::unique_ptr<SiteStore> store;
  std::unique_ptr<SiteService> service;
  std::set<std::string> files;
  World() {
    fs::create_directories(dir);
    store = std::make_unique<SiteStore>(dir / "site.db", dir / "blobs", 3);
    std::vector<FileEntry> entries;
    for (const auto& [path, bytes] : std::vector<std::pair<std::string, std::string>>{
             {"index.html", "<h1>Home</h1>" + std::string(600, 'h')},
             {"about/index.html", "<h1>About</h1>"},
             {"contact.html", "<h1>Contact</h1>"},
             {"404.html", "<h1>Lost</h1>"},
             {"assets/app.js", std::string(900, 'j')},
             {"a b/%2e.txt", "odd name"}}) {
      FileEntry f;
      f.path = path;
      f.blob = coop::sha256_hex(bytes);
      store->put_blob(f.blob, bytes);
      entries.push_back(f);
    }
    store->add_version("bakery", entries, "fuzz");
    store->add_domain("bakery", "bakery.test");
    for (const auto& f : store->files("bakery", 1)) {
      files.insert(store->read_blob(f.blob));
      if (!f.gzip.empty()) files.insert(store->read_blob(f.gzip));
      if (!f.br.empty()) files.insert(store->read_blob(f.br));
    }
    service = std::make_unique<SiteService>(*store, SiteServiceOptions{});
  }
  ~World() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string target, line;
  std::getline(in, target);
  coop::http::Request q;
  q.method = "GET";
  q.target = target;
  for (const char* name : {"host", "range", "if-none-match", "if-range", "if-modified-since", "accept-encoding"})
    if (std::getline(in, line) && !line.empty()) q.headers[name] = line;
  const auto r = world.service->handle(q);
  static const std::set<int> kStatuses = {200, 206, 301, 304, 400, 404, 416};
  if (!kStatuses.count(r.status)) std::abort();
  const std::string body = r.shared_body ? *r.shared_body : r.body;
  if (r.status == 200 && !world.files.count(body)) std::abort();
  if (r.status == 206) {
    bool inside = false;
    for (const auto& f : world.files) inside = inside || (!body.empty() && f.find(body) != std::string::npos);
    if (!inside) std::abort();
  }
  if (r.status == 304 && !body.empty()) std::abort();
  return 0;
}
