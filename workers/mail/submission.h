// Message submission (RFC 6409): who a member may send as, and what the server completes in
// a message before it goes out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coop::mail {

class MailDirectory;

// The addresses a member may use as envelope sender and in From:/Sender:, lowercased: their
// registered addresses, handle@ each hosted domain (which reach them), and every alias that
// points at them alone or among others. hosted: the hosted domains' names.
std::vector<std::string> sendable_addresses(MailDirectory& directory, const std::string& handle,
                                            const std::vector<std::string>& emails);

struct PreparedSubmission {
  int code = 250;     // 250, or the refusal's code
  std::string reply;  // the refusal, "553 5.7.1 ..."
  std::string message;    // the message to send, completed, without Bcc: fields
  std::string sent_copy;  // the same with its Bcc: fields, for the member's Sent mailbox
  std::string from_domain;  // the From: address's domain, whose DKIM keys sign it
};

// RFC 6409 8.1-8.3 and RFC 5322 3.6: every From: (and Sender:) mailbox must be in allowed
// (553 otherwise); a message without exactly one From: is refused (550); Date and
// Message-ID (in the From: domain) are added when missing; Bcc: fields are taken out of what
// is sent (RFC 5322 3.6.3: blind copies must not show who else got one).
PreparedSubmission prepare_submission(std::string_view message, const std::vector<std::string>& allowed, int64_t now);

}  // namespace coop::mail
