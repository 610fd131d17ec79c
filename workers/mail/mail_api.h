// coop-mail's control API: domains, aliases, mailboxes, message bytes for export/import, the
// outbound queue, DKIM keys and members' mail settings.
#pragma once

namespace coop {
class WorkerRuntime;
}

namespace coop::mail::spam {
class SpamFilter;
}

namespace coop::mail {

class MailService;
class Outbound;

void add_mail_routes(WorkerRuntime& runtime, MailService& service, Outbound& outbound, spam::SpamFilter* spam);

}  // namespace coop::mail
