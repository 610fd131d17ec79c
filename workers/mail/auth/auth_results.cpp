// Authentication-Results composition and clean-up.
#include "workers/mail/auth/auth_results.h"

#include "common/text.h"
#include "workers/mail/auth/dkim.h"
#include "workers/mail/imap_fetch.h"
#include "workers/mail/mime_summary.h"

namespace coop::mail {

namespace {

// RFC 8601 2.2: a ptype.property value is a token or a quoted string; comments are escaped.
std::string value(const std::string& v) {
  bool plain = !v.empty();
  for (char c : v)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("@.-_+=/").find(c) != std::string_view::npos))
      plain = false;
  if (plain) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  }
  return out + "\"";
}

std::string comment(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  }
  return out.substr(0, 200);
}

}  // namespace

std::string authentication_results(const std::string& id, const InboundAuth& a) {
  std::vector<std::string> results;
  if (a.dkim.empty()) results.push_back("dkim=none");
  for (const auto& v : a.dkim) {
    std::string r = "dkim=" + v.result;
    if (!v.reason.empty()) r += " (" + comment(v.reason) + ")";
    if (!v.domain.empty()) r += " header.d=" + value(v.domain);
    if (!v.selector.empty()) r += " header.s=" + value(v.selector);
    if (!v.algorithm.empty()) r += " header.a=" + value(v.algorithm);
    if (!v.header_b.empty()) r += " header.b=" + value(v.header_b);
    results.push_back(r);
  }
  std::string spf = "spf=" + std::string(spf::result_name(a.spf.result));
  if (!a.spf.reason.empty()) spf += " (" + comment(a.spf.reason) + ")";
  spf += a.mail_from.empty() ? " smtp.helo=" + value(a.helo) : " smtp.mailfrom=" + value(a.mail_from);
  results.push_back(spf);
  std::string dmarc = "dmarc=" + a.dmarc.result;
  if (a.dmarc.result == "fail") dmarc += " (p=" + a.dmarc.policy + ")";
  if (!a.dmarc.from_domain.empty()) dmarc += " header.from=" + value(a.dmarc.from_domain);
  results.push_back(dmarc);
  std::string out = "Authentication-Results: " + id;
  for (const auto& r : results) out += ";\r\n\t" + r;
  return out + "\r\n";
}

std::string strip_fields(std::string_view message, const std::function<bool(const dkim::HeaderField&)>& drop) {
  const auto split = imap::header_end(message);
  const auto fields = dkim::header_fields(message.substr(0, split));
  std::string out;
  out.reserve(message.size());
  std::size_t copied = 0;  // message bytes already handled
  for (const auto& f : fields) {
    if (!drop(f)) continue;
    const auto start = static_cast<std::size_t>(f.raw.data() - message.data());
    auto stop = start + f.raw.size();
    if (message.substr(stop, 2) == "\r\n") stop += 2;
    else if (message.substr(stop, 1) == "\n") stop += 1;
    out.append(message.substr(copied, start - copied));
    copied = stop;
  }
  out.append(message.substr(copied));
  return out;
}

std::string strip_our_results(std::string_view message, const std::string& id) {
  return strip_fields(message, [&id](const dkim::HeaderField& f) {
    if (f.name != "authentication-results") return false;
    // The authserv-id is the first token of the value (RFC 8601 2.2), maybe after a comment.
    std::string_view v = f.raw.substr(f.raw.find(':') + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == '\r' || v.front() == '\n')) v.remove_prefix(1);
    const auto end = v.find_first_of("; \t\r\n(");
    return ascii_lower(v.substr(0, end)) == ascii_lower(id);
  });
}

std::string from_domain(std::string_view message) {
  const auto split = imap::header_end(message);
  const auto summary = summarize_message(message.substr(0, split));
  const auto& e = summary.envelope;
  if (!e.is_object() || !e.contains("from") || !e["from"].is_array()) return {};
  for (const auto& a : e["from"]) {
    if (!a.is_object()) continue;
    const auto host = a.value("host", nlohmann::json());
    if (host.is_string()) return ascii_lower(host.get<std::string>());
  }
  return {};
}

}  // namespace coop::mail
