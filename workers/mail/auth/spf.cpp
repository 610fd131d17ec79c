// RFC 7208 check_host() as a coroutine: each DNS question is co_awaited on the resolver.
#include "workers/mail/auth/spf.h"

#include <arpa/inet.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/net/dns_await.h"
#include "common/text.h"

namespace coop::mail::spf {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

std::string_view result_name(Result r) {
  switch (r) {
    case Result::none: return "none";
    case Result::neutral: return "neutral";
    case Result::pass: return "pass";
    case Result::fail: return "fail";
    case Result::softfail: return "softfail";
    case Result::temperror: return "temperror";
    case Result::permerror: return "permerror";
  }
  return "none";
}

namespace {

constexpr int kMaxLookups = 10;     // 4.6.4
constexpr int kMaxVoidLookups = 2;  // 4.6.4
constexpr int kMaxDepth = 20;       // recursion beyond the lookup limit is impossible anyway

struct Address {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};
};

std::optional<Address> parse_ip(std::string_view text) {
  Address a;
  const std::string s(text);
  if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  a.v6 = true;
  // 5: an IPv4-mapped IPv6 client is checked as IPv4.
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(mapped, mapped + 12, a.bytes.begin())) {
    std::copy(a.bytes.begin() + 12, a.bytes.end(), a.bytes.begin());
    std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
    a.v6 = false;
  }
  return a;
}

bool in_network(const Address& ip, const Address& net, int prefix) {
  if (ip.v6 != net.v6) return false;
  for (int bit = 0; bit < prefix; ++bit) {
    const int byte = bit / 8, mask = 0x80 >> (bit % 8);
    if ((ip.bytes[byte] & mask) != (net.bytes[byte] & mask)) return false;
  }
  return true;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// 4.3: a usable domain: labels of 1..63 octets, at least two of them.
bool valid_domain(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  if (d.empty() || d.size() > 253 || d.find('.') == std::string_view::npos) return false;
  std::size_t start = 0;
  while (start <= d.size()) {
    auto end = d.find('.', start);
    if (end == std::string_view::npos) end = d.size();
    if (end == start || end - start > 63) return false;
    start = end + 1;
  }
  return true;
}

// 4.8 toplabel: alphanumeric with a letter, or with hyphens inside.
bool valid_toplabel(std::string_view label) {
  if (label.empty() || label.front() == '-' || label.back() == '-') return false;
  bool alpha = false;
  for (char c : label) {
    if (is_alpha(c)) alpha = true;
    else if (!is_digit(c) && c != '-') return false;
  }
  return alpha;
}

struct Context {
  const Query* query;
  Address ip;
  std::string sender;       // with postmaster@ when its local part was empty
  std::string domain;       // <domain> of the current check_host()
  int64_t now = 0;
  std::string validated = "unknown";  // %{p}
  bool upper_hex = false;
};

std::string ip_text(const Address& ip) {
  char out[INET6_ADDRSTRLEN];
  ::inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), out, sizeof out);
  return out;
}

// 7.3: %{i} is dotted decimal, or dotted nibbles for IPv6 (in upper case when the
// address was given so, as the test suite's reference implementation does).
std::string ip_macro(const Address& ip, bool upper = false) {
  std::string out;
  if (!ip.v6) {
    for (int i = 0; i < 4; ++i) out += (i ? "." : "") + std::to_string(ip.bytes[i]);
    return out;
  }
  const char* hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    if (i) out += '.';
    out += hex[ip.bytes[i] >> 4];
    out += '.';
    out += hex[ip.bytes[i] & 15];
  }
  return out;
}

std::string reverse_name(const Address& ip) {
  std::string macro = ip_macro(ip);
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= macro.size()) {
    auto end = macro.find('.', start);
    if (end == std::string::npos) end = macro.size();
    parts.push_back(macro.substr(start, end - start));
    start = end + 1;
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += *it + ".";
  return out + (ip.v6 ? "ip6.arpa" : "in-addr.arpa");
}

