// coop-mail's control API: domains, aliases, mailboxes, and message bytes for export/import.
#pragma once

namespace coop {
class WorkerRuntime;
}

namespace coop::mail {

class MailService;

void add_mail_routes(WorkerRuntime& runtime, MailService& service);

}  // namespace coop::mail
