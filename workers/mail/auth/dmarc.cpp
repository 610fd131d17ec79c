// DMARC evaluation.
#include "workers/mail/auth/dmarc.h"

#include <libpsl.h>

#include <memory>
#include <random>

#include "common/net/dns.h"
#include "common/text.h"

namespace coop::mail::dmarc {

namespace {

const psl_ctx_t* psl() {
  // The system's list (Debian's publicsuffix) when there is one, else the built-in copy.
  static const psl_ctx_t* ctx = [] {
    const psl_ctx_t* latest = psl_latest(nullptr);
    return latest ? latest : psl_builtin();
  }();
  return ctx;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

bool aligned(const std::string& a, const std::string& b, bool strict) {
  if (strict) return a == b;
  return organizational_domain(a) == organizational_domain(b);
}

}  // namespace

std::string organizational_domain(const std::string& domain_in) {
  const auto domain = ascii_lower(domain_in);
  const char* registrable = psl() ? psl_registrable_domain(psl(), domain.c_str()) : nullptr;
  return registrable ? std::string(registrable) : domain;
}

std::optional<Record> parse_record(const std::string& text) {
  Record r;
  std::size_t pos = 0;
  bool first = true;
  while (pos <= text.size()) {
    auto end = text.find(';', pos);
    if (end == std::string::npos) end = text.size();
    const auto spec = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (spec.empty()) continue;
    const auto eq = spec.find('=');
    if (eq == std::string::npos) return std::nullopt;
    const auto name = ascii_lower(trim(spec.substr(0, eq)));
    const auto value = ascii_lower(trim(spec.substr(eq + 1)));
    if (first) {  // 6.4: v=DMARC1 first
      if (name != "v" || value != "dmarc1") return std::nullopt;
      first = false;
      continue;
    }
    if (name == "p" || name == "sp") {
      if (value != "none" && value != "quarantine" && value != "reject") {
        if (name == "p") return std::nullopt;
        continue;
      }
      (name == "p" ? r.policy : r.subdomain_policy) = value;
    } else if (name == "adkim") {
      r.strict_dkim = value == "s";
    } else if (name == "aspf") {
      r.strict_spf = value == "s";
    } else if (name == "pct") {
      if (!value.empty() && value.size() <= 3 && value.find_first_not_of("0123456789") == std::string::npos)
        r.percent = std::min(100, std::stoi(value));
    }
  }
  if (first) return std::nullopt;
  return r;
}

void evaluate(net::DnsResolver& dns, const std::string& from_domain_in, const std::vector<dkim::Verdict>& dkim,
              const spf::Outcome& spf, std::function<void(Outcome)> done) {
  const auto from_domain = ascii_lower(from_domain_in);
  const auto org = organizational_domain(from_domain);
  struct State {
    std::string from_domain, org;
    std::vector<dkim::Verdict> dkim;
    spf::Outcome spf;
    std::function<void(Outcome)> done;
  };
  auto state = std::make_shared<State>(State{from_domain, org, dkim, spf, std::move(done)});

  // 6.6.3: the policy of the From: domain, else of its organizational domain.
  auto decide = [state](const Record& record, bool at_org) {
    Outcome out;
    out.from_domain = state->from_domain;
    bool pass = false;
    for (const auto& v : state->dkim)
      if (v.result == "pass" && aligned(v.domain, state->from_domain, record.strict_dkim)) pass = true;
    if (state->spf.result == spf::Result::pass && aligned(state->spf.domain, state->from_domain, record.strict_spf))
      pass = true;
    if (pass) {
      out.result = "pass";
      out.reason = "aligned " + std::string(state->spf.result == spf::Result::pass ? "SPF or DKIM" : "DKIM") + " pass";
      return state->done(out);
    }
    out.result = "fail";
    std::string policy = at_org && state->from_domain != state->org && !record.subdomain_policy.empty()
                             ? record.subdomain_policy
                             : record.policy;
    // 6.6.4: pct= samples; a message outside the sample gets the next milder policy.
    if (record.percent < 100) {
      thread_local std::mt19937 rng{std::random_device{}()};
      if (static_cast<int>(rng() % 100) >= record.percent) policy = policy == "reject" ? "quarantine" : "none";
    }
    out.policy = policy;
    out.reason = "neither DKIM nor SPF passed for a domain aligned with " + state->from_domain;
    state->done(out);
  };

  auto lookup = std::make_shared<std::function<void(const std::string&, bool)>>();
  *lookup = [&dns, state, decide, lookup](const std::string& domain, bool at_org) {
    dns.query("_dmarc." + domain, net::kDnsTxt, [&dns, state, decide, lookup, at_org](net::DnsAnswer answer) {
      if (answer.status == net::DnsAnswer::Status::temporary) {
        Outcome out;
        out.result = "temperror";
        out.from_domain = state->from_domain;
        out.reason = answer.error;
        *lookup = nullptr;
        return state->done(out);
      }
      std::vector<Record> records;
      for (const auto& text : net::parse_txt(answer))
        if (auto r = parse_record(text)) records.push_back(*r);
      if (records.size() == 1) {
        *lookup = nullptr;
        return decide(records.front(), at_org);
      }
      if (!at_org && state->org != state->from_domain) return (*lookup)(state->org, true);
      Outcome out;  // 6.6.3: no policy (or several): DMARC does not apply
      out.from_domain = state->from_domain;
      out.reason = records.empty() ? "no DMARC record" : "more than one DMARC record";
      *lookup = nullptr;
      state->done(out);
    });
  };
  if (from_domain.empty()) {
    Outcome out;
    out.result = "permerror";
    out.reason = "no From: domain";
    return state->done(out);
  }
  (*lookup)(from_domain, false);
}

}  // namespace coop::mail::dmarc