// 7: expands a macro-string. exp: the explanation's extra letters c, r, t are allowed.
// nullopt: a syntax error (permerror).
std::optional<std::string> expand(std::string_view text, const Context& c, bool exp) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch != '%') {
      if (static_cast<unsigned char>(ch) < 0x21 || static_cast<unsigned char>(ch) > 0x7e) {
        if (!(exp && ch == ' ')) return std::nullopt;
      }
      out += ch;
      continue;
    }
    if (++i >= text.size()) return std::nullopt;
    if (text[i] == '%') { out += '%'; continue; }
    if (text[i] == '_') { out += ' '; continue; }
    if (text[i] == '-') { out += "%20"; continue; }
    if (text[i] != '{') return std::nullopt;
    const auto close = text.find('}', i);
    if (close == std::string_view::npos || close == i + 1) return std::nullopt;
    std::string_view body = text.substr(i + 1, close - i - 1);
    i = close;
    const char letter = body[0];
    const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(letter)));
    body.remove_prefix(1);
    std::string value;
    const auto at = c.sender.rfind('@');
    switch (lower) {
      case 's': value = c.sender; break;
      case 'l': value = c.sender.substr(0, at); break;
      case 'o': value = c.sender.substr(at + 1); break;
      case 'd': value = c.domain; break;
      case 'i': value = ip_macro(c.ip, c.upper_hex); break;
      case 'p': value = c.validated; break;
      case 'v': value = c.ip.v6 ? "ip6" : "in-addr"; break;
      case 'h': value = c.query->helo; break;
      case 'c': if (!exp) return std::nullopt; value = ip_text(c.ip); break;
      case 'r': if (!exp) return std::nullopt; value = c.query->receiver.empty() ? "unknown" : c.query->receiver; break;
      case 't': if (!exp) return std::nullopt; value = std::to_string(c.now); break;
      default: return std::nullopt;
    }
    // transformers: *DIGIT [ "r" ], then delimiters
    std::size_t digits_end = 0;
    while (digits_end < body.size() && is_digit(body[digits_end])) ++digits_end;
    int keep = -1;
    if (digits_end > 0) {
      if (digits_end > 3) return std::nullopt;
      keep = std::stoi(std::string(body.substr(0, digits_end)));
      if (keep == 0) return std::nullopt;  // 7.1: zero is not allowed
    }
    body.remove_prefix(digits_end);
    bool reverse = false;
    if (!body.empty() && (body[0] == 'r' || body[0] == 'R')) {
      reverse = true;
      body.remove_prefix(1);
    }
    std::string delimiters;
    for (char d : body) {
      if (std::string_view(".-+,/_=").find(d) == std::string_view::npos) return std::nullopt;
      delimiters += d;
    }
    if (delimiters.empty()) delimiters = ".";
    std::vector<std::string> parts;
    std::string part;
    for (char v : value) {
      if (delimiters.find(v) != std::string::npos) {
        parts.push_back(part);
        part.clear();
      } else {
        part += v;
      }
    }
    parts.push_back(part);
    if (reverse) std::reverse(parts.begin(), parts.end());
    if (keep > 0 && static_cast<std::size_t>(keep) < parts.size()) parts.erase(parts.begin(), parts.end() - keep);
    std::string joined;
    for (std::size_t p = 0; p < parts.size(); ++p) joined += (p ? "." : "") + parts[p];
    if (std::isupper(static_cast<unsigned char>(letter))) {
      // 7.3: uppercase letters URL-escape what is not unreserved.
      std::string escaped;
      for (unsigned char v : joined) {
        if (std::isalnum(v) || v == '-' || v == '.' || v == '_' || v == '~') {
          escaped += static_cast<char>(v);
        } else {
          char hex[4];
          std::snprintf(hex, sizeof hex, "%%%02X", v);
          escaped += hex;
        }
      }
      joined = escaped;
    }
    out += joined;
  }
  return out;
}

// A domain-spec (4.8 and 7): expanded, shortened from the left to 253 octets, and checked.
std::optional<std::string> target_name(std::string_view spec, const Context& c) {
  auto name = expand(spec, c, false);
  if (!name) return std::nullopt;
  while (name->size() > 253) {
    const auto dot = name->find('.');
    if (dot == std::string::npos) return std::nullopt;
    name->erase(0, dot + 1);
  }
  std::string n = *name;
  if (!n.empty() && n.back() == '.') n.pop_back();
  if (n.empty()) return std::nullopt;
  return ascii_lower(n);
}

