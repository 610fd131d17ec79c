// "Did you mean": the known word closest in spelling to a mistyped one, for coop.toml keys
// and CLI commands.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace coop {

// Levenshtein distance (insertions, deletions, substitutions).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to word, when it is within a third of the word's length (at least
// 2 edits) or starts with it; empty when none is.
std::string closest_spelling(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace coop
