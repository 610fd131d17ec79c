// Folding text for comparison: slugs and name searches, not display.
#pragma once

#include <string>
#include <string_view>

namespace coop {

// Lowercases A-Z and folds the Latin letters U+00C0..U+017F to their ASCII base ("Café Ætna" is
// "cafe aetna"); every other byte passes through.
std::string fold_latin_lower(std::string_view text);

}  // namespace coop