// Syntax of a domain-spec before expansion: it must end in a toplabel or a macro (4.8).
bool valid_domain_spec(std::string_view spec) {
  if (spec.empty()) return false;
  if (spec.back() == '}') return true;
  std::string_view s = spec;
  if (s.back() == '.') s.remove_suffix(1);
  const auto dot = s.rfind('.');
  if (dot == std::string_view::npos) return false;
  const auto top = s.substr(dot + 1);
  if (top.find('%') != std::string_view::npos) return true;
  return valid_toplabel(top);
}

struct Term {
  bool modifier = false;
  char qualifier = '+';
  std::string name;  // lowercase
  std::string argument;  // after ":" or "="
  bool has_argument = false;
  int cidr4 = 32, cidr6 = 128;
};

bool parse_cidr(std::string_view text, int max, int& into) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return false;
  for (char c : text)
    if (!is_digit(c)) return false;
  into = std::stoi(std::string(text));
  return into <= max;
}

// 4.6.1 and 5: the whole record is parsed before anything is evaluated.
std::optional<std::vector<Term>> parse_record(std::string_view record, const Context& c) {
  std::vector<Term> terms;
  std::size_t pos = 6;  // after "v=spf1"
  bool redirect = false, exp = false;
  while (pos < record.size()) {
    if (record[pos] == ' ') {
      ++pos;
      continue;
    }
    auto end = record.find(' ', pos);
    if (end == std::string_view::npos) end = record.size();
    std::string_view text = record.substr(pos, end - pos);
    pos = end;
    Term t;
    // A modifier: name "=" ...; its name starts with a letter.
    const auto eq = text.find('=');
    const auto colon_or_slash = text.find_first_of(":/");
    if (eq != std::string_view::npos && (colon_or_slash == std::string_view::npos || eq < colon_or_slash)) {
      const auto name = text.substr(0, eq);
      if (name.empty() || !is_alpha(name[0])) return std::nullopt;
      for (char ch : name)
        if (!is_alpha(ch) && !is_digit(ch) && ch != '-' && ch != '_' && ch != '.') return std::nullopt;
      t.modifier = true;
      t.name = ascii_lower(name);
      t.argument = std::string(text.substr(eq + 1));
      t.has_argument = true;
      if (!expand(t.argument, c, false)) return std::nullopt;  // 4.6.1 and 7.1: c, r, t only in explanations
      if (t.name == "redirect" || t.name == "exp") {
        bool& seen = t.name == "redirect" ? redirect : exp;
        if (seen) return std::nullopt;  // 6: at most once each
        seen = true;
        if (!valid_domain_spec(t.argument)) return std::nullopt;
      }
      terms.push_back(std::move(t));
      continue;
    }
    if (!text.empty() && std::string_view("+-~?").find(text[0]) != std::string_view::npos) {
      t.qualifier = text[0];
      text.remove_prefix(1);
    }
    const auto name_end = text.find_first_of(":/");
    t.name = ascii_lower(text.substr(0, name_end));
    std::string_view rest = name_end == std::string_view::npos ? std::string_view() : text.substr(name_end);
    const std::string& n = t.name;
    if (n == "all") {
      if (!rest.empty()) return std::nullopt;
    } else if (n == "include" || n == "exists") {
      if (rest.size() < 2 || rest[0] != ':') return std::nullopt;
      t.argument = std::string(rest.substr(1));
      t.has_argument = true;
      if (!valid_domain_spec(t.argument) || !expand(t.argument, c, false)) return std::nullopt;
    } else if (n == "a" || n == "mx" || n == "ptr") {
      if (!rest.empty() && rest[0] == ':') {
        // The domain-spec may hold ":" and "/" itself: the dual-cidr-length is what ends it.
        std::string_view spec = rest.substr(1);
        std::string_view cidr;
        if (n != "ptr") {
          auto digits_before = [&spec](std::size_t e) {
            while (e > 0 && is_digit(spec[e - 1])) --e;
            return e;
          };
          std::size_t cut = spec.size();
          std::size_t b = digits_before(cut);
          if (b < cut && b >= 2 && spec[b - 1] == '/' && spec[b - 2] == '/') {  // "//N"
            cut = b - 2;
            b = digits_before(cut);
          }
          if (b < cut && b >= 1 && spec[b - 1] == '/' && !(b >= 2 && spec[b - 2] == '/')) cut = b - 1;  // "/N"
          cidr = spec.substr(cut);
          spec = spec.substr(0, cut);
        }
        t.argument = std::string(spec);
        t.has_argument = true;
        if (!valid_domain_spec(t.argument) || !expand(t.argument, c, false)) return std::nullopt;
        rest = cidr;
      }
      if (!rest.empty()) {
        if (n == "ptr") return std::nullopt;
        // dual-cidr-length: ["/" ip4] ["//" ip6]
        if (rest.substr(0, 2) == "//") {
          if (!parse_cidr(rest.substr(2), 128, t.cidr6)) return std::nullopt;
        } else if (rest[0] == '/') {
          const auto dbl = rest.find("//");
          if (!parse_cidr(rest.substr(1, dbl == std::string_view::npos ? std::string_view::npos : dbl - 1), 32, t.cidr4))
            return std::nullopt;
          if (dbl != std::string_view::npos && !parse_cidr(rest.substr(dbl + 2), 128, t.cidr6)) return std::nullopt;
        } else {
          return std::nullopt;
        }
      }
    } else if (n == "ip4" || n == "ip6") {
      if (rest.size() < 2 || rest[0] != ':') return std::nullopt;
      rest.remove_prefix(1);
      const auto slash = rest.find('/');
      t.argument = std::string(rest.substr(0, slash));
      t.has_argument = true;
      const auto address = parse_ip(t.argument);
      // An ip4 network must be dotted quad, an ip6 network IPv6 (4.6.1 / 5.6).
      in6_addr probe6{};
      in_addr probe4{};
      if (n == "ip4" ? ::inet_pton(AF_INET, t.argument.c_str(), &probe4) != 1
                     : ::inet_pton(AF_INET6, t.argument.c_str(), &probe6) != 1 || !address)
        return std::nullopt;
      if (slash != std::string_view::npos) {
        int& into = n == "ip4" ? t.cidr4 : t.cidr6;
        if (!parse_cidr(rest.substr(slash + 1), n == "ip4" ? 32 : 128, into)) return std::nullopt;
      }
    } else {
      return std::nullopt;  // an unknown mechanism
    }
    terms.push_back(std::move(t));
  }
  return terms;
}

