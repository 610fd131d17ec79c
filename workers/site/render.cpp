// Markdown pages, event pages and iCalendar files for a site.
#include "workers/site/render.h"

#include <cmark.h>
#include <libical/ical.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <regex>
#include <sstream>

#include "common/error.h"
#include "common/latin_fold.h"
#include "common/text.h"

namespace coop::site {

namespace {

void set_up_libical() {
  static const bool ready = [] {
    icalerror_set_errors_are_fatal(0);
    icaltimezone_get_utc_timezone();
    icaltimezone_get_builtin_timezones();
    return true;
  }();
  (void)ready;
}

icaltimezone* zone_named(const std::string& name) {
  set_up_libical();
  if (name.empty() || name == "UTC") return icaltimezone_get_utc_timezone();
  icaltimezone* zone = icaltimezone_get_builtin_timezone(name.c_str());
  if (!zone) throw Error(errc::kBadTimezone, "unknown time zone '" + name + "' (an IANA name such as Europe/Paris)", 400);
  return zone;
}

constexpr const char* kStyle = R"CSS(
:root { color-scheme: light dark; --ink: #1d2021; --paper: #fbfaf6; --accent: #2f6f4f; --muted: #666; }
@media (prefers-color-scheme: dark) { :root { --ink: #e8e6e1; --paper: #1b1d1c; --accent: #7cc49c; --muted: #aaa; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--paper); color: var(--ink); font: 17px/1.6 system-ui, sans-serif; }
header, main, footer { max-width: 44rem; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1.25rem; display: flex; gap: 1.25rem; align-items: baseline; flex-wrap: wrap; }
header a { color: var(--accent); text-decoration: none; }
header .site { font-weight: 700; font-size: 1.2rem; }
main { padding-bottom: 3rem; }
a { color: var(--accent); }
h1 { line-height: 1.2; margin: 1.5rem 0 1rem; }
.when { color: var(--muted); font-weight: 600; }
ul.events { list-style: none; padding: 0; }
ul.events li { padding: .6rem 0; border-bottom: 1px solid color-mix(in srgb, var(--muted) 30%, transparent); }
img { max-width: 100%; height: auto; }
pre { overflow: auto; padding: .75rem; background: color-mix(in srgb, var(--muted) 12%, transparent); }
footer { color: var(--muted); font-size: .85rem; padding-bottom: 2rem; }
)CSS";

std::string layout(const RenderContext& c, const std::string& title, const std::string& body, const std::string& root) {
  std::ostringstream h;
  h << "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>" << html_escape(title) << " · " << html_escape(c.site) << "</title>\n"
    << "<link rel=\"icon\" href=\"data:,\">\n<style>" << kStyle << "</style>\n</head>\n<body>\n"
    << "<header><a class=\"site\" href=\"" << root << "\">" << html_escape(c.site) << "</a>"
    << "<a href=\"" << root << "events/\">Events</a></header>\n<main>\n"
    << body << "\n</main>\n<footer>Published with coop.</footer>\n</body>\n</html>\n";
  return h.str();
}

// Times as members read them: in the cooperative's time zone, with its name.
std::string local_time(int64_t t, const std::string& timezone) {
  icaltimetype local = icaltime_from_timet_with_zone(static_cast<time_t>(t), 0, zone_named(timezone));
  static const char* kMonths[] = {"January", "February", "March", "April", "May", "June", "July",
                                  "August", "September", "October", "November", "December"};
  static const char* kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
  char text[96];
  std::snprintf(text, sizeof text, "%s %d %s %d, %02d:%02d", kDays[icaltime_day_of_week(local) - 1], local.day,
                kMonths[local.month - 1], local.year, local.hour, local.minute);
  return std::string(text) + " (" + (timezone.empty() ? "UTC" : timezone) + ")";
}

std::string event_body(const RenderContext& c, const Event& e) {
  std::ostringstream b;
  b << "<article class=\"event\">\n<h1>" << html_escape(e.title) << "</h1>\n"
    << "<p class=\"when\"><time datetime=\"" << utc_iso8601(e.starts) << "\">" << local_time(e.starts, c.timezone)
    << "</time> to <time datetime=\"" << utc_iso8601(e.ends) << "\">" << local_time(e.ends, c.timezone) << "</time></p>\n";
  if (!e.location.empty()) {
    b << "<p class=\"where\">" << html_escape(e.location);
    if (e.lat && e.lon) {
      // The place on the shard's own map (coop-tiles' page centres on ?lat=&lon=&zoom=).
      char geo[64], query[96];
      std::snprintf(geo, sizeof geo, "%.6f,%.6f", *e.lat, *e.lon);
      std::snprintf(query, sizeof query, "?lat=%.6f&amp;lon=%.6f&amp;zoom=17", *e.lat, *e.lon);
      if (c.map_url.empty()) b << " (" << geo << ")";
      else b << " (<a href=\"" << html_escape(c.map_url) << query << "\">" << geo << " on the map</a>)";
    }
    b << "</p>\n";
  }
  if (!e.description.empty()) b << markdown_to_html(e.description);
  b << "<p><a href=\"../" << e.slug << ".ics\">Add to your calendar (.ics)</a></p>\n</article>";
  return b.str();
}

std::string events_index(const RenderContext& c, const std::vector<Event>& events) {
  std::ostringstream b;
  b << "<h1>Events</h1>\n<p><a href=\"calendar.ics\">Subscribe to all events (.ics)</a></p>\n";
  for (const bool upcoming : {true, false}) {
    std::vector<const Event*> list;
    for (const auto& e : events)
      if ((e.ends >= c.now) == upcoming) list.push_back(&e);
    if (!upcoming) std::reverse(list.begin(), list.end());
    if (list.empty()) {
      if (upcoming) b << "<p>No upcoming events.</p>\n";
      continue;
    }
    b << "<h2>" << (upcoming ? "Upcoming" : "Past") << "</h2>\n<ul class=\"events\">\n";
    for (const auto* e : list)
      b << "<li><a href=\"" << e->slug << "/\">" << html_escape(e->title) << "</a><br><span class=\"when\">"
        << local_time(e->starts, c.timezone) << "</span>" << (e->location.empty() ? "" : " · " + html_escape(e->location))
        << "</li>\n";
    b << "</ul>\n";
  }
  return b.str();
}

}  // namespace

std::string markdown_to_html(const std::string& markdown) {
  // CMARK_OPT_DEFAULT in cmark 0.30 drops raw HTML and unsafe links (javascript:, data:).
  char* html = cmark_markdown_to_html(markdown.data(), markdown.size(), CMARK_OPT_DEFAULT);
  std::string out(html);
  std::free(html);
  return out;
}

namespace {

// The .ics DESCRIPTION (RFC 5545 3.8.1.5 is plain text): the Markdown as text (what CommonMark
// renders, without the tags and with the entities undone), then the event page's address.
std::string plain_description(const Event& e, const std::string& site_url) {
  std::string text;
  if (!e.description.empty()) {
    const std::string html = markdown_to_html(e.description);
    bool tag = false;
    for (std::size_t i = 0; i < html.size(); ++i) {
      const char ch = html[i];
      if (ch == '<') {
        tag = true;
        continue;
      }
      if (tag) {
        if (ch == '>') tag = false;
        continue;
      }
      if (ch == '&') {
        const auto end = html.find(';', i);
        const auto entity = end == std::string::npos ? std::string() : html.substr(i + 1, end - i - 1);
        const char* plain = entity == "amp" ? "&" : entity == "lt" ? "<" : entity == "gt" ? ">" : entity == "quot" ? "\"" : nullptr;
        if (plain) {
          text += plain;
          i = end;
          continue;
        }
      }
      text += ch;
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  }
  if (!site_url.empty()) text += (text.empty() ? "" : "\n\n") + site_url + "events/" + e.slug + "/";
  return text;
}

}  // namespace

std::string events_ics(const std::string& site, const std::vector<Event>& events, const std::string& site_url) {
  set_up_libical();
  std::unique_ptr<icalcomponent, void (*)(icalcomponent*)> calendar(icalcomponent_new_vcalendar(), icalcomponent_free);
  icalcomponent_add_property(calendar.get(), icalproperty_new_version("2.0"));
  const std::string prodid = "-//coop//site " + site + "//EN";
  icalcomponent_add_property(calendar.get(), icalproperty_new_prodid(prodid.c_str()));
  icalcomponent_add_property(calendar.get(), icalproperty_new_method(ICAL_METHOD_PUBLISH));
  icaltimezone* utc = icaltimezone_get_utc_timezone();
  for (const auto& e : events) {
    icalcomponent* event = icalcomponent_new_vevent();
    icalcomponent_add_property(event, icalproperty_new_uid(e.uid.c_str()));
    icalcomponent_add_property(event, icalproperty_new_dtstamp(icaltime_from_timet_with_zone(static_cast<time_t>(e.created_at), 0, utc)));
    icalcomponent_add_property(event, icalproperty_new_dtstart(icaltime_from_timet_with_zone(static_cast<time_t>(e.starts), 0, utc)));
    icalcomponent_add_property(event, icalproperty_new_dtend(icaltime_from_timet_with_zone(static_cast<time_t>(e.ends), 0, utc)));
    icalcomponent_add_property(event, icalproperty_new_summary(e.title.c_str()));
    if (!e.location.empty()) icalcomponent_add_property(event, icalproperty_new_location(e.location.c_str()));
    if (const auto text = plain_description(e, site_url); !text.empty())
      icalcomponent_add_property(event, icalproperty_new_description(text.c_str()));
    if (!site_url.empty())
      icalcomponent_add_property(event, icalproperty_new_url((site_url + "events/" + e.slug + "/").c_str()));
    if (e.lat && e.lon) {
      icalgeotype geo{};
      geo.lat = *e.lat;
      geo.lon = *e.lon;
      icalcomponent_add_property(event, icalproperty_new_geo(geo));
    }
    icalcomponent_add_component(calendar.get(), event);
  }
  char* text = icalcomponent_as_ical_string_r(calendar.get());
  std::string out(text);
  std::free(text);
  return out;
}

std::vector<std::pair<std::string, std::string>> generated_files(const RenderContext& c, const std::vector<Page>& pages,
                                                                 const std::vector<Event>& events) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : pages)
    out.emplace_back(p.slug + "/index.html", layout(c, p.title, "<article>\n<h1>" + html_escape(p.title) + "</h1>\n" +
                                                                   markdown_to_html(p.markdown) + "</article>",
                                                    "../"));
  if (events.empty()) return out;
  for (const auto& e : events) {
    out.emplace_back("events/" + e.slug + "/index.html", layout(c, e.title, event_body(c, e), "../../"));
    out.emplace_back("events/" + e.slug + ".ics", events_ics(c.site, {e}, c.site_url));
  }
  out.emplace_back("events/index.html", layout(c, "Events", events_index(c, events), "../"));
  out.emplace_back("events/calendar.ics", events_ics(c.site, events, c.site_url));
  return out;
}

int64_t parse_event_time(const std::string& text, const std::string& timezone) {
  static const std::regex kTime(R"((\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:\d{2})?)");
  std::smatch m;
  if (!std::regex_match(text, m, kTime))
    throw Error(errc::kBadTime, "give times as 2026-12-05T18:00 (in " + (timezone.empty() ? std::string("UTC") : timezone) +
                                ") or with an offset, 2026-12-05T18:00+01:00: '" + text + "'", 400);
  icaltimetype t = icaltime_null_time();
  t.year = std::stoi(m[1]);
  t.month = std::stoi(m[2]);
  t.day = std::stoi(m[3]);
  t.hour = std::stoi(m[4]);
  t.minute = std::stoi(m[5]);
  t.second = m[6].matched ? std::stoi(m[6]) : 0;
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > icaltime_days_in_month(t.month, t.year) || t.hour > 23 ||
      t.minute > 59 || t.second > 59)
    throw Error(errc::kBadTime, "no such time: '" + text + "'", 400);
  if (!m[7].matched) return static_cast<int64_t>(icaltime_as_timet_with_zone(t, zone_named(timezone)));
  const int64_t utc = static_cast<int64_t>(icaltime_as_timet_with_zone(t, icaltimezone_get_utc_timezone()));
  const std::string offset = m[7];
  if (offset == "Z") return utc;
  const int sign = offset[0] == '-' ? -1 : 1;
  const int minutes = std::stoi(offset.substr(1, 2)) * 60 + std::stoi(offset.substr(4, 2));
  return utc - sign * minutes * 60;
}

namespace {


}  // namespace

std::string slugify(const std::string& title) {
  std::string out;
  const auto separate = [&] {
    if (!out.empty() && out.back() != '-') out += '-';
  };
  // Latin letters fold to their ASCII base ("café" is "cafe"); whatever is left outside ASCII
  // separates words like punctuation does.
  const std::string folded = fold_latin_lower(title);
  for (std::size_t i = 0; i < folded.size() && out.size() < 60; ++i) {
    const auto c = static_cast<unsigned char>(folded[i]);
    if (c < 0x80 && std::isalnum(c)) {
      out += static_cast<char>(c);
    } else if (c < 0x80 || (c & 0xC0) != 0x80) {
      separate();  // an ASCII separator, or the first byte of a character left as it was
    }
  }
  if (out.size() > 60) out.resize(60);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "untitled" : out;
}

std::string utc_iso8601(int64_t t) {
  char text[32];
  const time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace coop::site
