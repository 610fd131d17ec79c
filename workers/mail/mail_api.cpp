// Thin control handlers over MailService.
#include "workers/mail/mail_api.h"

#include <nlohmann/json.hpp>

#include <ctime>

#include "common/error.h"
#include "common/worker_runtime.h"
#include "workers/mail/mail_service.h"

namespace coop::mail {

namespace {
using control::Request;
using control::Response;
using nlohmann::json;

json domain_json(const Domain& d) {
  return {{"name", d.name}, {"catch_all", d.catch_all.empty() ? json(nullptr) : json(d.catch_all)}, {"created_at", d.created_at}};
}
}  // namespace

void add_mail_routes(WorkerRuntime& runtime, MailService& service) {
  auto& r = runtime.router();
  auto run = runtime.blocking_runner();

  r.add_blocking("GET", "/v1/domains", run, [&service](const Request&) {
    auto list = json::array();
    for (const auto& d : service.directory().domains()) list.push_back(domain_json(d));
    return Response::json(list);
  }, "hosted mail domains");
  r.add_blocking("POST", "/v1/domains", run, [&service](const Request& q) {
    const auto body = q.json();
    bool created = false;
    const auto domain = service.directory().add_domain(body.value("name", ""), body.value("catch_all", ""), &created);
    return Response::json(domain_json(domain), created ? 201 : 200);
  }, "host a domain ({name, catch_all})");
  r.add_blocking("DELETE", "/v1/domains/{name}", run, [&service](const Request& q) {
    service.directory().remove_domain(q.param("name"));
    return Response::json({{"removed", q.param("name")}});
  }, "stop hosting a domain");

  r.add_blocking("GET", "/v1/aliases", run, [&service](const Request&) {
    auto list = json::array();
    for (const auto& a : service.directory().aliases())
      list.push_back({{"address", a.address}, {"targets", a.targets}, {"created_at", a.created_at}});
    return Response::json(list);
  }, "aliases");
  r.add_blocking("POST", "/v1/aliases", run, [&service](const Request& q) {
    const auto body = q.json();
    const auto a = service.directory().add_alias(body.value("address", ""), body.value("targets", std::vector<std::string>{}));
    return Response::json({{"address", a.address}, {"targets", a.targets}}, 201);
  }, "add an alias ({address, targets})");
  r.add_blocking("DELETE", "/v1/aliases/{address}", run, [&service](const Request& q) {
    service.directory().remove_alias(q.param("address"));
    return Response::json({{"removed", q.param("address")}});
  }, "remove an alias");

  r.add_blocking("GET", "/v1/mailboxes/{handle}", run, [&service](const Request& q) {
    auto list = json::array();
    if (!service.mailboxes().has_index(q.param("handle"))) return Response::json(list);
    for (const auto& m : service.mailboxes().mailboxes(q.param("handle")))
      list.push_back({{"name", m.name}, {"special_use", m.special_use}, {"uidvalidity", m.uidvalidity},
                      {"uidnext", m.uidnext}, {"highest_modseq", m.highest_modseq}, {"messages", m.messages},
                      {"unseen", m.unseen}, {"bytes", m.bytes}});
    return Response::json(list);
  }, "a member's mailboxes with counts");

  r.add_blocking("GET", "/v1/messages/{handle}/{mailbox}", run, [&service](const Request& q) {
    const auto after = std::strtoll(q.query_value("after_uid", "0").c_str(), nullptr, 10);
    const int limit = std::clamp(std::atoi(q.query_value("limit", "1000").c_str()), 1, 10000);
    auto list = json::array();
    if (!service.mailboxes().has_index(q.param("handle"))) return Response::json(list);
    for (const auto& m : service.mailboxes().messages(q.param("handle"), q.param("mailbox"), after, limit))
      list.push_back({{"uid", m.uid}, {"modseq", m.modseq}, {"blob", m.meta.blob}, {"size", m.meta.size},
                      {"internal_date", m.meta.internal_date}, {"flags", m.meta.flags}, {"keywords", m.meta.keywords}});
    return Response::json(list);
  }, "messages of a mailbox in UID order (?after_uid=, ?limit=)");

  r.add_blocking("GET", "/v1/blobs/{sha}", run, [&service](const Request& q) {
    return Response::bytes(200, service.blobs().read(q.param("sha")), "message/rfc822");
  }, "a stored message's exact bytes");

  r.add_blocking("POST", "/v1/messages/{handle}/{mailbox}", run, [&service](const Request& q) {
    const auto flags = static_cast<unsigned>(std::strtoul(q.query_value("flags", "0").c_str(), nullptr, 10));
    const auto date = std::strtoll(q.query_value("internal_date", "0").c_str(), nullptr, 10);
    bool existed = false;
    const auto stored = service.append(q.param("handle"), q.param("mailbox"), q.body, flags,
                                       date > 0 ? date : static_cast<int64_t>(::time(nullptr)), &existed,
                                       q.query_value("keywords"));
    return Response::json({{"uid", stored.uid}, {"existed", existed}}, existed ? 200 : 201);
  }, "store a message (body: its bytes; ?flags=, ?internal_date=, ?keywords= space-separated); idempotent per mailbox");
}

}  // namespace coop::mail