enum class Match { no, yes, temperror, permerror };

class Evaluator {
 public:
  Evaluator(net::DnsResolver& dns, Query query) : dns_(dns), query_(std::move(query)) {}

  awaitable<Outcome> run() {
    Outcome out;
    const auto ip = parse_ip(query_.ip);
    std::string sender = query_.sender.empty() ? "postmaster@" + query_.helo : query_.sender;
    if (sender.find('@') == std::string::npos) sender = "postmaster@" + sender;
    if (sender.front() == '@') sender = "postmaster" + sender;  // 4.3: an empty local part
    out.domain = ascii_lower(sender.substr(sender.rfind('@') + 1));
    if (!ip) {
      out.result = Result::permerror;
      out.reason = "the client address is not an IP address";
      co_return out;
    }
    ip_ = *ip;
    sender_ = sender;
    now_ = static_cast<int64_t>(::time(nullptr));
    auto result = co_await check_host(out.domain, 0, true);
    result.domain = out.domain;
    co_return result;
  }

 private:
  awaitable<net::DnsAnswer> ask(const std::string& name, int type) { return net::ask(dns_, name, type); }

  Context context(const std::string& domain) const {
    Context c;
    c.query = &query_;
    c.ip = ip_;
    c.sender = sender_;
    c.domain = domain;
    c.now = now_;
    c.upper_hex = query_.ip.find_first_of("ABCDEF") != std::string::npos;
    if (validated_) c.validated = *validated_;
    return c;
  }

