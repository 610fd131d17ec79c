// Every key coop.toml may hold, and what kind of value it takes: what a file is checked
// against when it is loaded, so that a misspelled key or a value of the wrong kind stops
// `coop up` with its place in the file instead of being silently ignored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace coop::config_schema {

enum class Kind {
  kString,       // any string, or one of `values`
  kInt,          // any integer
  kBool,
  kCount,        // an integer >= 0 (ranges are checked where the key is read)
  kNumber,       // an integer or a floating-point number (a score, a ratio)
  kStrings,      // an array of strings
  kNetworks,     // an array of networks, "192.0.2.0/24" or "2001:db8::/32" (a bare address: itself)
  kStringTable,  // a table whose keys are free and whose values are strings
  kListener,     // { address = "...", port = N, scheme = "..." }
};

struct Key {
  const char* pattern;  // dotted; "*" stands for one segment (a worker, a listener's name)
  Kind kind;
  const char* values = nullptr;  // for strings: "a|b|c", the only values allowed
};

// What `coop init` writes, commented, for a key it leaves at its default: the default as TOML
// (an example where the default is computed or none, which the help then names) and what the
// key is for. Every key but the per-worker `enabled` and `listen` ones has one.
struct Doc {
  const char* key;
  const char* example;
  const char* help;
};
std::vector<Doc> docs();
// Every key pattern of the schema ("workers.*.enabled" included).
std::vector<std::string> patterns();

// The key a dotted path stands for; nullptr when the schema has none.
const Key* find(std::string_view path);
// True when some key lies under this table path ("workers.mail" holds keys).
bool is_table(std::string_view path);
// The known key under the same table closest in spelling to the path's last segment, for
// "did you mean"; empty when none is close.
std::string suggestion(std::string_view path);

}  // namespace coop::config_schema
