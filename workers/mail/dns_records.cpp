// Suggested records and their check.
#include "workers/mail/dns_records.h"

#include <map>
#include <memory>
#include <mutex>

#include "common/net/dns.h"
#include "common/text.h"
#include "workers/mail/auth/dmarc.h"
#include "workers/mail/auth/spf.h"

namespace coop::mail {

namespace {

constexpr int kDnsCname = 5, kDnsSrv = 33;

std::string key_of(const std::string& record) {
  const auto p = record.find("p=");
  if (p == std::string::npos) return {};
  std::string key;
  for (char c : record.substr(p + 2)) {
    if (c == ';') break;
    if (c != ' ' && c != '\t') key += c;
  }
  return key;
}

void judge(DnsRecord& r, const net::DnsAnswer& answer, const std::string& hostname) {
  using S = net::DnsAnswer::Status;
  if (answer.status == S::temporary) {
    r.status = "temporary";
    r.found = answer.error;
    return;
  }
  std::vector<std::string> found;
  bool ok = false;
  if (r.type == "MX") {
    for (const auto& mx : net::parse_mx(answer)) {
      found.push_back(std::to_string(mx.preference) + " " + (mx.exchange.empty() ? "." : mx.exchange));
      ok = ok || mx.exchange == hostname;
    }
  } else if (r.type == "CNAME") {
    for (const auto& name : net::parse_names(answer)) {
      found.push_back(name);
      ok = ok || name == hostname;
    }
  } else if (r.type == "SRV") {
    for (const auto& rdata : answer.rdata) {
      if (rdata.size() < 7) continue;
      const int port = (static_cast<unsigned char>(rdata[4]) << 8) | static_cast<unsigned char>(rdata[5]);
      net::DnsAnswer target_only;  // RFC 2782: priority, weight, port, then the target name
      target_only.rdata = {rdata.substr(6)};
      const auto targets = net::parse_names(target_only);
      const auto target = targets.empty() ? std::string(".") : targets.front();
      found.push_back("port " + std::to_string(port) + " " + target);
      ok = ok || r.value.find(" " + std::to_string(port) + " " + target) != std::string::npos;
    }
  } else {  // TXT
    std::vector<std::string> relevant;
    for (const auto& text : net::parse_txt(answer)) {
      const auto lower = ascii_lower(text);
      if (r.purpose.rfind("SPF", 0) == 0 && lower.rfind("v=spf1", 0) == 0) relevant.push_back(text);
      else if (r.purpose.rfind("DMARC", 0) == 0 && lower.rfind("v=dmarc1", 0) == 0) relevant.push_back(text);
      else if (r.purpose.rfind("DKIM", 0) == 0) relevant.push_back(text);
    }
    found = relevant;
    if (relevant.size() == 1) {
      const auto& text = relevant.front();
      if (r.purpose.rfind("SPF", 0) == 0) {
        const auto error = spf::record_syntax_error(text);
        ok = error.empty();
        if (!ok) found = {text + " (" + error + ")"};
      } else if (r.purpose.rfind("DMARC", 0) == 0) {
        ok = dmarc::parse_record(text).has_value();
      } else {
        ok = key_of(text) == key_of(r.value);
      }
    } else if (relevant.size() > 1) {
      found.push_back("(more than one record: receivers treat that as an error)");
    }
  }
  r.status = ok ? "ok" : found.empty() ? "missing" : "wrong";
  if (!ok) {
    for (const auto& f : found) r.found += (r.found.empty() ? "" : "; ") + f;
  }
}

}  // namespace

std::vector<DnsRecord> suggested_records(const std::string& domain_in, const MailServers& s,
                                         const std::vector<dkim::KeyInfo>& keys) {
  const auto domain = ascii_lower(domain_in);
  const auto& host = s.hostname;
  std::vector<DnsRecord> out;
  out.push_back({domain, "MX", "10 " + host + ".", "where mail for the domain goes (RFC 5321 5.1)", "", ""});
  out.push_back({domain, "TXT", "v=spf1 mx -all", "SPF: only the MX hosts send for the domain (RFC 7208)", "", ""});
  for (const auto& k : keys)
    if (k.active && k.domain == domain)
      out.push_back({k.dns_name, "TXT", k.dns_record, "DKIM key " + k.selector + " (RFC 6376 3.6.2)", "", ""});
  out.push_back({"_dmarc." + domain, "TXT", "v=DMARC1; p=quarantine; rua=mailto:postmaster@" + domain,
                 "DMARC: unauthenticated mail claiming the domain goes to Junk (RFC 7489)", "", ""});
  out.push_back({"autoconfig." + domain, "CNAME", host + ".", "Thunderbird finds its settings here", "", ""});
  out.push_back({"autodiscover." + domain, "CNAME", host + ".", "Outlook finds its settings here", "", ""});
  // RFC 6186 3 and RFC 8314 5.1: priority weight port target.
  auto srv = [&](const char* service, const std::optional<uint16_t>& port, const char* what) {
    if (port) out.push_back({std::string(service) + "._tcp." + domain, "SRV", "0 1 " + std::to_string(*port) + " " + host + ".", what, "", ""});
  };
  srv("_imaps", s.imaps, "IMAP over TLS (RFC 8314)");
  srv("_imap", s.imap, "IMAP with STARTTLS (RFC 6186)");
  srv("_submissions", s.submissions, "submission over TLS (RFC 8314)");
  srv("_submission", s.submission, "submission with STARTTLS (RFC 6186)");
  return out;
}

void check_records(net::DnsResolver& dns, std::vector<DnsRecord> records, std::function<void(std::vector<DnsRecord>)> done) {
  struct State {
    std::mutex mutex;
    std::vector<DnsRecord> records;
    std::size_t left;
    std::string hostname;
    std::function<void(std::vector<DnsRecord>)> done;
  };
  auto state = std::make_shared<State>();
  state->records = std::move(records);
  state->left = state->records.size();
  state->done = std::move(done);
  for (const auto& r : state->records)
    if (r.type == "MX") state->hostname = r.value.substr(r.value.find(' ') + 1, r.value.size() - r.value.find(' ') - 2);
  if (state->left == 0) return state->done({});
  for (std::size_t i = 0; i < state->records.size(); ++i) {
    const auto& r = state->records[i];
    const int type = r.type == "MX" ? net::kDnsMx : r.type == "CNAME" ? kDnsCname : r.type == "SRV" ? kDnsSrv : net::kDnsTxt;
    dns.query(r.name, type, [state, i](net::DnsAnswer answer) {
      std::unique_lock lock(state->mutex);
      judge(state->records[i], answer, state->hostname);
      if (--state->left > 0) return;
      auto out = std::move(state->records);
      lock.unlock();
      state->done(std::move(out));
    });
  }
}

}  // namespace coop::mail