  // 7.3's %{p}: a PTR name of the client whose own addresses include it, one at or under
  // domain preferred; "unknown" when there is none. Asked only when a record uses it.
  awaitable<void> find_validated_name(std::string domain) {
    validated_ = "unknown";
    const auto answer = co_await ask(reverse_name(ip_), 12);
    auto names = net::parse_names(answer);
    if (names.size() > 10) names.resize(10);  // 4.6.4
    std::string first;
    for (const auto& name : names) {
      const bool validated = co_await points_back(name);
      if (!validated) continue;
      if (within_domain(name, domain)) {
        validated_ = name;
        co_return;
      }
      if (first.empty()) first = name;
    }
    if (!first.empty()) validated_ = first;
  }

  // A counted lookup (4.6.4): false when over the limit.
  bool count() { return ++lookups_ <= kMaxLookups; }
  // A void answer (no data, no name) counts towards the second limit.
  bool count_void(const net::DnsAnswer& a) {
    if (a.status == net::DnsAnswer::Status::nxdomain || a.status == net::DnsAnswer::Status::nodata ||
        (a.status == net::DnsAnswer::Status::ok && a.rdata.empty()))
      return ++voids_ <= kMaxVoidLookups;
    return true;
  }

  awaitable<std::optional<std::vector<std::string>>> addresses(std::string name, bool* temp) {
    const auto answer = co_await ask(name, ip_.v6 ? net::kDnsAaaa : net::kDnsA);
    if (answer.status == net::DnsAnswer::Status::temporary) {
      *temp = true;
      co_return std::nullopt;
    }
    std::vector<std::string> out;
    for (const auto& r : answer.rdata)
      if (r.size() == (ip_.v6 ? 16u : 4u)) out.push_back(r);
    co_return out;
  }

  // 5.5: a PTR name is validated when one of its own addresses is the client's.
  awaitable<bool> points_back(std::string name) {
    bool temp = false;
    const auto list = co_await addresses(name, &temp);
    if (!list) co_return false;
    for (const auto& a : *list)
      if (address_matches(a, ip_.v6 ? 128 : 32)) co_return true;
    co_return false;
  }

  bool address_matches(const std::string& raw, int prefix) const {
    Address a;
    a.v6 = raw.size() == 16;
    std::copy(raw.begin(), raw.end(), a.bytes.begin());
    return in_network(ip_, a, prefix);
  }

  awaitable<Match> mechanism(Term t, std::string domain, int depth) {
    const auto c = context(domain);
    std::string target = domain;
    if (t.has_argument && t.name != "ip4" && t.name != "ip6") {
      auto name = target_name(t.argument, c);
      if (!name) co_return Match::permerror;
      target = *name;
      // 4.8: a name no DNS server could hold (an empty or too long label) matches nothing.
      if (!valid_domain(target)) {
        if (!count()) co_return Match::permerror;
        co_return Match::no;
      }
    }
    const int prefix = ip_.v6 ? t.cidr6 : t.cidr4;
    if (t.name == "all") co_return Match::yes;
    if (t.name == "ip4" || t.name == "ip6") {
      const auto net = parse_ip(t.argument);
      if (!net) co_return Match::permerror;
      co_return in_network(ip_, *net, t.name == "ip4" ? t.cidr4 : t.cidr6) ? Match::yes : Match::no;
    }
    if (!count()) co_return Match::permerror;
    if (t.name == "include") {
      // 5.2: pass matches; fail, softfail and neutral do not; none is a permerror here.
      const auto inner = co_await check_host(target, depth + 1, false);
      switch (inner.result) {
        case Result::pass: co_return Match::yes;
        case Result::fail:
        case Result::softfail:
        case Result::neutral: co_return Match::no;
        case Result::temperror: co_return Match::temperror;
        default: co_return Match::permerror;
      }
    }
    if (t.name == "a" || t.name == "exists") {
      const bool exists = t.name == "exists";
      const auto answer = co_await ask(target, exists || !ip_.v6 ? net::kDnsA : net::kDnsAaaa);
      if (answer.status == net::DnsAnswer::Status::temporary) co_return Match::temperror;
      if (!count_void(answer)) co_return Match::permerror;
      if (exists) co_return answer.rdata.empty() ? Match::no : Match::yes;
      for (const auto& r : answer.rdata)
        if (address_matches(r, prefix)) co_return Match::yes;
      co_return Match::no;
    }
    if (t.name == "mx") {
      const auto answer = co_await ask(target, net::kDnsMx);
      if (answer.status == net::DnsAnswer::Status::temporary) co_return Match::temperror;
      if (!count_void(answer)) co_return Match::permerror;
      const auto mx = net::parse_mx(answer);
      if (mx.size() > 10) co_return Match::permerror;  // 4.6.4
      for (const auto& m : mx) {
        if (m.exchange.empty()) continue;
        bool temp = false;
        const auto list = co_await addresses(m.exchange, &temp);
        if (!list) continue;  // 5.4: a failed address lookup of one exchange is skipped
        for (const auto& r : *list)
          if (address_matches(r, prefix)) co_return Match::yes;
      }
      co_return Match::no;
    }
    if (t.name == "ptr") {
      const auto answer = co_await ask(reverse_name(ip_), 12 /* PTR */);
      if (answer.status != net::DnsAnswer::Status::ok) {
        if (!count_void(answer)) co_return Match::permerror;
        co_return Match::no;  // 5.5: a DNS error fails to match
      }
      auto names = net::parse_names(answer);  // named: no temporary lives across co_await
      if (names.size() > 10) names.resize(10);  // 4.6.4
      for (const auto& name : names) {
        if (!within_domain(name, target)) continue;  // only names that could match cost lookups
        const bool validated = co_await points_back(name);
        if (validated) co_return Match::yes;
      }
      co_return Match::no;
    }
    co_return Match::permerror;
  }

