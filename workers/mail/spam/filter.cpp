// See filter.h. The rules and their points follow what SpamAssassin's and rspamd's rule sets
// found worth weighing (missing or forged headers, HTML-only bodies, links that show one host
// and lead to another, executable attachments, encodings that hide text from filters);
// the classifier does most of the work, and the rules push what it is unsure of.
#include "workers/mail/spam/filter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include "common/config.h"
#include "common/error.h"
#include "common/mail/message.h"
#include "common/net/dns.h"
#include "common/text.h"
#include "workers/mail/auth/auth_results.h"
#include "workers/mail/auth/dmarc.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/spam/bayes.h"

namespace coop::mail::spam {

namespace {

constexpr Rule kRules[] = {
    {"MISSING_FROM", 2.5, "no From field (RFC 5322 3.6 requires one)"},
    {"MISSING_DATE", 1.0, "no Date field (RFC 5322 3.6 requires one)"},
    {"MISSING_MESSAGE_ID", 1.0, "no Message-ID field, which every real mail program writes"},
    {"DATE_IN_FUTURE", 1.5, "a Date more than a day ahead of the shard's clock"},
    {"FROM_NAME_OTHER_ADDRESS", 2.0, "the From name shows an address other than the one it is from"},
    {"HTML_ONLY", 1.0, "HTML with no plain-text version"},
    {"LINK_MISMATCH", 2.0, "a link whose text shows one site and whose target is another"},
    {"LINK_TO_ADDRESS", 1.5, "a link to a bare IP address instead of a name"},
    {"DANGEROUS_ATTACHMENT", 4.0, "an attachment that runs when opened (.exe, .scr, .js, .vbs, .lnk, ...)"},
    {"BASE64_TEXT", 0.8, "plain ASCII text sent in base64, which hides it from simple filters"},
    {"SUBJECT_ENCODED_ASCII", 0.8, "a subject in RFC 2047 encoded words that is plain ASCII"},
    {"INVISIBLE_CHARACTERS", 1.5, "zero-width characters inside the text, which break words apart for filters"},
    {"SUBJECT_ALL_CAPS", 1.0, "a subject of ten letters or more, all capitals"},
    {"SUBJECT_EXCLAIMS", 0.5, "a subject with \"!!\" or three exclamation marks"},
    {"SUBJECT_DOLLARS", 0.5, "a subject with \"$$\" or a dollar amount"},
    {"DMARC_PASS", -1.0, "the From domain's DMARC passed: the sender is who it says"},
    {"DMARC_FAIL", 2.0, "the From domain's DMARC failed (policy none or quarantine)"},
    {"SPF_FAIL", 2.0, "the sending host is not allowed to send for the envelope sender (SPF fail)"},
    {"SPF_SOFTFAIL", 0.7, "SPF softfail"},
    {"DKIM_INVALID", 1.0, "a DKIM signature that does not verify, and none that does"},
    {"BAYES", kBayesPoints, "the classifier: -6 for certain ham to +6 for certain spam, 0 when it has no opinion"},
    {"DNSBL", 3.0, "the client's address is on a DNS blocklist named in coop.toml (DNSBL_ZONE, each list)"},
    {"URIBL", 3.0, "a link's domain is on a URI blocklist named in coop.toml (URIBL_ZONE, each list)"},
};

double points_of(std::string_view name) {
  for (const auto& rule : kRules)
    if (name == rule.name) return rule.points;
  return 0;
}

void hit(std::vector<Hit>& out, const char* name) { out.push_back(Hit{name, points_of(name)}); }

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && ascii_lower(text.substr(0, prefix.size())) == prefix;
}

// "http://Host:8080/x" -> "host"; "" when the text is no http(s) URL.
std::string url_host(std::string_view url) {
  while (!url.empty() && (url.front() == ' ' || url.front() == '\t')) url.remove_prefix(1);
  if (starts_with_ci(url, "http://")) url.remove_prefix(7);
  else if (starts_with_ci(url, "https://")) url.remove_prefix(8);
  else return {};
  const auto end = url.find_first_of("/?#:\\ ");
  std::string host = ascii_lower(url.substr(0, end));
  if (const auto at = host.rfind('@'); at != std::string::npos) host.erase(0, at + 1);  // user@host
  while (!host.empty() && host.back() == '.') host.pop_back();
  return host;
}

// What a link's text claims as its destination: a URL's host, or a bare host name
// ("www.bank.example", "bank.example/login"); "" when the text is words.
std::string shown_host(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (auto host = url_host(text); !host.empty()) return host;
  const auto end = text.find_first_of("/?#:");
  const auto name = text.substr(0, end);
  if (name.empty() || name.find('.') == std::string_view::npos || name.find(' ') != std::string_view::npos) return {};
  // At least two labels and an alphabetic top-level label: "1.5" and "e.g." are not hosts.
  const auto dot = name.rfind('.');
  const auto tld = name.substr(dot + 1);
  if (dot == 0 || tld.size() < 2 || !std::all_of(tld.begin(), tld.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }))
    return {};
  if (!std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-'; }))
    return {};
  return ascii_lower(name);
}

bool is_ipv4(std::string_view host) {
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return dots == 3;
}

bool dangerous_name(std::string_view name) {
  static constexpr std::string_view kRunnable[] = {"exe", "scr", "pif", "bat", "cmd", "com", "vbs", "vbe", "js",  "jse",
                                                   "wsf", "wsh", "hta", "lnk", "msi", "jar", "ps1", "cpl", "reg", "iso",
                                                   "img", "vhd", "msc", "application", "gadget"};
  while (!name.empty() && (name.back() == ' ' || name.back() == '.')) name.remove_suffix(1);  // Windows drops these
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return false;
  const std::string ext = ascii_lower(name.substr(dot + 1));
  return std::find(std::begin(kRunnable), std::end(kRunnable), ext) != std::end(kRunnable);
}

// U+200B..U+200D, U+2060 and U+FEFF (zero width) and U+00AD (soft hyphen), in UTF-8.
int invisible_characters(std::string_view text) {
  int n = 0;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    const auto a = static_cast<unsigned char>(text[i]), b = static_cast<unsigned char>(text[i + 1]);
    if (a == 0xC2 && b == 0xAD) ++n;
    if (i + 2 < text.size() && a == 0xE2 && b == 0x80) {
      const auto c = static_cast<unsigned char>(text[i + 2]);
      if (c >= 0x8B && c <= 0x8D) ++n;
    }
    if (i + 2 < text.size() && a == 0xE2 && b == 0x81 && static_cast<unsigned char>(text[i + 2]) == 0xA0) ++n;
    if (i + 2 < text.size() && a == 0xEF && b == 0xBB && static_cast<unsigned char>(text[i + 2]) == 0xBF) ++n;
  }
  return n;
}

