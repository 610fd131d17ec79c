// What jmap.cpp (the core: requests, references, errors) and jmap_mail.cpp (the methods of
// RFC 8621) share.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "workers/mail/jmap/jmap.h"

namespace coop::mail {
struct MailboxInfo;
}

namespace coop::mail::jmap {

using nlohmann::json;

inline constexpr const char kCore[] = "urn:ietf:params:jmap:core";
inline constexpr const char kMail[] = "urn:ietf:params:jmap:mail";
inline constexpr const char kSubmission[] = "urn:ietf:params:jmap:submission";
inline constexpr const char kVacation[] = "urn:ietf:params:jmap:vacationresponse";

// A method-level error (RFC 8620 3.6.2): the call answers ["error", {"type", ...}, id].
struct MethodError : std::runtime_error {
  MethodError(std::string type, const std::string& description, json extra = json::object())
      : std::runtime_error(description), type(std::move(type)), extra(std::move(extra)) {}
  std::string type;
  json extra;
};

// RFC 8620 5.3: a /set response's created, updated and destroyed are null when nothing of
// that kind happened.
inline void null_when_empty(json& response) {
  for (const char* key : {"created", "updated", "destroyed"})
    if (response.contains(key) && response[key].empty()) response[key] = nullptr;
}

// RFC 8620 5.1: a /get response, the list moved in (an initializer list would copy every object).
inline json get_response(const std::string& account_id, const std::string& state, json list, json not_found) {
  json out = json::object();
  out["accountId"] = account_id;
  out["state"] = state;
  out["list"] = std::move(list);
  out["notFound"] = std::move(not_found);
  return out;
}

// One method call of a request, on the blocking pool.
struct Call;

// RFC 8620 5.3: ifInState, when given, must be the state now (else stateMismatch).
void check_if_in_state(const Call& call, const std::string& state);

// A /set call's create, update and destroy (RFC 8620 5.3; each may be null), as locals
// (items() of a temporary would dangle), checked for their types.
struct SetParts {
  json create, update, destroy;
};
SetParts set_parts(const Call& call);

struct Call {
  std::string handle;      // the logged-in member
  std::string account_id;  // theirs: the only account they may name
  const json& args;
  std::string name;                 // the member's name in the registry
  std::vector<std::string> emails;  // and their addresses
  // RFC 8620 5.3: creation id -> id of what this request's /set calls created so far, for
  // "#creationId" references in later arguments (and in the same call's later creations).
  json& created_ids;
  // Responses a method adds after its own, with the same method call id: RFC 8621 7.5's
  // implicit Email/set of EmailSubmission/set. Each is [name, arguments].
  std::vector<json>& implicit;
};

// An Id argument that may be "#creationId" (RFC 8620 5.3): what it refers to, or the text as
// it is (an unknown reference then finds nothing).
std::string resolve_id(const Call& call, const std::string& id);

// A blob id: "G" and the sha256 of a stored message or upload, then "_1-2" for one body part
// (its number, dots written as dashes). {sha, part number with dots} or nullopt.
std::optional<std::pair<std::string, std::string>> parse_blob_id(std::string_view id);
// The bytes of a blob the member may see, a part decoded; nullopt when there is none.
std::optional<std::string> read_blob(JmapContext& context, const std::string& handle, std::string_view id);

struct Method {
  const char* capability;  // the "using" entry the method needs
  json (*run)(JmapContext& context, const Call& call);
};

// RFC 8621's methods by name ("Mailbox/get" ...): Mailbox, Thread, Email, SearchSnippet
// (jmap_mail.cpp), and Identity, EmailSubmission, VacationResponse (jmap_submission.cpp).
const std::map<std::string, Method>& mail_methods();
const std::map<std::string, Method>& submission_methods();

// RFC 3339 "2026-12-01T10:00:00Z" or, unless utc_only (UTCDate, RFC 8620 1.4), with an
// offset "+01:00" (Date), as Unix seconds; nullopt when it is not one.
std::optional<int64_t> parse_date(const json& value, bool utc_only = false);

// The member's account id: stable, and made only of the characters RFC 8620 1.2 allows.
std::string account_id(const std::string& handle);

// The mail account's capabilities in the session (RFC 8621 1.3.1).
json mail_account_capabilities(const JmapLimits& limits);
json submission_account_capabilities();

// The blobs each member uploaded (RFC 8620 6.1), until the worker restarts; with the
// messages in their mailboxes, the only blobs they may read, import or parse.
void remember_upload(const std::string& handle, const std::string& sha);
bool blob_visible(JmapContext& context, const std::string& handle, const std::string& sha);

// RFC 8620 7.1: every type's state that push reports, by type: Mailbox, Email and Thread (the
// mail's), EmailSubmission, VacationResponse, and EmailDelivery (deliveries from outside,
// RFC 8621 1.5).
json push_states(JmapContext& context, const std::string& handle);

// A state string for the member's mail: changes whenever any mailbox or message does.
std::string mail_state(JmapContext& context, const std::string& handle);
// The same from the mailboxes as read.
std::string mail_state_of(const std::vector<MailboxInfo>& boxes);

}  // namespace coop::mail::jmap
