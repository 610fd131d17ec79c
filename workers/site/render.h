// What coop-site generates for a site without a builder: Markdown pages (cmark) and event
// pages with their iCalendar files (libical), in a small built-in theme.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "workers/site/store/site_store.h"

namespace coop::site {

struct RenderContext {
  std::string site;      // its name, the theme's heading
  std::string timezone;  // IANA name the pages show times in (the ICS files say UTC)
  int64_t now = 0;       // seconds: what is upcoming
  std::string site_url;  // the site's absolute root URL ("https://.../sites/NAME/"): the .ics link back
  std::string map_url;   // the shard's map page ("https://.../tiles/NAME/map"), "" when none
};

// CommonMark to HTML; raw HTML in the Markdown is left out (cmark's safe default).
std::string markdown_to_html(const std::string& markdown);

// Every generated file of a site, path -> bytes: SLUG/index.html per page; per event
// events/SLUG/index.html and events/SLUG.ics; events/index.html (upcoming first, then past)
// and events/calendar.ics with all of them.
std::vector<std::pair<std::string, std::string>> generated_files(const RenderContext& context,
                                                                 const std::vector<Page>& pages,
                                                                 const std::vector<Event>& events);

// An RFC 5545 VCALENDAR (METHOD:PUBLISH) of these events, times in UTC.
// site_url: the site's absolute root, for each event's URL and the link at the end of its
// plain-text DESCRIPTION ("" leaves them out).
std::string events_ics(const std::string& site, const std::vector<Event>& events, const std::string& site_url = {});

// "2026-12-05T18:00", "2026-12-05 18:00", with seconds, with Z or +01:00: seconds since the
// epoch; a time without an offset is in `timezone`. coop::Error(errc::kBadTime, 400) otherwise.
int64_t parse_event_time(const std::string& text, const std::string& timezone);

// 2026-12-05T17:00:00Z
std::string utc_iso8601(int64_t t);

// A slug for a title: lowercase ASCII letters and digits joined by '-', at most 60.
std::string slugify(const std::string& title);

}  // namespace coop::site