bool ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace

std::span<const Rule> rules() { return kRules; }

SpamSettings spam_settings(const Config& c) {
  SpamSettings s;
  s.enabled = c.get_bool("workers.mail.spam.enabled", s.enabled);
  s.junk = c.get_number("workers.mail.spam.junk", s.junk, -100, 1000);
  s.reject = c.get_number("workers.mail.spam.reject", s.reject, -100, 1000);
  if (s.reject < s.junk)
    throw Error(errc::kConfigInvalid, "workers.mail.spam: reject (" + std::to_string(s.reject) +
                                          ") is below junk (" + std::to_string(s.junk) + ")", 400);
  s.per_member = c.get_bool("workers.mail.spam.per_member", s.per_member);
  s.per_member_min = static_cast<int64_t>(c.get_count("workers.mail.spam.per_member_min", 20, 1, 1000000));
  s.greylist = c.get_bool("workers.mail.spam.greylist", s.greylist);
  s.greylist_delay = std::chrono::seconds(c.get_count("workers.mail.spam.greylist_delay_s", 300, 0, 86400));
  s.greylist_forget = std::chrono::seconds(c.get_count("workers.mail.spam.greylist_forget_s", 36 * 3600, 60, 30 * 86400));
  s.greylist_pass_days = static_cast<int64_t>(c.get_count("workers.mail.spam.greylist_pass_days", 35, 1, 3650));
  s.dnsbl = c.get_strings("workers.mail.spam.dnsbl", {});
  s.uribl = c.get_strings("workers.mail.spam.uribl", {});
  // A zone is a DNS name: labels of 1 to 63 letters, digits and hyphens.
  auto is_zone = [](const std::string& zone) {
    if (zone.empty() || zone.size() > 200) return false;
    for (std::size_t start = 0; start <= zone.size();) {
      const auto dot = std::min(zone.find('.', start), zone.size());
      const auto label = std::string_view(zone).substr(start, dot - start);
      if (label.empty() || label.size() > 63 || label.front() == '-' ||
          !std::all_of(label.begin(), label.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }))
        return false;
      start = dot + 1;
    }
    return true;
  };
  for (const auto* list : {&s.dnsbl, &s.uribl})
    for (const auto& zone : *list)
      if (!is_zone(zone)) throw Error(errc::kConfigInvalid, "workers.mail.spam: '" + zone + "' is not a DNS zone", 400);
  return s;
}

