// Mailbox names as members choose them, checked once, and their safe forms as file names.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail {

inline constexpr char kMailboxSeparator = '/';
inline constexpr std::size_t kMaxMailboxNameBytes = 255;

// Why name cannot be a mailbox, or an empty string when it can. RFC 3501 5.1 and RFC 9051
// 5.1: UTF-8 with no control characters; "/" separates levels, so no leading, trailing or
// doubled "/"; and, so that no name can become a path that climbs, no "." or ".." level.
std::string mailbox_name_problem(std::string_view name);

// The levels of a valid name: "Projects/2026" -> {"Projects", "2026"}.
std::vector<std::string> mailbox_levels(std::string_view name);

// Maildir++ (Courier, Dovecot): INBOX is the root, another mailbox the folder "." plus its
// levels joined by "." ("Projects/2026" -> ".Projects.2026"). A level's own ".", "%", "/"
// and control bytes are written %XX ("v1.2" -> "v1%2E2"), so the mapping reverses exactly and
// works for any name, valid or not; other UTF-8 stays as it is.
std::string maildir_folder(std::string_view name);
// The mailbox a Maildir++ folder name stands for, or nullopt when it is not one.
std::optional<std::string> mailbox_from_maildir_folder(std::string_view folder);

// The same escaping for one level used as a file name (mbox exports): "." and ".." cannot
// come out, nor "/" or a control byte. level must not be empty.
std::string file_name_for_level(std::string_view level);
// Its reverse; nullopt for a bad escape or a "." or ".." result. A decoded "/" is kept: the
// caller checks the whole name with mailbox_name_problem.
std::optional<std::string> level_from_file_name(std::string_view file_name);

}  // namespace coop::mail