  static Result qualified(char q) {
    switch (q) {
      case '-': return Result::fail;
      case '~': return Result::softfail;
      case '?': return Result::neutral;
      default: return Result::pass;
    }
  }

  // 6.2: the explanation for a fail, or "" when there is none to be had.
  awaitable<std::string> explanation(std::string spec, std::string domain) {
    auto c = context(domain);
    const auto name = target_name(spec, c);
    if (!name) co_return std::string();
    const auto answer = co_await ask(*name, net::kDnsTxt);
    const auto texts = net::parse_txt(answer);
    if (texts.size() != 1) co_return std::string();
    if (!validated_ && (texts.front().find("%{p") != std::string::npos || texts.front().find("%{P") != std::string::npos))
      co_await find_validated_name(domain);
    c.validated = validated_ ? *validated_ : "unknown";
    const auto text = expand(texts.front(), c, true);
    if (!text) co_return std::string();
    for (unsigned char ch : *text)
      if (ch < 0x20 || ch > 0x7e) co_return std::string();
    co_return *text;
  }

  awaitable<Outcome> check_host(std::string domain, int depth, bool top) {
    Outcome out;
    out.domain = domain;
    if (depth > kMaxDepth) {
      out.result = Result::permerror;
      out.reason = "includes nest too deep";
      co_return out;
    }
    if (!valid_domain(domain)) {  // 4.3
      out.result = Result::none;
      out.reason = "'" + domain + "' is not a domain name";
      co_return out;
    }
    const auto answer = co_await ask(domain, net::kDnsTxt);
    if (answer.status == net::DnsAnswer::Status::temporary) {
      out.result = Result::temperror;
      out.reason = "looking up SPF of " + domain + ": " + answer.error;
      co_return out;
    }
    std::vector<std::string> records;
    for (auto& text : net::parse_txt(answer)) {
      // 4.5: "v=spf1" alone or followed by a space.
      if (text.size() >= 6 && ascii_lower(text.substr(0, 6)) == "v=spf1" && (text.size() == 6 || text[6] == ' '))
        records.push_back(std::move(text));
    }
    if (records.empty()) {
      out.result = Result::none;
      out.reason = "no SPF record for " + domain;
      co_return out;
    }
    if (records.size() > 1) {
      out.result = Result::permerror;
      out.reason = domain + " has more than one SPF record";
      co_return out;
    }
    const auto c = context(domain);
    const auto terms = parse_record(records.front(), c);
    if (!terms) {
      out.result = Result::permerror;
      out.reason = "the SPF record of " + domain + " has a syntax error";
      co_return out;
    }
    std::optional<Term> redirect, exp;
    for (const auto& t : *terms) {  // modifiers apply wherever they stand (6)
      if (t.modifier && t.name == "redirect") redirect = t;
      if (t.modifier && t.name == "exp") exp = t;
    }
    if (!validated_ && records.front().find("%{p") != std::string::npos) co_await find_validated_name(domain);
    if (!validated_ && records.front().find("%{P") != std::string::npos) co_await find_validated_name(domain);
    for (const auto& t : *terms) {
      if (t.modifier) continue;
      const auto match = co_await mechanism(t, domain, depth);
      if (match == Match::no) continue;
      if (match == Match::temperror || match == Match::permerror) {
        out.result = match == Match::temperror ? Result::temperror : Result::permerror;
        out.reason = "evaluating " + t.name + " in the SPF record of " + domain;
        co_return out;
      }
      out.result = qualified(t.qualifier);
      out.reason = "matched " + std::string(1, t.qualifier) + t.name + (t.has_argument ? ":" + t.argument : "") + " of " + domain;
      if (out.result == Result::fail && exp && top) out.explanation = co_await explanation(exp->argument, domain);
      co_return out;
    }
    if (redirect) {
      // 6.1: the target's result, except that none becomes permerror.
      if (!count()) {
        out.result = Result::permerror;
        out.reason = "more than 10 DNS lookups";
        co_return out;
      }
      const auto target = target_name(redirect->argument, c);
      if (!target) {
        out.result = Result::permerror;
        out.reason = "redirect= does not name a domain";
        co_return out;
      }
      auto inner = co_await check_host(*target, depth + 1, top);
      if (inner.result == Result::none) {
        inner.result = Result::permerror;
        inner.reason = "redirect= to " + *target + ", which has no SPF record";
      }
      co_return inner;
    }
    out.result = Result::neutral;  // 4.7: nothing matched
    out.reason = "no mechanism of " + domain + " matched";
    co_return out;
  }

