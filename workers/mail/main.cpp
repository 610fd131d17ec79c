// coop-mail: SMTP in, durable mail store, export and import.
#include "common/worker_runtime.h"
#include "workers/mail/mail_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "mail", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::mail::MailWorker>(runtime);
  });
}
