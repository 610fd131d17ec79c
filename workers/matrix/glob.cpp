// See glob.h.
#include "workers/matrix/glob.h"

#include <algorithm>
#include <vector>

#include "common/text.h"

namespace coop::matrix {

namespace {

// Patterns and values beyond these lengths are cut: a member's rule must not make the worker
// spend long on every message of a busy room.
constexpr std::size_t kMaxPatternBytes = 256;
constexpr std::size_t kMaxMatchedBytes = 4096;

// The pattern's states reachable without consuming input from those in `states`.
void close_over_stars(const std::string& pattern, std::vector<char>& states) {
  for (std::size_t i = 0; i < pattern.size(); ++i)
    if (states[i] && pattern[i] == '*') states[i + 1] = 1;
}

}  // namespace

bool glob_matches(const std::string& pattern_in, const std::string& value_in, bool whole_words) {
  const std::string pattern = ascii_lower(pattern_in.substr(0, kMaxPatternBytes));
  const std::string value = ascii_lower(value_in.substr(0, kMaxMatchedBytes));
  // A set-of-states simulation of the glob: linear in the value for each pattern position, so
  // no pattern can make it backtrack. For whole words, a match may start at any word start
  // and must end at a word end.
  const std::size_t m = pattern.size();
  std::vector<char> states(m + 1, 0), next(m + 1, 0);
  auto start_here = [&](std::size_t pos) { return !whole_words ? pos == 0 : pos == 0 || !word_byte(value[pos - 1]); };
  auto end_here = [&](std::size_t pos) { return !whole_words ? pos == value.size() : pos == value.size() || !word_byte(value[pos]); };
  for (std::size_t pos = 0;; ++pos) {
    if (start_here(pos)) states[0] = 1;
    close_over_stars(pattern, states);
    if (states[m] && end_here(pos)) return true;
    if (pos == value.size()) return false;
    std::fill(next.begin(), next.end(), 0);
    bool any = false;
    for (std::size_t i = 0; i < m; ++i) {
      if (!states[i]) continue;
      if (pattern[i] == '*') next[i] = 1;
      else if (pattern[i] == '?' || pattern[i] == value[pos]) next[i + 1] = 1;
      any = true;
    }
    states.swap(next);
    if (!any && !whole_words) return false;
  }
}

}  // namespace coop::matrix