  net::DnsResolver& dns_;
  Query query_;
  Address ip_;
  std::string sender_;
  int64_t now_ = 0;
  int lookups_ = 0, voids_ = 0;
  std::optional<std::string> validated_;
};

// done is called once: by the evaluation, or by the 4.6.4 time limit, whichever comes first.
struct Once {
  std::mutex mutex;
  std::function<void(Outcome)> done;
  void operator()(Outcome out) {
    std::function<void(Outcome)> call;
    {
      std::lock_guard lock(mutex);
      call = std::move(done);
      done = nullptr;
    }
    if (call) call(std::move(out));
  }
};

awaitable<void> evaluate(net::DnsResolver& dns, Query query, std::shared_ptr<Once> done) {
  auto evaluator = std::make_unique<Evaluator>(dns, std::move(query));
  Outcome out;
  try {
    out = co_await evaluator->run();
  } catch (const std::exception& e) {
    out.result = Result::temperror;
    out.reason = e.what();
  }
  (*done)(std::move(out));
}

}  // namespace

std::string record_syntax_error(std::string_view record) {
  if (record.size() < 6 || ascii_lower(record.substr(0, 6)) != "v=spf1" || (record.size() > 6 && record[6] != ' '))
    return "it does not start with \"v=spf1\"";
  Query query;
  Context c;
  c.query = &query;
  c.sender = "postmaster@example.org";
  c.domain = "example.org";
  return parse_record(record, c) ? std::string() : "a term or macro is malformed, or redirect= or exp= appears twice";
}

void check_host(net::DnsResolver& dns, const Query& query, std::function<void(Outcome)> done) {
  auto once = std::make_shared<Once>();
  once->done = std::move(done);
  // RFC 7208 4.6.4: an evaluation may be cut off after 20 seconds, as a temperror.
  auto timer = std::make_shared<asio::steady_timer>(dns.io(), std::chrono::seconds(20));
  timer->async_wait([once, timer](const boost::system::error_code& ec) {
    if (ec) return;
    Outcome out;
    out.result = Result::temperror;
    out.reason = "SPF evaluation took longer than 20 seconds";
    (*once)(std::move(out));
  });
  auto finish = std::make_shared<Once>();
  finish->done = [once, timer](Outcome out) {
    timer->cancel();
    (*once)(std::move(out));
  };
  asio::co_spawn(dns.io(), evaluate(dns, query, finish), asio::detached);
}

}  // namespace coop::mail::spf