std::vector<Hit> rule_hits(const MessageText& m, int64_t now) {
  std::vector<Hit> out;
  if (!m.has_from) hit(out, "MISSING_FROM");
  if (!m.has_date) hit(out, "MISSING_DATE");
  if (!m.has_message_id) hit(out, "MISSING_MESSAGE_ID");
  if (m.date && *m.date > now + 86400) hit(out, "DATE_IN_FUTURE");
  // "PayPal <service@paypal.example>" <x@elsewhere.example>
  if (const auto at = m.from_name.find('@'); at != std::string::npos && !m.from.empty()) {
    auto start = m.from_name.find_last_of(" <(\"'", at);
    start = start == std::string::npos ? 0 : start + 1;
    const auto end = m.from_name.find_first_of(" >)\"'", at);
    const auto shown = ascii_lower(std::string_view(m.from_name).substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (shown.find('.', shown.find('@')) != std::string::npos && shown != ascii_lower(m.from)) hit(out, "FROM_NAME_OTHER_ADDRESS");
  }
  if (m.html_parts > 0 && m.plain_parts == 0) hit(out, "HTML_ONLY");
  bool mismatch = false, to_address = false;
  for (const auto& a : m.anchors) {
    const auto target = url_host(a.href);
    if (target.empty()) continue;
    if (is_ipv4(target)) to_address = true;
    const auto shown = shown_host(a.text);
    if (!shown.empty() && !is_ipv4(shown) &&
        dmarc::organizational_domain(shown) != dmarc::organizational_domain(target))
      mismatch = true;
  }
  if (mismatch) hit(out, "LINK_MISMATCH");
  if (to_address) hit(out, "LINK_TO_ADDRESS");
  if (std::any_of(m.attachment_names.begin(), m.attachment_names.end(), [](const auto& n) { return dangerous_name(n); }))
    hit(out, "DANGEROUS_ATTACHMENT");
  if (m.base64_text) hit(out, "BASE64_TEXT");
  if (m.raw_subject.find("=?") != std::string::npos && ascii(m.subject) && !m.subject.empty()) hit(out, "SUBJECT_ENCODED_ASCII");
  if (invisible_characters(m.subject) + invisible_characters(m.body) >= 3) hit(out, "INVISIBLE_CHARACTERS");
  int upper = 0, lower = 0;
  for (char c : m.subject) {
    if (c >= 'A' && c <= 'Z') ++upper;
    if (c >= 'a' && c <= 'z') ++lower;
  }
  if (upper >= 10 && lower == 0) hit(out, "SUBJECT_ALL_CAPS");
  if (m.subject.find("!!") != std::string::npos || std::count(m.subject.begin(), m.subject.end(), '!') >= 3)
    hit(out, "SUBJECT_EXCLAIMS");
  bool dollars = m.subject.find("$$") != std::string::npos;
  for (std::size_t i = m.subject.find('$'); !dollars && i != std::string::npos; i = m.subject.find('$', i + 1))
    dollars = i + 1 < m.subject.size() && std::isdigit(static_cast<unsigned char>(m.subject[i + 1]));
  if (dollars) hit(out, "SUBJECT_DOLLARS");
  return out;
}

std::vector<Hit> auth_hits(const InboundAuth& auth) {
  std::vector<Hit> out;
  if (auth.dmarc.result == "pass") hit(out, "DMARC_PASS");
  if (auth.dmarc.result == "fail") hit(out, "DMARC_FAIL");
  if (auth.spf.result == spf::Result::fail) hit(out, "SPF_FAIL");
  if (auth.spf.result == spf::Result::softfail) hit(out, "SPF_SOFTFAIL");
  const bool any_pass = std::any_of(auth.dkim.begin(), auth.dkim.end(), [](const auto& v) { return v.result == "pass"; });
  const bool any_fail = std::any_of(auth.dkim.begin(), auth.dkim.end(), [](const auto& v) { return v.result == "fail"; });
  if (any_fail && !any_pass) hit(out, "DKIM_INVALID");
  return out;
}

Hit bayes_hit(double probability) {
  return Hit{"BAYES", std::round(kBayesPoints * 2 * (probability - 0.5) * 100) / 100};
}

namespace {

// "4.3.2.1" for 1.2.3.4; the 32 nibbles backwards for IPv6 (RFC 5782 2.1, 2.4); "" otherwise.
std::string reversed_address(const std::string& address) {
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    const auto* b = reinterpret_cast<const unsigned char*>(&v4);
    return std::to_string(b[3]) + "." + std::to_string(b[2]) + "." + std::to_string(b[1]) + "." + std::to_string(b[0]);
  }
  if (::inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 15; i >= 0; --i) {
      out += kHex[v6.s6_addr[i] & 0xF];
      out += '.';
      out += kHex[v6.s6_addr[i] >> 4];
      if (i > 0) out += '.';
    }
    return out;
  }
  return {};
}

