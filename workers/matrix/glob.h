// Matrix's globs: `*` for any run of characters (also none) and `?` for one, ASCII case
// ignored: push rules' event_match patterns (Client-Server API "Conditions") and server ACL
// entries (m.room.server_acl).
#pragma once

#include <string>

namespace coop::matrix {

// Whether pattern matches all of value; with whole_words (content.body in push rules), any
// run of whole words of value. Patterns past 256 bytes and values past 4 KiB are cut.
bool glob_matches(const std::string& pattern, const std::string& value, bool whole_words = false);

// Letters, digits, '_' and every byte of a multi-byte UTF-8 character: what words are made of.
inline bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

}  // namespace coop::matrix
