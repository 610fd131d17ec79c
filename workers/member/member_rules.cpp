// Validation of the registry's names and enumerations.
#include "workers/member/member_rules.h"

#include <algorithm>
#include <array>

#include "common/config.h"
#include "common/error.h"
#include "common/text.h"

namespace coop::member {

namespace {
bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

constexpr std::array<std::string_view, 12> kReserved = {
    "abuse",    "hostmaster", "mailer-daemon", "noreply", "postmaster", "root",
    "security", "webmaster",  "admin",         "coop",    "system",     "server"};
}  // namespace

void check_handle(std::string_view handle) {
  auto fail = [&](const std::string& why) {
    throw Error(errc::kInvalidHandle, "invalid handle '" + std::string(handle) + "': " + why, 400);
  };
  if (handle.empty()) fail("it is empty");
  if (handle.size() > 64) fail("longer than 64 characters");
  for (char c : handle) {
    if (c >= 'A' && c <= 'Z') fail("handles are lowercase");
    if (!lower_alnum(c) && c != '.' && c != '_' && c != '-') fail("only a-z, 0-9, '.', '_' and '-' are allowed");
  }
  if (!lower_alnum(handle.front())) fail("it must start with a letter or digit");
  if (handle.back() == '.' || handle.back() == '-') fail("it must not end with '.' or '-'");
  if (handle.find("..") != std::string_view::npos) fail("'..' is not allowed");
}

bool is_reserved_handle(std::string_view handle) {
  return std::find(kReserved.begin(), kReserved.end(), handle) != kReserved.end();
}

std::string normalize_email(std::string_view address) {
  std::string out = ascii_lower(address);
  const auto at = out.rfind('@');
  auto fail = [&](const std::string& why) {
    throw Error(errc::kInvalidEmail, "invalid email address '" + std::string(address) + "': " + why, 400);
  };
  if (at == std::string::npos || at == 0 || at + 1 == out.size()) fail("expected local@domain");
  const std::string_view local(out.data(), at);
  if (local.size() > 64) fail("local part longer than 64 characters");
  // RFC 5322 3.2.3 dot-atom text, which is what every client can type and quote-free.
  for (char c : local) {
    const bool atext = lower_alnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) != std::string_view::npos;
    if (!atext) fail("character not allowed in the local part");
  }
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos)
    fail("misplaced '.' in the local part");
  if (!is_valid_domain(std::string_view(out).substr(at + 1))) fail("invalid domain");
  return out;
}

void check_group_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 && lower_alnum(name.front()) &&
                  std::all_of(name.begin(), name.end(), [](char c) { return lower_alnum(c) || c == '_' || c == '-'; });
  if (!ok)
    throw Error(errc::kInvalidGroup,
                "invalid group name '" + std::string(name) + "': 1-64 of a-z, 0-9, '_', '-', starting with a letter or digit",
                400);
}

void check_role(std::string_view role) {
  if (role != "admin" && role != "member" && role != "guest")
    throw Error(errc::kInvalidRole, "invalid role '" + std::string(role) + "' (admin, member, guest)", 400);
}

void check_status(std::string_view status) {
  if (status != "active" && status != "suspended" && status != "removed")
    throw Error(errc::kInvalidStatus, "invalid status '" + std::string(status) + "' (active, suspended, removed)", 400);
}

}  // namespace coop::member
