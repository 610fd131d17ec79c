// What a site may hold and what a request may name: the checks between a path and the disk.
#include <catch2/catch.hpp>

#include "workers/site/render.h"
#include "workers/site/site_paths.h"

using namespace coop::site;

TEST_CASE("file paths inside a version are relative and never climb", "[site]") {
  for (const char* good : {"index.html", "about/index.html", ".well-known/security.txt", "assets/a b.png", "caf\xC3\xA9.html"})
    CHECK(valid_file_path(good));
  for (const char* bad : {"", "/index.html", "a//b", "a/", "..", "../x", "a/../b", "./a", "a/./b", "a\\b", "a\x01", "\xFF.html"})
    CHECK_FALSE(valid_file_path(bad));
}

TEST_CASE("request paths are decoded once and held to the same rules", "[site]") {
  CHECK(file_path_from_request("/") == std::optional<std::string>(""));
  CHECK(file_path_from_request("/about/") == std::optional<std::string>("about/"));
  CHECK(file_path_from_request("/a%20b.png") == std::optional<std::string>("a b.png"));
  CHECK(file_path_from_request("/caf%C3%A9.html") == std::optional<std::string>("caf\xC3\xA9.html"));
  for (const char* bad : {"", "x", "/..", "/../x", "/%2e%2e/x", "/%2E%2e%2Fx", "/a/..%2f..%2fx", "/a%5c..%5cx", "/a%00",
                          "/a%zz", "/a%2", "//etc/passwd", "/a//b", "/./a"})
    CHECK_FALSE(file_path_from_request(bad));
  // Decoded once only: %252e stays the literal name "%2e".
  CHECK(file_path_from_request("/%252e%252e") == std::optional<std::string>("%2e%2e"));
}

TEST_CASE("site names, hosts, content types and slugs", "[site]") {
  CHECK(valid_site_name("bakery"));
  CHECK(valid_site_name("b4-k_ery"));
  for (const char* bad : {"", "-x", "_x", "Bakery", "a.b", "a/b", ".."}) CHECK_FALSE(valid_site_name(bad));
  CHECK(valid_host("www.bakery.coop"));
  for (const char* bad : {"", ".x", "x.", "a..b", "A.coop", "a b", "a:80", "-a.coop"}) CHECK_FALSE(valid_host(bad));
  CHECK(content_type_for("index.html") == "text/html; charset=utf-8");
  CHECK(content_type_for("a/B.PNG") == "image/png");
  CHECK(content_type_for("font.woff2") == "font/woff2");
  CHECK(content_type_for("README") == "application/octet-stream");
  CHECK(compressible("text/css; charset=utf-8"));
  CHECK(compressible("image/svg+xml"));
  CHECK_FALSE(compressible("image/png"));
  CHECK(slugify("Bread & Butter: Workshop!") == "bread-butter-workshop");
  CHECK(slugify("!!!") == "untitled");
  // Accented Latin letters keep their ASCII base; other scripts separate words.
  CHECK(slugify("Café crème") == "cafe-creme");
  CHECK(slugify("Straße Łódź Œuvre") == "strasse-lodz-oeuvre");
  CHECK(slugify("日本 fest") == "fest");
  CHECK(slugify("2 × 3") == "2-3");
}

TEST_CASE("event times: an offset, UTC, or the cooperative's zone", "[site]") {
  CHECK(parse_event_time("2026-12-05T18:00Z", "Europe/Paris") == 1796493600);
  CHECK(parse_event_time("2026-12-05T18:00", "UTC") == 1796493600);
  CHECK(parse_event_time("2026-12-05 19:00+01:00", "UTC") == 1796493600);
  CHECK(parse_event_time("2026-12-05T19:00", "Europe/Paris") == 1796493600);  // CET in December
  CHECK(parse_event_time("2026-07-05T20:00:00", "Europe/Paris") == parse_event_time("2026-07-05T18:00Z", "UTC"));  // CEST
  for (const char* bad : {"tomorrow", "2026-13-01T10:00", "2026-02-30T10:00", "2026-12-05T25:00", "2026-12-05"})
    CHECK_THROWS(parse_event_time(bad, "UTC"));
  CHECK_THROWS(parse_event_time("2026-12-05T18:00", "Mars/Olympus"));
}

TEST_CASE("an event page links its place to the shard's map; its .ics describes it in plain text", "[site]") {
  coop::site::Event e;
  e.slug = "2027-01-05-tasting";
  e.title = "Tasting";
  e.starts = 1799143200;
  e.ends = 1799146800;
  e.location = "The bakery";
  e.description = "Bring **bread** & *cheese*.\n\n- one\n- two";
  e.lat = 43.7384;
  e.lon = 7.4246;
  e.uid = "tasting@bakery.coop-site";
  coop::site::RenderContext c{"bakery", "UTC", 0, "https://coop.example/sites/bakery/", "https://coop.example/tiles/monaco/map"};
  std::string page, ics;
  for (const auto& [path, bytes] : coop::site::generated_files(c, {}, {e})) {
    if (path == "events/2027-01-05-tasting/index.html") page = bytes;
    if (path == "events/2027-01-05-tasting.ics") ics = bytes;
  }
  CHECK(page.find("https://coop.example/tiles/monaco/map?lat=43.738400&amp;lon=7.424600&amp;zoom=17") != std::string::npos);
  CHECK(page.find("geo:") == std::string::npos);
  // RFC 5545 3.8.1.5: plain text, no Markdown or HTML, and the page's address at the end.
  std::string unfolded;
  for (std::size_t i = 0; i < ics.size(); ++i) {
    if (ics.compare(i, 3, "\r\n ") == 0 || ics.compare(i, 2, "\n ") == 0) {
      i += ics[i] == '\r' ? 2 : 1;
      continue;
    }
    unfolded += ics[i];
  }
  CHECK(unfolded.find("DESCRIPTION:Bring bread & cheese.") != std::string::npos);
  CHECK(unfolded.find("**") == std::string::npos);
  CHECK(unfolded.find("<") == std::string::npos);
  CHECK(unfolded.find("https://coop.example/sites/bakery/events/2027-01-05-tasting/") != std::string::npos);
  CHECK(unfolded.find("URL:https://coop.example/sites/bakery/events/2027-01-05-tasting/") != std::string::npos);
  // Without a map the coordinates are shown, not linked.
  c.map_url.clear();
  for (const auto& [path, bytes] : coop::site::generated_files(c, {}, {e}))
    if (path == "events/2027-01-05-tasting/index.html") CHECK(bytes.find("(43.738400,7.424600)") != std::string::npos);
}
