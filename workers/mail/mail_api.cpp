// Thin control handlers over MailService.
#include "workers/mail/mail_api.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>

#include "common/http/date.h"
#include "common/mail/mailbox_formats.h"
#include "common/error.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/mail/auth/dkim_keyring.h"
#include "common/net/dns.h"
#include "workers/mail/auth/spf.h"
#include "workers/mail/dns_records.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/outbound/outbound.h"
#include "workers/mail/outbound/queue_store.h"
#include "workers/mail/submission.h"
#include "common/control/client.h"
#include "common/digest.h"
#include "common/paths.h"
#include "workers/mail/spam/bayes.h"
#include "workers/mail/spam/filter.h"

namespace coop::mail {

namespace {
using control::Request;
using control::Response;
using nlohmann::json;

json queue_json(const OutboundMessage& m, const std::vector<OutboundRecipient>& recipients) {
  auto list = json::array();
  for (const auto& r : recipients)
    list.push_back({{"address", r.address}, {"state", r.state}, {"attempts", r.attempts},
                    {"next_attempt_at", r.next_attempt_ms > 0 ? json(http::iso8601(r.next_attempt_ms / 1000)) : json(nullptr)},
                    {"last_error", r.last_error}, {"remote", r.remote}});
  return {{"id", m.id}, {"sender", m.sender}, {"member", m.handle}, {"size", m.size}, {"blob", m.blob},
          {"created_at", http::iso8601(m.created_ms / 1000)}, {"recipients", list}};
}

json key_json(const dkim::KeyInfo& k) {
  return {{"domain", k.domain}, {"selector", k.selector}, {"algorithm", std::string(dkim::algorithm_tag(k.algorithm))},
          {"active", k.active}, {"dns_name", k.dns_name}, {"dns_record", k.dns_record}};
}

int64_t queue_id(const Request& q) {
  const auto& text = q.param("id");
  char* end = nullptr;
  const auto id = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || id <= 0) throw Error(errc::kBadRequest, "'" + text + "' is not a queue id", 400);
  return id;
}

json domain_json(const Domain& d) {
  return {{"name", d.name}, {"catch_all", d.catch_all.empty() ? json(nullptr) : json(d.catch_all)}, {"created_at", http::iso8601(d.created_at)}};
}
}  // namespace

