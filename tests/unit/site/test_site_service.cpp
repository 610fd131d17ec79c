// SiteService over a real store: the representation chosen, conditional requests, ranges,
// clean URLs and 404 pages, and a switch that leaves a request on its version.
#include <catch2/catch.hpp>

#include <zlib.h>

#include "common/digest.h"
#include "tests/unit/common/temp_dir.h"
#include "workers/site/site_service.h"
#include "workers/site/store/site_store.h"

using namespace coop::site;
using coop::http::Request;

namespace {

std::string header_of(const coop::http::Response& r, const std::string& name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return v;
  return {};
}

std::string body_of(const coop::http::Response& r) { return r.shared_body ? *r.shared_body : r.body; }

Request get(const std::string& target, std::map<std::string, std::string> headers = {}) {
  Request q;
  q.method = "GET";
  q.target = target;
  q.headers = std::move(headers);
  if (!q.headers.count("host")) q.headers["host"] = "bakery.test";
  return q;
}

struct Fixture {
  coop::test::TempDir dir;
  SiteStore store{dir.path() / "site.db", dir.path() / "blobs", 3};
  std::string index = "<!doctype html><h1>Home</h1>" + std::string(2000, 'x');

  void publish(const std::vector<std::pair<std::string, std::string>>& files) {
    std::vector<FileEntry> entries;
    for (const auto& [path, bytes] : files) {
      FileEntry f;
      f.path = path;
      f.blob = coop::sha256_hex(bytes);
      store.put_blob(f.blob, bytes);
      f.mtime = 1700000000;
      entries.push_back(f);
    }
    store.add_version("bakery", entries, "test");
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "the site is found by host, by preview path and by NAME.localhost", "[site]") {
  publish({{"index.html", index}, {"about.html", "<h1>About</h1>"}, {"docs/index.html", "<h1>Docs</h1>"},
           {"404.html", "<h1>Lost</h1>"}});
  store.add_domain("bakery", "bakery.test");
  SiteService service(store, {});
  CHECK(body_of(service.handle(get("/"))) == index);
  CHECK(body_of(service.handle(get("/", {{"host", "BAKERY.test:8080"}}))) == index);
  CHECK(body_of(service.handle(get("/sites/bakery/", {{"host", "127.0.0.1"}}))) == index);
  CHECK(body_of(service.handle(get("/about", {{"host", "bakery.localhost:8411"}}))) == "<h1>About</h1>");
  CHECK(service.handle(get("/", {{"host", "nobody.test"}})).status == 404);
  auto moved = service.handle(get("/docs?page=2"));
  CHECK(moved.status == 301);
  CHECK(header_of(moved, "Location") == "/docs/?page=2");
  auto lost = service.handle(get("/nothing"));
  CHECK(lost.status == 404);
  CHECK(body_of(lost) == "<h1>Lost</h1>");
  CHECK(service.handle(get("/%2e%2e/site.db")).status == 400);
}

TEST_CASE_METHOD(Fixture, "variants, conditional requests and ranges", "[site]") {
  publish({{"index.html", index}});
  store.add_domain("bakery", "bakery.test");
  SiteService service(store, {});
  auto plain = service.handle(get("/"));
  const std::string tag = header_of(plain, "ETag");
  CHECK(header_of(plain, "Vary") == "Accept-Encoding");
  CHECK(header_of(plain, "Content-Encoding").empty());
  auto gz = service.handle(get("/", {{"accept-encoding", "gzip;q=1, br;q=0"}}));
  CHECK(header_of(gz, "Content-Encoding") == "gzip");
  CHECK(header_of(gz, "ETag") != tag);
  // The gzip variant inflates to the file.
  std::string inflated(index.size() + 16, '\0');
  z_stream z{};
  inflateInit2(&z, 15 + 16);
  const std::string compressed = body_of(gz);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  z.avail_in = static_cast<uInt>(compressed.size());
  z.next_out = reinterpret_cast<Bytef*>(inflated.data());
  z.avail_out = static_cast<uInt>(inflated.size());
  CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
  inflated.resize(z.total_out);
  inflateEnd(&z);
  CHECK(inflated == index);
  CHECK(header_of(service.handle(get("/", {{"accept-encoding", "*"}})), "Content-Encoding") == "br");
  CHECK(service.handle(get("/", {{"if-none-match", tag}})).status == 304);
  CHECK(service.handle(get("/", {{"if-none-match", "W/" + tag}})).status == 304);
  CHECK(service.handle(get("/", {{"if-none-match", "*"}})).status == 304);
  CHECK(service.handle(get("/", {{"if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT"}})).status == 304);
  CHECK(service.handle(get("/", {{"if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT"}})).status == 200);
  auto part = service.handle(get("/", {{"range", "bytes=5-9"}, {"accept-encoding", "gzip"}}));
  CHECK(part.status == 206);
  CHECK(body_of(part) == index.substr(5, 5));
  CHECK(header_of(part, "Content-Encoding").empty());
  CHECK(header_of(part, "Content-Range") == "bytes 5-9/" + std::to_string(index.size()));
  CHECK(service.handle(get("/", {{"range", "bytes=99999-"}})).status == 416);
  CHECK(service.handle(get("/", {{"range", "bytes=0-1,5-6"}})).status == 200);  // several: the whole file
  CHECK(service.handle(get("/", {{"range", "bytes=9-5"}})).status == 200);
  CHECK(service.handle(get("/", {{"range", "bytes=0-1"}, {"if-range", "\"old\""}})).status == 200);
  Request post = get("/");
  post.method = "POST";
  CHECK(service.handle(post).status == 405);
}

TEST_CASE_METHOD(Fixture, "a request keeps the version it started on; retention keeps three", "[site]") {
  publish({{"index.html", "one"}});
  SiteService service(store, {});
  auto before = service.handle(get("/sites/bakery/"));
  publish({{"index.html", "two"}});
  service.reload();
  CHECK(body_of(before) == "one");  // its bytes are its own, whatever is current now
  CHECK(body_of(service.handle(get("/sites/bakery/"))) == "two");
  publish({{"index.html", "three"}});
  publish({{"index.html", "four"}});
  const auto versions = store.versions("bakery");
  REQUIRE(versions.size() == 3);
  CHECK(versions.front().number == 2);
  CHECK_FALSE(std::filesystem::exists(store.blob_path(coop::sha256_hex("one"))));
  CHECK(store.rollback("bakery", std::nullopt).number == 3);
  CHECK_THROWS(store.rollback("bakery", 1));
}
