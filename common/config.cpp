// Loads and validates coop.toml with toml++.
#include "common/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "common/config_schema.h"
#include "common/error.h"
#include "common/net/cidr.h"
#include "common/paths.h"

namespace coop {

struct Config::Tables {
  toml::table root;
  std::string source;  // the file's name, for errors
};

namespace {

// Every listener coop's workers will have, with its offset from --base-port. Production
// ports (25, 143, 993, 8448...) are a config edit away; defaults stay unprivileged.
struct ListenerDefault {
  const char* worker;
  const char* name;
  const char* scheme;
  int offset;
};
constexpr ListenerDefault kListenerDefaults[] = {
    {"member", "portal", "http", 12},
    {"room", "client", "http", 0},       {"federate", "federation", "https", 1},
    {"mail", "smtp", "smtp", 2},         {"mail", "submission", "smtp", 3},
    {"mail", "submissions", "smtps", 4}, {"mail", "imap", "imap", 5},
    {"mail", "imaps", "imaps", 6},       {"mail", "jmap", "http", 7},
    {"dav", "http", "http", 8},          {"tiles", "http", "http", 9},
    {"docs", "http", "http", 10},        {"site", "http", "http", 11},
};

[[noreturn]] void invalid(const std::string& what) { throw Error(errc::kConfigInvalid, what, 400); }

std::string where(const std::string& source, const toml::source_region& region) {
  std::ostringstream out;
  out << source << ':' << region.begin.line << ':' << region.begin.column;
  return out.str();
}

}  // namespace

std::string ListenerConfig::url() const {
  const bool v6 = address.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

Config::Config(std::unique_ptr<Tables> tables) : tables_(std::move(tables)) {}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::~Config() = default;

Config Config::load(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    throw Error(errc::kNotAShard,
                "no shard in " + file.parent_path().string() + " (no " + file.filename().string() +
                    "): give --home DIR or set COOP_HOME to the shard's directory",
                404);
  auto tables = std::make_unique<Tables>();
  try {
    tables->root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    invalid(where(file.string(), e.source()) + ": " + std::string(e.description()));
  }
  Config config(std::move(tables));
  config.validate(file.string());
  return config;
}

Config Config::parse(std::string_view text, const std::string& source_name) {
  auto tables = std::make_unique<Tables>();
  try {
    tables->root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    invalid(where(source_name, e.source()) + ": " + std::string(e.description()));
  }
  Config config(std::move(tables));
  config.validate(source_name);
  return config;
}

namespace {

toml::node_view<const toml::node> lookup(const toml::table& root, std::string_view key) {
  return root.at_path(key);
}

[[noreturn]] void wrong_type(const std::string& source, std::string_view key, const toml::node& node, const char* want) {
  invalid(where(source, node.source()) + ": " + std::string(key) + " must be " + want);
}

// A key the code reads must be in the schema, or a file that sets it would be refused.
void require_in_schema(std::string_view key) {
  if (!config_schema::find(key))
    throw Error(errc::kConfigInvalid, "internal: " + std::string(key) + " is read but missing from common/config_schema.cpp", 500);
}

const char* kind_name(config_schema::Kind kind) {
  using enum config_schema::Kind;
  switch (kind) {
    case kString: return "a string";
    case kInt: return "an integer";
    case kBool: return "true or false";
    case kCount: return "an integer of 0 or more";
    case kNumber: return "a number";
    case kStrings: return "an array of strings";
    case kStringTable: return "a table of strings";
    case kNetworks: return "an array of networks (\"192.0.2.0/24\", \"2001:db8::/32\")";
    case kListener: return "a table { address, port, scheme }";
  }
  return "";
}

void check_value(const std::string& source, const std::string& path, const config_schema::Key& key, const toml::node& node) {
  using enum config_schema::Kind;
  bool ok = false;
  switch (key.kind) {
    case kString: ok = node.is_string(); break;
    case kInt: ok = node.is_integer(); break;
    case kBool: ok = node.is_boolean(); break;
    case kCount: ok = node.is_integer() && node.as_integer()->get() >= 0; break;
    case kNumber: ok = node.is_number(); break;
    case kStrings:
      ok = node.is_array() && node.as_array()->is_homogeneous(toml::node_type::string);
      ok = ok || (node.is_array() && node.as_array()->empty());
      break;
    case kNetworks:
      ok = node.is_array() && (node.as_array()->empty() || node.as_array()->is_homogeneous(toml::node_type::string));
      if (ok)
        for (const auto& element : *node.as_array())
          if (!net::Cidr::parse(element.as_string()->get()))
            invalid(where(source, element.source()) + ": " + path + ": '" + element.as_string()->get() +
                    "' is not an address or a network");
      break;
    case kStringTable:
      ok = node.is_table();
      if (ok)
        for (const auto& [name, value] : *node.as_table())
          if (!value.is_string()) wrong_type(source, path + "." + std::string(name.str()), value, "a string");
      break;
    case kListener:
      ok = node.is_table();
      if (ok)
        for (const auto& [name, value] : *node.as_table())
          if (name.str() != "address" && name.str() != "port" && name.str() != "scheme")
            invalid(where(source, value.source()) + ": unknown key " + path + "." + std::string(name.str()) +
                    " (a listener has address, port and scheme)");
      break;
  }
  if (!ok) wrong_type(source, path, node, kind_name(key.kind));
  if (key.values && node.is_string()) {
    const std::string value = node.as_string()->get();
    const std::string allowed = key.values;
    bool found = false;
    for (std::size_t start = 0; start <= allowed.size();) {
      const auto bar = std::min(allowed.find('|', start), allowed.size());
      if (allowed.compare(start, bar - start, value) == 0 && bar - start == value.size()) found = true;
      start = bar + 1;
    }
    if (!found) {
      std::string list;
      for (char c : allowed) list += c == '|' ? std::string(", ") : std::string(1, c);
      invalid(where(source, node.source()) + ": " + path + " = '" + value + "' is not one of " + list);
    }
  }
}

// Every key in the file against the schema: unknown keys and values of the wrong kind are
// errors with their line and column, and a near miss names the key that was meant.
void check_table(const std::string& source, const toml::table& table, const std::string& prefix) {
  for (const auto& [name, node] : table) {
    const std::string path = prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
    if (const auto* key = config_schema::find(path)) {
      check_value(source, path, *key, node);
    } else if (node.is_table() && config_schema::is_table(path)) {
      check_table(source, *node.as_table(), path);
    } else {
      // The key's own place (toml++ keeps one for each key), not its value's.
      const auto& at = name.source().begin ? name.source() : node.source();
      std::string message = where(source, at) + ": unknown key " + path;
      if (const auto near = config_schema::suggestion(path); !near.empty()) message += " (did you mean " + near + "?)";
      invalid(message);
    }
  }
}

}  // namespace

void Config::validate(const std::string& source) {
  tables_->source = source;
  const auto& root = tables_->root;
  auto domain = root.at_path("shard.domain");
  if (!domain) invalid(source + ": shard.domain is missing");
  if (!domain.is_string()) invalid(where(source, domain.node()->source()) + ": shard.domain must be a string");
  domain_ = domain.value<std::string>().value();
  if (!is_valid_domain(domain_))
    invalid(where(source, domain.node()->source()) + ": shard.domain '" + domain_ + "' is not a valid domain name");

  if (auto workers = root["workers"]; workers) {
    if (!workers.is_table()) invalid(where(source, workers.node()->source()) + ": [workers] must be a table");
    for (const auto& [name, node] : *workers.as_table()) {
      if (!is_worker_name(name.str()))
        invalid(where(source, node.source()) + ": unknown worker '" + std::string(name.str()) + "'");
      if (!node.is_table()) invalid(where(source, node.source()) + ": workers." + std::string(name.str()) + " must be a table");
    }
  }
  check_table(source, root, "");
  // Parse every listener now, so a bad port fails `coop up`, not a worker minutes later.
  for (auto name : kWorkerNames) listeners(name);
}


std::string Config::get_string(std::string_view key, const std::string& fallback) const {
  require_in_schema(key);
  auto node = lookup(tables_->root, key);
  if (!node) return fallback;
  if (!node.is_string()) wrong_type(tables_->source, key, *node.node(), "a string");
  return node.value<std::string>().value();
}

int64_t Config::get_int(std::string_view key, int64_t fallback) const {
  require_in_schema(key);
  auto node = lookup(tables_->root, key);
  if (!node) return fallback;
  if (!node.is_integer()) wrong_type(tables_->source, key, *node.node(), "an integer");
  return node.value<int64_t>().value();
}

std::size_t Config::get_count(std::string_view key, std::size_t fallback, std::size_t min, std::size_t max) const {
  require_in_schema(key);
  auto node = lookup(tables_->root, key);
  if (!node) return fallback;
  if (!node.is_integer()) wrong_type(tables_->source, key, *node.node(), "an integer");
  const int64_t value = node.value<int64_t>().value();
  if (value < 0 || static_cast<uint64_t>(value) < min || static_cast<uint64_t>(value) > max)
    wrong_type(tables_->source, key, *node.node(), ("an integer from " + std::to_string(min) + " to " + std::to_string(max)).c_str());
  return static_cast<std::size_t>(value);
}

double Config::get_number(std::string_view key, double fallback, double min, double max) const {
  require_in_schema(key);
  auto node = lookup(tables_->root, key);
  if (!node) return fallback;
  if (!node.is_number()) wrong_type(tables_->source, key, *node.node(), "a number");
  const double value = node.is_integer() ? static_cast<double>(node.value<int64_t>().value()) : node.value<double>().value();
  if (!(value >= min && value <= max)) {
    std::ostringstream range;
    range << "a number from " << min << " to " << max;
    wrong_type(tables_->source, key, *node.node(), range.str().c_str());
  }
  return value;
}

std::chrono::milliseconds Config::get_millis(std::string_view key, std::chrono::milliseconds fallback,
                                             std::chrono::milliseconds min, std::chrono::milliseconds max) const {
  return std::chrono::milliseconds(static_cast<int64_t>(get_count(key, static_cast<std::size_t>(fallback.count()),
                                                                   static_cast<std::size_t>(min.count()),
                                                                   static_cast<std::size_t>(max.count()))));
}

std::vector<std::string> Config::get_strings(std::string_view key, const std::vector<std::string>& fallback) const {
  require_in_schema(key);
  auto node = lookup(tables_->root, key);
  if (!node) return fallback;
  const auto* array = node.as_array();
  if (!array) wrong_type(tables_->source, key, *node.node(), "an array of strings");
  std::vector<std::string> out;
  for (const auto& element : *array) {
    const auto* text = element.as_string();
    if (!text) wrong_type(tables_->source, key, element, "an array of strings");
    out.push_back(text->get());
  }
  return out;
}

std::map<std::string, std::string> Config::get_string_table(std::string_view key) const {
  require_in_schema(key);
  auto node = lookup(tables_->root, key);
  std::map<std::string, std::string> out;
  if (!node) return out;
  const auto* table = node.as_table();
  if (!table) wrong_type(tables_->source, key, *node.node(), "a table of strings");
  for (const auto& [name, value] : *table) {
    const auto* text = value.as_string();
    if (!text) wrong_type(tables_->source, std::string(key) + "." + std::string(name.str()), value, "a string");
    out.emplace(std::string(name.str()), text->get());
  }
  return out;
}

bool Config::get_bool(std::string_view key, bool fallback) const {
  require_in_schema(key);
  auto node = lookup(tables_->root, key);
  if (!node) return fallback;
  if (!node.is_boolean()) wrong_type(tables_->source, key, *node.node(), "true or false");
  return node.value<bool>().value();
}

bool Config::worker_enabled(std::string_view worker) const {
  return get_bool("workers." + std::string(worker) + ".enabled", true);
}

std::vector<ListenerConfig> Config::listeners(std::string_view worker) const {
  std::vector<ListenerConfig> result;
  const std::string prefix = "workers." + std::string(worker) + ".listen";
  auto table_node = lookup(tables_->root, prefix);
  if (!table_node) return result;
  if (!table_node.is_table()) wrong_type(tables_->source, prefix, *table_node.node(), "a table");
  for (const auto& [name, node] : *table_node.as_table()) {
    const std::string key = prefix + "." + std::string(name.str());
    const auto* entry = node.as_table();
    if (!entry) wrong_type(tables_->source, key, node, "a table { address, port, scheme }");
    ListenerConfig listener;
    listener.name = std::string(name.str());
    listener.address = entry->get_as<std::string>("address") ? entry->get_as<std::string>("address")->get() : "";
    listener.scheme = entry->get_as<std::string>("scheme") ? entry->get_as<std::string>("scheme")->get() : "";
    const auto* port = entry->get_as<int64_t>("port");
    if (listener.address.empty()) wrong_type(tables_->source, key + ".address", node, "an IP address");
    if (listener.scheme.empty()) wrong_type(tables_->source, key + ".scheme", node, "a URL scheme");
    if (!port || port->get() < 1 || port->get() > 65535) wrong_type(tables_->source, key + ".port", node, "a port from 1 to 65535");
    listener.port = static_cast<uint16_t>(port->get());
    result.push_back(std::move(listener));
  }
  // TOML tables have no order; ports give a stable, natural one.
  std::sort(result.begin(), result.end(), [](const auto& a, const auto& b) { return a.port < b.port; });
  return result;
}

bool is_valid_domain(std::string_view domain) {
  // RFC 1123 2.1 labels: letters, digits, hyphens, not starting or ending with a hyphen.
  if (domain.empty() || domain.size() > 253) return false;
  std::size_t label = 0;
  char prev = '.';
  for (char c : domain) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok || (label == 0 && c == '-') || ++label > 63) return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

namespace {

// The production profile's standard ports (RFC 5321 25, RFC 6409 587, RFC 8314 465 and 993,
// RFC 9051 143, Matrix federation 8448); HTTP listeners stay on loopback, behind the proxy.
int public_port(const ListenerDefault& d) {
  const std::string name = d.name;
  if (name == "smtp") return 25;
  if (name == "submission") return 587;
  if (name == "submissions") return 465;
  if (name == "imap") return 143;
  if (name == "imaps") return 993;
  if (name == "federation") return 8448;
  return 0;
}

// Every documented key under `table` that `written` does not hold, as a commented line at its
// default: `# key = value  # help`, the key relative to the table (dotted below it).
std::string commented_defaults(const std::string& table, const std::set<std::string>& written = {}) {
  std::string out;
  const std::string prefix = table + ".";
  for (const auto& doc : config_schema::docs()) {
    const std::string key = doc.key;
    if (key.rfind(prefix, 0) != 0 || written.count(key)) continue;
    std::string line = "# " + key.substr(prefix.size()) + " = " + doc.example;
    if (*doc.help) line += std::string(line.size() < 48 ? 48 - line.size() : 1, ' ') + "  # " + doc.help;
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string render_initial_config(const std::string& domain, uint16_t base_port, const std::string& public_host) {
  std::ostringstream out;
  out << "# coop shard configuration, written by `coop init`. Edit, then `coop down && coop up`.\n"
         "\n"
         "[shard]\n"
         "domain = \"" << domain << "\"\n"
         "\n"
         "[log]\n"
         "level = \"info\"            # trace, debug, info, warn, error\n"
         "\n"
         "[control]\n"
         "max_body_bytes = 67108864  # largest control request: a whole imported message or CSV\n"
         "idle_timeout_ms = 30000    # a control connection idle this long is closed\n"
         "max_connections = 256\n"
         "\n"
         "[supervisor]\n"
         "stop_timeout_ms = 10000    # SIGTERM, then SIGKILL after this long\n"
         "start_timeout_ms = 15000   # a worker not healthy after this long counts as failed\n"
         "backoff_initial_ms = 500   # restart delay after a crash, doubling\n"
         "backoff_max_ms = 30000\n"
         "stable_after_ms = 10000    # a worker up this long gets its backoff reset\n";
  const bool production = !public_host.empty();
  // The other settings, commented at their defaults: uncomment a table and a key to change it.
  for (const char* table : {"tls", "runtime", "shutdown", "auth", "dns", "doctor"})
    out << "\n# [" << table << "]\n" << commented_defaults(table);
  if (production)
    out << "\n# Production profile (coop init --public " << public_host << "): HTTP behind a reverse proxy on\n"
        << "# this machine (`coop proxy nginx`), which the connection caps must not count as one member.\n"
        << "[http]\ntrusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\n";
  else
    out << "\n# [http]\n" << commented_defaults("http");
  // Where members reach each HTTP worker through the proxy.
  const std::map<std::string, std::string> public_urls = {{"member", "https://" + domain},
                                                          {"room", "https://matrix." + domain},
                                                          {"dav", "https://dav." + domain},
                                                          {"tiles", "https://map." + domain},
                                                          {"docs", "https://docs." + domain},
                                                          {"site", "https://" + domain}};
  const char* current = nullptr;
  for (const auto& d : kListenerDefaults) {
    if (!current || std::string_view(current) != d.worker) {
      current = d.worker;
      const std::string table = "workers." + std::string(d.worker);
      out << "\n[" << table << "]\nenabled = true\n";
      std::set<std::string> written;
      if (production && public_urls.count(d.worker)) {
        out << "public_url = \"" << public_urls.at(d.worker) << "\"\n";
        written.insert(table + ".public_url");
      }
      if (production && table == "workers.mail") {
        out << "public.hostname = \"" << public_host << "\"\n";
        written.insert("workers.mail.public.hostname");
      }
      out << commented_defaults(table, written);
      out << "\n[" << table << ".listen]\n";
    }
    const int standard = production ? public_port(d) : 0;
    out << d.name << " = { address = \"" << (standard ? "0.0.0.0" : "127.0.0.1") << "\", port = "
        << (standard ? standard : base_port + d.offset) << ", scheme = \"" << d.scheme << "\" }\n";
  }
  return out.str();
}

}  // namespace coop
