// HTML of the portal. Every value that comes from a member or the registry goes through
// html_escape; nothing is loaded from elsewhere.
#include "workers/member/portal_pages.h"

#include <qrencode.h>

#include <nlohmann/json.hpp>

#include <ctime>

#include "common/auth/app_password.h"
#include "common/http/date.h"
#include "common/text.h"

namespace coop::member {

namespace {

using nlohmann::json;

std::string e(const std::string& text) { return html_escape(text); }

const char* kStyle =
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
    "header{background:#24573f;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}"
    "header a{color:#fff;text-decoration:none}header strong{margin-right:auto}"
    "header form{margin:0}header button{background:none;border:1px solid #fff;color:#fff;padding:.1rem .6rem}"
    "main{max-width:46rem;margin:1.5rem auto;padding:0 1rem}"
    "label{display:block;margin:.6rem 0 .2rem}input[type=text],input[type=password]{width:100%;max-width:24rem;padding:.4rem;box-sizing:border-box}"
    "button{padding:.4rem .9rem;margin-top:.6rem;cursor:pointer}"
    ".error{background:#fde8e8;border-left:4px solid #c62828;padding:.5rem .8rem}"
    ".done{background:#e6f4ea;border-left:4px solid #2e7d32;padding:.5rem .8rem}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top}"
    "code,pre{background:#f0f0f0;padding:.1rem .3rem;word-break:break-all}pre{white-space:pre-wrap;padding:.6rem}"
    ".secret{font-size:1.4rem;letter-spacing:.05rem}.scopes label{display:inline-block;margin-right:1rem}"
    "svg{background:#fff}";

std::string layout(const std::string& title, const PageContext* c, const std::string& body) {
  std::string nav;
  if (c) {
    nav = "<a href=\"/portal/\">Account</a><a href=\"/portal/password\">Password</a>"
          "<a href=\"/portal/app-passwords\">App passwords</a><a href=\"/portal/logins\">Logins</a>"
          "<a href=\"/portal/settings\">Client settings</a><a href=\"/portal/takeout\">Takeout</a>";
    if (c->publisher) nav += "<a href=\"/portal/sites\">Sites</a>";
    if (c->admin) nav += "<a href=\"/portal/members\">Members</a>";
    nav += "<form method=\"post\" action=\"/portal/logout\"><input type=\"hidden\" name=\"csrf\" value=\"" + e(c->csrf) +
           "\"><button>Sign out " + e(c->handle) + "</button></form>";
  }
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" +
         e(title) + " · coop</title><style>" + kStyle + "</style></head><body>\n<header><strong>coop</strong>" + nav +
         "</header>\n<main>\n<h1>" + e(title) + "</h1>\n" + body + "</main>\n</body></html>\n";
}

std::string csrf_field(const PageContext& c) { return "<input type=\"hidden\" name=\"csrf\" value=\"" + e(c.csrf) + "\">"; }

std::string notice(const std::string& error, const std::string& done = {}) {
  std::string out;
  if (!error.empty()) out += "<p class=\"error\" role=\"alert\">" + e(error) + "</p>\n";
  if (!done.empty()) out += "<p class=\"done\" role=\"status\">" + e(done) + "</p>\n";
  return out;
}

std::string when(int64_t t) { return t > 0 ? http::iso8601(t).replace(10, 1, " ").substr(0, 16) + " UTC" : "never"; }

}  // namespace

std::string qr_svg(const std::string& text) {
  QRcode* code = QRcode_encodeString8bit(text.c_str(), 0, QR_ECLEVEL_M);
  if (!code) return {};
  const int width = code->width, quiet = 4, scale = 6, size = (width + 2 * quiet) * scale;
  std::string path;
  for (int y = 0; y < width; ++y)
    for (int x = 0; x < width; ++x)
      if (code->data[y * width + x] & 1)
        path += "M" + std::to_string((x + quiet) * scale) + " " + std::to_string((y + quiet) * scale) + "h" +
                std::to_string(scale) + "v" + std::to_string(scale) + "h-" + std::to_string(scale) + "z";
  QRcode_free(code);
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"QR code\" width=\"" + std::to_string(size) +
         "\" height=\"" + std::to_string(size) + "\" viewBox=\"0 0 " + std::to_string(size) + " " + std::to_string(size) +
         "\"><path fill=\"#000\" d=\"" + path + "\"/></svg>";
}

std::string login_page(const std::string& error) {
  return layout("Sign in", nullptr,
                notice(error) +
                    "<form method=\"post\" action=\"/portal/login\">"
                    "<label for=\"user\">Your handle or address</label>"
                    "<input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" required autofocus>"
                    "<label for=\"password\">Your password</label>"
                    "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>"
                    "<br><button type=\"submit\">Sign in</button></form>\n"
                    "<p>App passwords do not open the portal: use your own password.</p>\n");
}

std::string dashboard_page(const PageContext& c, const Member& m) {
  std::string emails, groups;
  for (const auto& a : m.emails) emails += (emails.empty() ? "" : ", ") + e(a);
  for (const auto& g : m.groups) groups += (groups.empty() ? "" : ", ") + e(g);
  return layout("Your account", &c,
                "<table><tr><th>Handle</th><td>" + e(m.handle) + "</td></tr><tr><th>Name</th><td>" + e(m.display_name) +
                    "</td></tr><tr><th>Addresses</th><td>" + (emails.empty() ? "none" : emails) +
                    "</td></tr><tr><th>Groups</th><td>" + (groups.empty() ? "none" : groups) +
                    "</td></tr><tr><th>Role</th><td>" + e(m.role) + "</td></tr></table>\n"
                    "<ul><li><a href=\"/portal/settings\">How to set up mail, calendars, chat and more</a></li>"
                    "<li><a href=\"/portal/app-passwords\">An app password for a phone or a program</a></li>"
                    "<li><a href=\"/portal/takeout\">Download everything you have here</a></li></ul>\n");
}

std::string password_page(const PageContext& c, const std::string& error, const std::string& done) {
  return layout("Change your password", &c,
                notice(error, done) + "<form method=\"post\" action=\"/portal/password\">" + csrf_field(c) +
                    "<label for=\"current\">Current password</label>"
                    "<input type=\"password\" id=\"current\" name=\"current\" autocomplete=\"current-password\" required>"
                    "<label for=\"new\">New password (at least 12 characters, not a common one)</label>"
                    "<input type=\"password\" id=\"new\" name=\"new\" autocomplete=\"new-password\" required minlength=\"12\">"
                    "<label for=\"confirm\">New password again</label>"
                    "<input type=\"password\" id=\"confirm\" name=\"confirm\" autocomplete=\"new-password\" required>"
                    "<br><button type=\"submit\">Change password</button></form>\n");
}

std::string app_passwords_page(const PageContext& c, const std::vector<AppPassword>& passwords, const std::string& error,
                               const NewSecret* made) {
  std::string body = notice(error);
  if (made) {
    body += "<div class=\"done\" role=\"status\"><p>The app password <strong>" + e(made->label) +
            "</strong>, shown this once: type it into the device, or scan it with the device's camera.</p>"
            "<p class=\"secret\"><code id=\"secret\">" + e(made->secret) + "</code></p>" + qr_svg(made->secret) + "</div>\n";
  }
  body += "<p>An app password lets one device or program in, only where you say: if it is lost, revoke it here and "
          "nothing else changes. Programs that speak JMAP or another HTTP API may take it alone, as a Bearer token.</p>\n<table><tr><th>Label</th><th>Opens</th><th>Made</th><th>Last used</th><th></th></tr>\n";
  for (const auto& p : passwords) {
    std::string scopes;
    for (const auto& s : p.scopes) scopes += (scopes.empty() ? "" : ", ") + e(s);
    body += "<tr><td>" + e(p.label) + "</td><td>" + scopes + "</td><td>" + when(p.created_at) + "</td><td>" +
            (p.last_used_at ? when(*p.last_used_at) : std::string("never")) +
            "</td><td><form method=\"post\" action=\"/portal/app-passwords/revoke\">" + csrf_field(c) +
            "<input type=\"hidden\" name=\"label\" value=\"" + e(p.label) + "\"><button>Revoke</button></form></td></tr>\n";
  }
  if (passwords.empty()) body += "<tr><td colspan=\"5\">none yet</td></tr>\n";
  body += "</table>\n<h2>A new app password</h2><form method=\"post\" action=\"/portal/app-passwords\">" + csrf_field(c) +
          "<label for=\"label\">For (a name you will recognise: \"phone\", \"laptop mail\")</label>"
          "<input type=\"text\" id=\"label\" name=\"label\" required maxlength=\"64\"><fieldset class=\"scopes\"><legend>It opens</legend>";
  const std::vector<std::pair<std::string, std::string>> scopes = {
      {"mail", "Mail"},         {"calendars", "Calendars"}, {"contacts", "Contacts"}, {"files", "Files"},
      {"room", "Chat"},         {"docs", "Documents"},      {"tiles", "Map markers"}};
  for (const auto& [scope, text] : scopes)
    body += "<label><input type=\"checkbox\" name=\"scope\" value=\"" + scope + "\"> " + text + "</label>";
  body += "</fieldset><button type=\"submit\">Make it</button></form>\n";
  return layout("App passwords", &c, body);
}

std::string logins_page(const PageContext& c, const std::vector<AuditEntry>& entries) {
  std::string body = "<p>The last sign-ins to your account and the attempts that failed, newest first.</p>\n"
                     "<table><tr><th>When</th><th>How</th><th>From</th><th>With</th><th>Result</th></tr>\n";
  for (const auto& a : entries)
    body += "<tr><td>" + when(a.at) + "</td><td>" + e(a.protocol) + "</td><td>" + e(a.source) + "</td><td>" +
            e(a.credential.empty() ? "-" : a.credential) + "</td><td>" + e(a.outcome) + "</td></tr>\n";
  if (entries.empty()) body += "<tr><td colspan=\"5\">none yet</td></tr>\n";
  return layout("Recent logins", &c, body + "</table>\n");
}

std::string settings_page(const PageContext& c, const json& s) {
  std::string body = "<p>Log in with your own password or, better on a phone, an <a href=\"/portal/app-passwords\">app "
                     "password</a>.</p>\n";
  const auto server = [](const char* what, const json& v) -> std::string {
    if (!v.is_object()) return "";
    return "<tr><th>" + std::string(what) + "</th><td><code>" + e(v.value("host", "")) + "</code> port <code>" +
           std::to_string(v.value("port", 0)) + "</code>, " + e(v.value("security", "")) + "</td><td>login <code>" +
           e(v.value("login", "")) + "</code></td></tr>\n";
  };
  if (s.contains("mail")) {
    const auto& m = s["mail"];
    body += "<h2>Mail</h2><table>" + server("Incoming (IMAP)", m["imap"]) + server("Incoming (IMAP)", m["imap_starttls"]) +
            server("Outgoing (SMTP)", m["submission"]) + server("Outgoing (SMTP)", m["submission_starttls"]) + "</table>\n";
  }
  if (s.contains("calendars"))
    body += "<h2>Calendars and contacts</h2><table><tr><th>CalDAV</th><td><code>" + e(s["calendars"].value("url", "")) +
            "</code></td></tr><tr><th>CardDAV</th><td><code>" + e(s["contacts"].value("url", "")) +
            "</code></td></tr><tr><th>Login</th><td><code>" + e(s["calendars"].value("login", "")) +
            "</code></td></tr></table><p>Thunderbird and DAVx5 find these from your address on their own.</p>\n";
  if (s.contains("chat"))
    body += "<h2>Chat</h2><table><tr><th>Homeserver</th><td><code>" + e(s["chat"].value("homeserver", "")) +
            "</code></td></tr><tr><th>User</th><td><code>" + e(s["chat"].value("user_id", "")) +
            "</code></td></tr></table><p>In Element, FluffyChat or any Matrix client.</p>\n";
  if (s.contains("map")) {
    body += "<h2>Map</h2>";
    if (s["map"].contains("embed"))
      body += "<p><a href=\"" + e(s["map"].value("page", "")) + "\">The map</a>; to show it on a web page:</p><pre>" +
              e(s["map"].value("embed", "")) + "</pre>\n";
    else
      body += "<p>No map yet.</p>\n";
  }
  if (s.contains("documents"))
    body += "<h2>Documents</h2><p><a href=\"" + e(s["documents"].value("editor", "")) + "\">The documents editor</a></p>\n";
  return layout("Client settings", &c, body);
}

std::string takeout_page(const PageContext& c, const std::string& error) {
  return layout("Takeout", &c,
                notice(error) +
                    "<p>Everything you have here, in one file: your mail (Maildir and mbox), calendars (.ics), address "
                    "books (.vcf), chat history, map markers, your documents (encrypted, as the server keeps them), your "
                    "app passwords' names and your logins. A README inside says what each file is.</p>"
                    "<form method=\"post\" action=\"/portal/takeout\">" +
                    csrf_field(c) + "<button type=\"submit\">Download my takeout (.tar.gz)</button></form>\n");
}

std::string members_page(const PageContext& c, const std::vector<Member>& members, const std::string& error) {
  std::string body = notice(error) + "<table><tr><th>Handle</th><th>Name</th><th>Role</th><th>Status</th><th></th></tr>\n";
  for (const auto& m : members) {
    std::string action;
    if (m.status == "active" && m.handle != c.handle)
      action = "<form method=\"post\" action=\"/portal/members/suspend\">" + csrf_field(c) +
               "<input type=\"hidden\" name=\"handle\" value=\"" + e(m.handle) + "\"><button>Suspend</button></form>";
    else if (m.status == "suspended")
      action = "<form method=\"post\" action=\"/portal/members/reinstate\">" + csrf_field(c) +
               "<input type=\"hidden\" name=\"handle\" value=\"" + e(m.handle) + "\"><button>Reinstate</button></form>";
    body += "<tr><td>" + e(m.handle) + "</td><td>" + e(m.display_name) + "</td><td>" + e(m.role) + "</td><td>" +
            e(m.status) + "</td><td>" + action + "</td></tr>\n";
  }
  return layout("Members", &c, body + "</table>\n");
}

std::string forbidden_page(const PageContext& c) {
  return layout("Not for you", &c, "<p>Only the cooperative's admins see this page.</p>\n");
}

std::string sites_page(const PageContext& c, const json& sites, const std::string& error, const std::string& done) {
  std::string body = notice(error, done) +
                     "<p>The cooperative's websites. Publish a static export (WebStudio's \"Export\", or any folder "
                     "of HTML zipped): each upload is a new version, the previous ones stay for a rollback.</p>\n"
                     "<table><tr><th>Site</th><th>Version</th><th>Preview</th><th>Domains</th></tr>\n";
  for (const auto& s : sites) {
    std::string domains;
    for (const auto& d : s.value("domains", json::array())) domains += (domains.empty() ? "" : ", ") + e(d.get<std::string>());
    const auto name = s.value("name", "");
    body += "<tr><td><a href=\"/portal/sites/" + e(name) + "\">" + e(name) + "</a></td><td>" +
            std::to_string(s.value("current", 0)) + "</td><td><a href=\"" + e(s.value("preview", "")) + "\">" +
            e(s.value("preview", "")) + "</a></td><td>" + (domains.empty() ? "-" : domains) + "</td></tr>\n";
  }
  if (sites.empty()) body += "<tr><td colspan=\"4\">none yet</td></tr>\n";
  body += "</table>\n<h2>Publish</h2><form method=\"post\" action=\"/portal/sites/publish\" enctype=\"multipart/form-data\">" +
          csrf_field(c) +
          "<label for=\"site\">Site (a new name makes a new site: a-z, 0-9, - and _)</label>"
          "<input type=\"text\" id=\"site\" name=\"site\" required pattern=\"[a-z0-9_\\-]{1,63}\">"
          "<label for=\"zip\">The export, as a .zip</label><input type=\"file\" id=\"zip\" name=\"zip\" accept=\".zip\" required>"
          "<br><button type=\"submit\">Publish</button></form>\n";
  return layout("Sites", &c, body);
}

std::string site_page(const PageContext& c, const json& site, const json& versions, const std::string& map_page,
                      const std::string& error, const std::string& done) {
  const auto name = site.value("name", "");
  std::string body = notice(error, done) + "<p>Preview: <a href=\"" + e(site.value("preview", "")) + "\">" +
                     e(site.value("preview", "")) + "</a> · <a href=\"/portal/sites/" + e(name) +
                     "/akash.yaml\">Akash deployment file</a></p>\n<h2>Versions</h2>"
                     "<table><tr><th>Version</th><th>Published</th><th>Files</th><th>From</th><th></th></tr>\n";
  for (const auto& v : versions) {
    const auto number = v.value("version", 0);
    std::string action = v.value("current", false) ? std::string("current")
                                                   : "<form method=\"post\" action=\"/portal/sites/" + e(name) +
                                                         "/rollback\">" + csrf_field(c) +
                                                         "<input type=\"hidden\" name=\"version\" value=\"" +
                                                         std::to_string(number) + "\"><button>Make current</button></form>";
    const std::string published = v.value("created_at", "");
    body += "<tr><td>" + std::to_string(number) + "</td><td>" + e(published.substr(0, 16).replace(10, 1, " ")) + "</td><td>" +
            std::to_string(v.value("files", 0)) + "</td><td>" + e(v.value("source", "")) + "</td><td>" + action + "</td></tr>\n";
  }
  body += "</table>\n<h2>Events</h2><ul>";
  for (const auto& ev : site.value("events", json::array()))
    body += "<li>" + e(ev.value("title", "")) + ", " + e(ev.value("starts", "")) + ", " + e(ev.value("location", "")) + "</li>";
  body += "</ul><h3>A new event</h3><form method=\"post\" action=\"/portal/sites/" + e(name) + "/events\">" + csrf_field(c) +
          "<label for=\"title\">Title</label><input type=\"text\" id=\"title\" name=\"title\" required>"
          "<label for=\"when\">Starts</label><input type=\"datetime-local\" id=\"when\" name=\"when\" required>"
          "<label for=\"until\">Ends (optional)</label><input type=\"datetime-local\" id=\"until\" name=\"until\">"
          "<label for=\"where\">Place</label><input type=\"text\" id=\"where\" name=\"where\" required>"
          "<label for=\"lat\">On the map: latitude and longitude (optional" +
          (map_page.empty() ? std::string(")") : "; <a href=\"" + e(map_page) + "?pick=1\" target=\"_blank\" rel=\"noopener\">pick the place on the map</a>: a click there shows them)") +
          "</label>"
          "<input type=\"text\" id=\"lat\" name=\"lat\" inputmode=\"decimal\" placeholder=\"43.7384\"> "
          "<input type=\"text\" id=\"lon\" name=\"lon\" inputmode=\"decimal\" placeholder=\"7.4246\">"
          "<label for=\"description\">What it is about</label><input type=\"text\" id=\"description\" name=\"description\">"
          "<br><button type=\"submit\">Add the event</button></form>\n";
  return layout("Site " + name, &c, body);
}

std::string error_page(int status, const std::string& message) {
  return layout(status == 404 ? "Not found" : "Something went wrong", nullptr,
                "<p>" + e(message) + "</p><p><a href=\"/portal/\">Back to the portal</a></p>\n");
}

}  // namespace coop::member