// RFC 5782 2.3: a listing is an A record in 127.0.0.0/8. Lists answer 127.0.0.1 (URIBLs) or
// 127.255.255.x (Spamhaus) to say they refuse the question, which is no listing.
bool listed(const net::DnsAnswer& answer) {
  if (answer.status != net::DnsAnswer::Status::ok) return false;
  for (const auto& a : net::parse_addresses(answer))
    if (a.starts_with("127.") && a != "127.0.0.1" && !a.starts_with("127.255.255.")) return true;
  return false;
}

// A list that did not answer is left alone for five minutes: while it is down, each message
// would otherwise hold a blocking thread for the resolver's whole timeout.
class ZoneBreaker {
 public:
  bool down(const std::string& zone) {
    std::lock_guard lock(mutex_);
    const auto it = until_.find(zone);
    return it != until_.end() && std::chrono::steady_clock::now() < it->second;
  }
  void failed(const std::string& zone, const std::string& why) {
    std::lock_guard lock(mutex_);
    auto& until = until_[zone];
    if (std::chrono::steady_clock::now() >= until)
      spdlog::warn("spam: blocklist {} did not answer ({}); not asking it for 5 minutes", zone, why);
    until = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> until_;
};

ZoneBreaker& breaker() {
  static ZoneBreaker instance;
  return instance;
}

std::string hit_name(const char* kind, const std::string& zone) {
  std::string name = kind;
  name += '_';
  for (char c : zone) name += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace

std::vector<Hit> blocklist_hits(net::DnsResolver& dns, const SpamSettings& settings, const std::string& client_address,
                                const MessageText& facts) {
  std::vector<std::pair<std::string, std::pair<const char*, std::string>>> questions;  // name, (kind, zone)
  if (const auto reversed = reversed_address(client_address); !reversed.empty())
    for (const auto& zone : settings.dnsbl)
      if (!breaker().down(zone)) questions.push_back({reversed + "." + zone, {"DNSBL", zone}});
  if (!settings.uribl.empty()) {
    std::set<std::string> domains;
    auto add = [&domains](const std::string& host) {
      if (host.empty() || is_ipv4(host) || host.find('.') == std::string::npos || domains.size() >= 20) return;
      const auto org = dmarc::organizational_domain(host);
      if (!org.empty()) domains.insert(org);
    };
    for (const auto& a : facts.anchors) add(url_host(a.href));
    for (const auto& token : tokens_of("", "", facts.body))
      if (token.starts_with("url:")) add(token.substr(4));
    for (const auto& zone : settings.uribl)
      if (!breaker().down(zone))
        for (const auto& domain : domains) questions.push_back({domain + "." + zone, {"URIBL", zone}});
  }
  if (questions.empty()) return {};
  struct Wait {
    std::mutex mutex;
    std::condition_variable done;
    std::size_t left;
    std::set<std::pair<std::string, std::string>> found;  // (kind, zone)
  };
  auto wait = std::make_shared<Wait>();
  wait->left = questions.size();
  for (const auto& [name, list] : questions)
    dns.query(name, net::kDnsA, [wait, list](net::DnsAnswer answer) {
      if (answer.status == net::DnsAnswer::Status::temporary) breaker().failed(list.second, answer.error);
      std::lock_guard lock(wait->mutex);
      if (listed(answer)) wait->found.insert({list.first, list.second});
      if (--wait->left == 0) wait->done.notify_all();
    });
  std::unique_lock lock(wait->mutex);
  // The resolver answers every question by its own timeout; this bound is a second guard.
  wait->done.wait_for(lock, std::chrono::seconds(30), [&wait] { return wait->left == 0; });
  std::vector<Hit> out;
  for (const auto& [kind, zone] : wait->found)
    out.push_back(Hit{hit_name(kind.c_str(), zone), kind == "DNSBL" ? settings.dnsbl_points : settings.uribl_points});
  return out;
}

std::vector<std::string> classifier_tokens(const MessageText& m) {
  auto tokens = tokens_of(m.subject, m.from, m.body);
  auto add = [&tokens](std::string token) {
    if (token.size() > 80) token.resize(80);
    tokens.push_back(std::move(token));
  };
  if (!m.mailer.empty()) add("mailer:" + ascii_lower(m.mailer.substr(0, m.mailer.find_first_of(" /(;"))));
  for (const auto& charset : m.charsets) add("charset:" + charset);
  for (const auto& name : m.attachment_names)
    if (const auto dot = name.rfind('.'); dot != std::string::npos) add("attach:" + ascii_lower(name.substr(dot + 1)));
  if (m.html_parts > 0 && m.plain_parts == 0) add("form:html-only");
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  return tokens;
}

void Score::add(Hit h) {
  total += h.points;
  hits.push_back(std::move(h));
}

std::string spam_headers(const Score& score, double junk) {
  char number[32];
  auto format = [&number](double v) {
    std::snprintf(number, sizeof number, "%.1f", std::abs(v) < 0.05 ? 0.0 : v);
    return std::string(number);
  };
  std::string tests;
  for (const auto& h : score.hits) {
    if (!tests.empty()) tests += ",\r\n\t";
    tests += h.name;
    if (h.name == "BAYES") {
      std::snprintf(number, sizeof number, "(%.3f)", score.bayes);
      tests += number;
    }
    tests += "=" + format(h.points);
  }
  std::string out = "X-Spam-Score: " + format(score.total) + "\r\n";
  out += "X-Spam-Status: " + std::string(score.total >= junk ? "Yes" : "No") + ", score=" + format(score.total) +
         " required=" + format(junk) + (tests.empty() ? std::string() : "\r\n\ttests=" + tests) + "\r\n";
  return out;
}

std::string strip_spam_headers(std::string_view message) {
  return strip_fields(message, [](const dkim::HeaderField& f) { return f.name.starts_with("x-spam-"); });
}

SpamFilter::SpamFilter(const std::filesystem::path& file, SpamSettings settings)
    : settings_(std::move(settings)), bayes_(std::make_unique<BayesStore>(file)) {}

SpamFilter::~SpamFilter() = default;

Score SpamFilter::score(const MessageText& facts, const InboundAuth* auth, int64_t now) {
  Score score;
  if (auth)
    for (auto& h : auth_hits(*auth)) score.add(std::move(h));
  for (auto& h : rule_hits(facts, now)) score.add(std::move(h));
  score.bayes = bayes_->classify("", classifier_tokens(facts)).probability;
  if (score.bayes != 0.5) score.add(bayes_hit(score.bayes));
  return score;
}

Score SpamFilter::for_member(const Score& shard, const MessageText& facts, const std::string& handle) {
  if (!settings_.per_member) return shard;
  const auto counts = bayes_->counts(handle);
  if (counts.spam_messages < settings_.per_member_min || counts.ham_messages < settings_.per_member_min) return shard;
  Score own;
  own.bayes = bayes_->classify(handle, classifier_tokens(facts)).probability;
  for (const auto& h : shard.hits)
    if (h.name != "BAYES") own.add(h);
  if (own.bayes != 0.5) own.add(bayes_hit(own.bayes));
  return own;
}

bool SpamFilter::train(const std::string& handle, const std::string& key, std::string_view bytes, bool spam) {
  const auto tokens = classifier_tokens(message_text(bytes));
  bool changed = bayes_->train("", key, tokens, spam);
  if (settings_.per_member && !handle.empty()) changed = bayes_->train(handle, key, tokens, spam) || changed;
  return changed;
}

}  // namespace coop::mail::spam