void add_mail_routes(WorkerRuntime& runtime, MailService& service, Outbound& outbound, spam::SpamFilter* spam) {
  auto& r = runtime.router();
  auto run = runtime.blocking_runner();

  // The spam filter (coop mail spam).
  r.add_blocking("GET", "/v1/spam", run, [spam](const Request& q) {
    json out = {{"enabled", spam != nullptr}};
    if (!spam) return Response::json(out);
    const auto& s = spam->settings();
    const auto member = q.query_value("member");
    const auto c = spam->bayes().counts(member);
    out["junk"] = s.junk;
    out["reject"] = s.reject;
    out["per_member"] = s.per_member;
    out["greylist"] = s.greylist;
    out["dnsbl"] = s.dnsbl;
    out["uribl"] = s.uribl;
    out["classifier"] = {{"owner", member.empty() ? json(nullptr) : json(member)},
                         {"spam_messages", c.spam_messages}, {"ham_messages", c.ham_messages}, {"tokens", c.tokens},
                         {"recent_trainings", c.recent}, {"recent_right", c.recent_right},
                         {"recent_accuracy", c.recent > 0 ? json(static_cast<double>(c.recent_right) / static_cast<double>(c.recent)) : json(nullptr)}};
    auto rules = json::array();
    for (const auto& rule : spam::rules()) rules.push_back({{"name", rule.name}, {"points", rule.points}, {"description", rule.description}});
    out["rules"] = rules;
    return Response::json(out);
  }, "the spam filter's settings, rules and classifier counts (?member=: that member's own part)");
  r.add_blocking("POST", "/v1/spam/train", run, [spam](const Request& q) {
    if (!spam) throw Error(errc::kSpamFilterOff, "the spam filter is off ([workers.mail.spam] enabled = false)", 409);
    const auto as = q.query_value("as");
    if (as != "spam" && as != "ham") throw Error(errc::kBadRequest, "as= must be spam or ham", 400);
    const auto records = parse_import_batch(q.body);
    if (!records) throw Error(errc::kBadRequest, "not an import batch (mailbox_formats.h)", 400);
    int64_t learnt = 0, already = 0;
    // Keyed by the bytes: the same file trained twice teaches once, and as the other kind
    // replaces what it taught.
    for (const auto& m : *records) (spam->train("", "file:" + sha256_hex(m.bytes), m.bytes, as == "spam") ? learnt : already)++;
    return Response::json({{"learnt", learnt}, {"already", already}});
  }, "teach the shard's classifier messages as spam or ham (?as=; body: records of mailbox_formats.h import_record)");
  r.add_blocking("POST", "/v1/spam/score", run, [spam](const Request& q) {
    if (!spam) throw Error(errc::kSpamFilterOff, "the spam filter is off ([workers.mail.spam] enabled = false)", 409);
    const auto records = parse_import_batch(q.body);
    if (!records) throw Error(errc::kBadRequest, "not an import batch (mailbox_formats.h)", 400);
    const auto now = static_cast<int64_t>(::time(nullptr));
    auto list = json::array();
    for (const auto& m : *records) {
      // As at the end of DATA, without the authentication results only delivery has.
      const auto facts = message_text(spam::strip_spam_headers(m.bytes));
      const auto score = spam->score(facts, nullptr, now);
      auto tests = json::object();
      for (const auto& h : score.hits) tests[h.name] = h.points;
      list.push_back({{"score", score.total}, {"bayes", score.bayes}, {"tests", tests},
                      {"verdict", score.total >= spam->settings().reject ? "reject" : score.total >= spam->settings().junk ? "junk" : "inbox"}});
    }
    return Response::json(list);
  }, "score messages as inbound mail would be, without delivering them (body: import_record records)");

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
      list.push_back({{"address", a.address}, {"targets", a.targets}, {"created_at", http::iso8601(a.created_at)}});
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

  r.add_blocking("POST", "/v1/import/{handle}/{mailbox}", run, [&service](const Request& q) {
    const auto records = parse_import_batch(q.body);
    if (!records) throw Error(errc::kBadRequest, "not an import batch (mailbox_formats.h)", 400);
    std::vector<MailService::Importing> batch;
    batch.reserve(records->size());
    const auto now = static_cast<int64_t>(::time(nullptr));
    for (const auto& r : *records) batch.push_back({r.bytes, r.flags, r.internal_date > 0 ? r.internal_date : now, r.keywords});
    const auto count = service.import_batch(q.param("handle"), q.param("mailbox"), batch);
    return Response::json({{"added", count.added}, {"existed", count.existed}});
  }, "store many messages at once, durable before the answer (body: records of mailbox_formats.h import_record); "
     "idempotent per mailbox");

  // The outbound queue (coop mail queue).
  r.add_blocking("GET", "/v1/queue", run, [&outbound](const Request&) {
    auto list = json::array();
    for (const auto& [m, recipients] : outbound.queue().list()) list.push_back(queue_json(m, recipients));
    return Response::json(list);
  }, "messages waiting to go out, with each recipient's state and last error");
  r.add_blocking("GET", "/v1/queue/{id}", run, [&outbound](const Request& q) {
    const auto entry = outbound.queue().find(queue_id(q));
    if (!entry) throw Error(errc::kNoSuchQueueEntry, "no message " + q.param("id") + " in the queue", 404);
    return Response::json(queue_json(entry->first, entry->second));
  }, "one queued message");
  r.add_blocking("POST", "/v1/queue/{id}/retry", run, [&outbound](const Request& q) {
    std::vector<int64_t> ids;
    if (q.param("id") == "all") {
      for (const auto& [m, recipients] : outbound.queue().list()) ids.push_back(m.id);
    } else {
      ids.push_back(queue_id(q));
      if (!outbound.queue().find(ids.front()))
        throw Error(errc::kNoSuchQueueEntry, "no message " + q.param("id") + " in the queue", 404);
    }
    for (const auto id : ids) outbound.queue().retry(id, queue_clock_ms());
    outbound.wake();
    return Response::json({{"retrying", ids}});
  }, "try a queued message (or all) now");
  r.add_blocking("DELETE", "/v1/queue/{id}", run, [&outbound](const Request& q) {
    if (!outbound.queue().remove(queue_id(q)))
      throw Error(errc::kNoSuchQueueEntry, "no message " + q.param("id") + " in the queue", 404);
    return Response::json({{"removed", queue_id(q)}});
  }, "drop a queued message without a report");

  // DKIM keys (coop mail dkim).
  r.add_blocking("GET", "/v1/dkim", run, [&outbound](const Request& q) {
    auto list = json::array();
    for (const auto& k : outbound.keys().list(q.query_value("domain"))) list.push_back(key_json(k));
    return Response::json(list);
  }, "DKIM keys with their DNS records (?domain=)");
  r.add_blocking("POST", "/v1/dkim", run, [&outbound](const Request& q) {
    const auto body = q.json();
    const auto algorithm = body.value("algorithm", "rsa");
    if (algorithm != "rsa" && algorithm != "ed25519")
      throw Error(errc::kBadRequest, "algorithm: '" + algorithm + "' is not rsa or ed25519", 400);
    const auto key = outbound.keys().generate(body.value("domain", ""),
                                              algorithm == "rsa" ? dkim::Algorithm::rsa_sha256 : dkim::Algorithm::ed25519_sha256,
                                              body.value("selector", ""));
    return Response::json(key_json(key), 201);
  }, "generate a key ({domain, algorithm: rsa|ed25519, selector}); it signs from now on");
  r.add_blocking("DELETE", "/v1/dkim/{domain}/{selector}", run, [&outbound](const Request& q) {
    outbound.keys().retire(q.param("domain"), q.param("selector"));
    return Response::json({{"retired", q.param("selector")}, {"domain", q.param("domain")}});
  }, "stop signing with a key (it stays on disk)");

  // SPF as port 25 evaluates it, for admins checking a sender's record (and the RFC 7208
  // test suite in the tests).
  r.add_async("GET", "/v1/spf", [&outbound, &runtime](const Request& q, control::Reply reply) {
    spf::Query query{q.query_value("ip"), q.query_value("sender"), q.query_value("helo"),
                     q.query_value("receiver", runtime.config().domain())};
    spf::check_host(outbound.dns(), query, [reply = std::move(reply)](spf::Outcome o) {
      reply(Response::json({{"result", std::string(spf::result_name(o.result))}, {"domain", o.domain},
                            {"explanation", o.explanation}, {"reason", o.reason}}));
    });
  }, "evaluate SPF for ?ip=&sender=&helo= (RFC 7208 check_host)");

  // coop mail dns: what to publish for a hosted domain, and (?check=1) what DNS says.
  r.add_async("GET", "/v1/dns/{domain}", [&outbound, &service, &runtime, run](const Request& q, control::Reply reply) {
    const auto domain = ascii_lower(q.param("domain"));
    const bool check = q.query_value("check") == "1";
    run([&outbound, &service, &runtime, domain, check, reply = std::move(reply)]() mutable {
      try {
        if (!service.directory().find_domain(domain))
          throw Error(errc::kNoSuchDomain, "the shard does not host " + domain, 404);
        auto records = suggested_records(domain, public_mail_servers(runtime.config()), outbound.keys().list(domain));
        auto respond = [reply](std::vector<DnsRecord> list) {
          auto out = json::array();
          for (const auto& r : list) {
            json j = {{"name", r.name}, {"type", r.type}, {"value", r.value}, {"purpose", r.purpose}};
            if (!r.status.empty()) j["status"] = r.status;
            if (!r.found.empty()) j["found"] = r.found;
            out.push_back(j);
          }
          reply(Response::json(out));
        };
        if (!check) return respond(std::move(records));
        // Asked afresh: an admin who just published a record must not be told of a cached
        // NXDOMAIN from the check before.
        outbound.dns().flush();
        check_records(outbound.dns(), std::move(records), respond);
      } catch (const Error& e) {
        reply(Response::error(e));
      } catch (const std::exception& e) {
        reply(Response::error(errc::kInternal, e.what(), 500));
      }
    });
  }, "the DNS records to publish for a hosted domain (?check=1: and what DNS holds)");

  r.add("POST", "/v1/dns/flush", [&outbound](const Request&) {
    outbound.dns().flush();
    return Response::json({{"flushed", true}});
  }, "forget every cached DNS answer (after fixing records)");

  // For coop-dav's scheduling (RFC 6638): which member an address reaches, every address a
  // member has, and invitations sent by mail (iMIP, RFC 6047) from a member's address.
  r.add_blocking("POST", "/v1/resolve", run, [&service](const Request& q) {
    const auto body = q.json();
    json handles = json::object();
    for (const auto& a : body.value("addresses", std::vector<std::string>{})) {
      if (handles.size() >= 1000) throw Error(errc::kBadRequest, "at most 1000 addresses at once", 400);
      const auto check = service.check_recipient(a, 0);
      // A group or a catch-all reaching several is not one calendar user.
      handles[a] = check.accepted && check.recipients.size() == 1 ? json(check.recipients.front().handle) : json(nullptr);
    }
    return Response::json({{"handles", handles}});
  }, "the member each address reaches, or null ({addresses})");
  r.add_blocking("GET", "/v1/addresses/{handle}", run, [&service, &runtime](const Request& q) {
    control::Client member(runtime.home().socket("member"));
    const auto found = member.get("/v1/members/" + percent_encode(q.param("handle")));
    found.throw_if_error();
    const auto emails = found.json().value("emails", std::vector<std::string>{});
    return Response::json({{"handle", q.param("handle")},
                           {"addresses", sendable_addresses(service.directory(), q.param("handle"), emails)}});
  }, "every address a member may send from and receives at: registered, handle@ each domain, aliases");
  r.add_blocking("POST", "/v1/imip", run, [&service, &outbound, &runtime](const Request& q) {
    const auto body = q.json();
    const auto handle = body.value("handle", "");
    const auto from = ascii_lower(body.value("from", ""));
    const auto to = body.value("to", std::vector<std::string>{});
    if (to.empty()) throw Error(errc::kBadRequest, "no recipients", 400);
    control::Client member(runtime.home().socket("member"));
    const auto found = member.get("/v1/members/" + percent_encode(handle));
    found.throw_if_error();
    const auto allowed = sendable_addresses(service.directory(), handle, found.json().value("emails", std::vector<std::string>{}));
    if (std::find(allowed.begin(), allowed.end(), from) == allowed.end())
      throw Error(errc::kForbidden, handle + " may not send as " + from, 403);
    const auto prepared = prepare_submission(body.value("message", ""), allowed, static_cast<int64_t>(::time(nullptr)));
    if (prepared.code != 250) throw Error(errc::kBadRequest, prepared.reply, 400);
    // Calendar mail is the server's doing, not the member's: no copy in their Sent mailbox.
    const auto id = outbound.submit(handle, from, to, prepared.from_domain, prepared.message, "", false);
    return Response::json({{"queued", id}}, 202);
  }, "queue an iTIP message by mail ({handle, from, to, message}), signed as any submission");

  // Members' mail settings.
  r.add_blocking("GET", "/v1/settings/{handle}", run, [&service](const Request& q) {
    const auto s = service.directory().settings(q.param("handle"));
    return Response::json({{"handle", q.param("handle")}, {"save_sent", s.save_sent}});
  }, "a member's mail settings");
  r.add_blocking("PUT", "/v1/settings/{handle}", run, [&service](const Request& q) {
    const auto body = q.json();
    auto s = service.directory().settings(q.param("handle"));
    if (body.contains("save_sent")) s.save_sent = body.at("save_sent").get<bool>();
    service.directory().set_settings(q.param("handle"), s);
    return Response::json({{"handle", q.param("handle")}, {"save_sent", s.save_sent}});
  }, "change a member's mail settings ({save_sent})");
}

}  // namespace coop::mail
