// JMAP core (RFC 8620): the session resource (2), the API request and response (3.3-3.4),
// request-level problems as RFC 7807 objects (3.6.1), method-level errors (3.6.2), result
// references (3.7), Core/echo (4), and binary data upload and download (6). Every limit the
// session advertises is enforced here.
#include "workers/mail/jmap/jmap.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "common/auth/basic_auth.h"
#include "common/blob_store.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/http/router.h"
#include "common/json.h"
#include "common/text.h"
#include "workers/mail/jmap/jmap_internal.h"
#include "workers/mail/mail_service.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/store/mailbox_store.h"

namespace coop::mail {

using namespace jmap;

namespace {

// RFC 8620 3.6.1: a request-level problem as an RFC 7807 object.
json problem_body(const std::string& type, int status, const std::string& detail, json extra = json::object()) {
  json body = {{"type", "urn:ietf:params:jmap:error:" + type}, {"status", status}, {"detail", detail}};
  body.update(extra);
  return body;
}

http::Response problem_response(json body) {
  const int status = body.value("status", 400);
  auto r = http::Response::json(body, status);
  r.content_type = "application/problem+json";
  return r;
}

http::Response problem(const std::string& type, int status, const std::string& detail, json extra = json::object()) {
  return problem_response(problem_body(type, status, detail, std::move(extra)));
}

constexpr const char kWebSocket[] = "urn:ietf:params:jmap:websocket";

// RFC 8620 7.1: the StateChange from the states last sent to those of now, for the types
// asked (empty: all); null when none of them changed.
json state_change(const std::string& handle, const json& now, const json& last, const std::set<std::string>& types) {
  json changed = json::object();
  for (const auto& [type, state] : now.items())
    if ((types.empty() || types.count(type)) && (!last.contains(type) || last[type] != state)) changed[type] = state;
  if (changed.empty()) return nullptr;
  return {{"@type", "StateChange"}, {"changed", {{account_id(handle), changed}}}};
}

// RFC 8887 4.3.5.2 pushState: the states pushed, in one opaque string, and back.
constexpr const char* kPushTypes[] = {"Email", "EmailSubmission", "VacationResponse", "EmailDelivery"};
std::string push_state_of(const json& states) {
  std::string out;
  for (const char* type : kPushTypes) out += (out.empty() ? "" : ".") + states.value(type, std::string());
  return out;
}
json states_of_push_state(const std::string& text) {
  json states = json::object();
  std::size_t start = 0;
  for (const char* type : kPushTypes) {
    const auto dot = std::min(text.find('.', start), text.size());
    states[type] = text.substr(std::min(start, text.size()), dot - std::min(start, text.size()));
    start = dot + 1;
  }
  for (const char* type : {"Mailbox", "Thread"}) states[type] = states["Email"];
  return states;
}

http::Response unauthorized() {
  auto r = http::Response::bytes(401, "log in with your member name and password, or a mail app password as a Bearer token\n", "text/plain");
  r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"coop\", charset=\"UTF-8\"");
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"coop\"");  // an app password (RFC 6750)
  return r;
}

bool id_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

// RFC 8620 3.7: a JSON Pointer (RFC 6901) with "*" meaning "each element of this array",
// whose results are flattened one level.
std::optional<json> evaluate_pointer(const json& value, std::string_view path) {
  if (path.empty()) return value;
  if (path.front() != '/') return std::nullopt;
  path.remove_prefix(1);
  const auto slash = path.find('/');
  std::string token(path.substr(0, slash));
  const auto rest = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  for (std::size_t at; (at = token.find("~1")) != std::string::npos;) token.replace(at, 2, "/");
  for (std::size_t at; (at = token.find("~0")) != std::string::npos;) token.replace(at, 2, "~");
  if (value.is_array()) {
    if (token == "*") {
      json out = json::array();
      for (const auto& element : value) {
        auto each = evaluate_pointer(element, rest);
        if (!each) return std::nullopt;
        if (each->is_array())
          for (auto& x : *each) out.push_back(std::move(x));
        else
          out.push_back(std::move(*each));
      }
      return out;
    }
    if (token.empty() || token.size() > 9 || !std::all_of(token.begin(), token.end(), ::isdigit)) return std::nullopt;
    const auto index = std::stoul(token);
    if (index >= value.size()) return std::nullopt;
    return evaluate_pointer(value[index], rest);
  }
  if (value.is_object() && value.contains(token)) return evaluate_pointer(value[token], rest);
  return std::nullopt;
}

}  // namespace

// RFC 8620 7.3: one EventSource connection. The store's watcher marks a change; the new
// state is read on the blocking pool and sent as a StateChange event when it differs from
// the last one sent. Pings (or, with ping=0, SSE comments) keep dead clients from lingering.
class EventStream : public http::Response::Stream, public std::enable_shared_from_this<EventStream> {
 public:
  EventStream(JmapContext& context, std::string handle, std::set<std::string> types, bool close_after_state, int ping)
      : context_(context), handle_(std::move(handle)), types_(std::move(types)), close_after_state_(close_after_state),
        ping_(ping), timer_(*context.io) {}

  void start() {
    last_ = push_states(context_, handle_);
    std::weak_ptr<EventStream> weak = shared_from_this();
    const auto token = context_.service->mailboxes().watch(handle_, [weak] {
      if (auto self = weak.lock()) self->changed();
    });
    bool closed;
    {
      std::lock_guard lock(mutex_);
      watch_ = token;
      closed = closed_;
    }
    if (closed) context_.service->mailboxes().unwatch(handle_, token);  // closed while starting
    else arm();
  }

  void next(std::function<void(std::optional<std::string>)> deliver) override {
    std::unique_lock lock(mutex_);
    if (!queue_.empty()) {
      auto piece = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      return deliver(std::move(piece));
    }
    if (closed_) {
      lock.unlock();
      return deliver(std::nullopt);
    }
    waiting_ = std::move(deliver);
  }

  void cancel() override { close(); }
  const std::string& handle() const { return handle_; }

  void close() {
    std::function<void(std::optional<std::string>)> waiting;
    uint64_t token;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
      waiting = std::move(waiting_);
      token = watch_;
    }
    // Unwatching takes the store's lock, which a long commit may hold: never on the io thread.
    if (token) context_.runner([self = shared_from_this(), token] { self->context_.service->mailboxes().unwatch(self->handle_, token); });
    boost::asio::post(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
    if (waiting) waiting(std::nullopt);
  }

 public:
  // Something changed (a commit, under the store's lock, or a change elsewhere): schedule a look.
  void changed() { look(); }

 private:
  // A slow reader's backlog is bounded: past 64 pieces pings are dropped, and a state event
  // replaces the last queued one (only the newest state matters).
  void push(std::string piece, bool state = false) {
    std::function<void(std::optional<std::string>)> waiting;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      if (!waiting_) {
        if (queue_.size() < 64) queue_.push_back(std::move(piece));
        else if (state) queue_.back() = std::move(piece);
        return;
      }
      waiting = std::move(waiting_);
    }
    waiting(std::move(piece));
  }

  // On the committing thread, under the store's lock: only schedule.
  void look() {
    if (pending_.exchange(true)) return;
    context_.runner([self = shared_from_this()] {
      // One reader of the state at a time: events go out in order, last_ is never raced.
      std::lock_guard serial(self->serial_);
      self->pending_ = false;
      try {
        const auto states = push_states(self->context_, self->handle_);
        const json event = state_change(self->handle_, states, self->last_, self->types_);
        self->last_ = states;
        if (event.is_null()) return;
        self->push("event: state\ndata: " + event.dump() + "\n\n", true);
        if (self->close_after_state_) self->close();
      } catch (const std::exception& e) {
        spdlog::warn("jmap push for {}: {}", self->handle_, e.what());
      }
    });
  }

  void arm() {
    const int seconds = ping_ > 0 ? ping_ : 30;
    timer_.expires_after(std::chrono::seconds(seconds));
    timer_.async_wait([weak = std::weak_ptr<EventStream>(shared_from_this())](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      {
        std::lock_guard lock(self->mutex_);
        if (self->closed_) return;
      }
      self->push(self->ping_ > 0 ? "event: ping\ndata: {\"interval\":" + std::to_string(self->ping_) + "}\n\n" : ": keep-alive\n\n");
      self->arm();
    });
  }

  JmapContext& context_;
  const std::string handle_;
  const std::set<std::string> types_;  // empty: every type ("*")
  const bool close_after_state_;
  const int ping_;
  boost::asio::steady_timer timer_;
  uint64_t watch_ = 0;
  json last_;  // the states sent last, by type
  std::atomic<bool> pending_{false};
  std::mutex serial_;  // state reads and last_
  std::mutex mutex_;
  std::deque<std::string> queue_;
  std::function<void(std::optional<std::string>)> waiting_;
  bool closed_ = false;
};

namespace {
std::mutex uploads_mutex;
std::map<std::string, std::set<std::string>> uploads;  // by member, at most 10,000 each
}  // namespace

void jmap::remember_upload(const std::string& handle, const std::string& sha) {
  std::lock_guard lock(uploads_mutex);
  auto& mine = uploads[handle];
  if (mine.size() < 10000) mine.insert(sha);
}

bool jmap::blob_visible(JmapContext& context, const std::string& handle, const std::string& sha) {
  {
    std::lock_guard lock(uploads_mutex);
    const auto it = uploads.find(handle);
    if (it != uploads.end() && it->second.count(sha)) return true;
  }
  for (const auto& box : context.service->mailboxes().mailboxes(handle))
    if (context.service->mailboxes().find_blob(handle, box.name, sha)) return true;
  return false;
}

std::optional<std::pair<std::string, std::string>> jmap::parse_blob_id(std::string_view id) {
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  if (id.size() < 65 || id[0] != 'G' || !std::all_of(id.begin() + 1, id.begin() + 65, hex)) return std::nullopt;
  std::string sha(id.substr(1, 64)), part;
  if (id.size() > 65) {
    if (id[65] != '_' || id.size() > 65 + 64) return std::nullopt;
    part = id.substr(66);
    for (char& c : part) {
      if (c == '-') c = '.';
      else if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    }
    if (part.empty()) return std::nullopt;
  }
  return std::pair{ascii_lower(sha), part};
}

std::optional<std::string> jmap::read_blob(JmapContext& context, const std::string& handle, std::string_view id) {
  const auto parsed = parse_blob_id(id);
  if (!parsed || !blob_visible(context, handle, parsed->first)) return std::nullopt;
  std::string bytes = context.service->blobs().read(parsed->first);
  if (parsed->second.empty()) return bytes;
  return part_content(bytes, parsed->second);
}

void jmap::check_if_in_state(const Call& call, const std::string& state) {
  if (call.args.contains("ifInState") && !call.args["ifInState"].is_null() && call.args["ifInState"] != state)
    throw MethodError("stateMismatch", "");
}

SetParts jmap::set_parts(const Call& call) {
  SetParts p{call.args.value("create", json::object()), call.args.value("update", json::object()),
             call.args.value("destroy", json::array())};
  if (p.create.is_null()) p.create = json::object();
  if (p.update.is_null()) p.update = json::object();
  if (p.destroy.is_null()) p.destroy = json::array();
  if (!p.create.is_object() || !p.update.is_object() || !p.destroy.is_array())
    throw MethodError("invalidArguments", "create and update are objects, destroy an array");
  return p;
}

std::string jmap::resolve_id(const Call& call, const std::string& id) {
  if (id.size() > 1 && id[0] == '#' && call.created_ids.contains(id.substr(1)) && call.created_ids[id.substr(1)].is_string())
    return call.created_ids[id.substr(1)].get<std::string>();
  return id;
}

std::string jmap::account_id(const std::string& handle) { return "a" + sha256_hex("coop-jmap-account:" + handle).substr(0, 24); }

// RFC 8887: one JMAP WebSocket. Requests run on the blocking pool as they come (answers
// may pass each other: each names its requestId); WebSocketPushEnable watches the store
// as an EventSource does and sends StateChange objects down the same socket.
class JmapSocket : public std::enable_shared_from_this<JmapSocket> {
 public:
  JmapSocket(JmapContext& context, std::shared_ptr<http::WebSocket> ws) : context_(context), ws_(std::move(ws)) {}

  // RFC 8887 4.3.5: push for these types (empty: all), from pushState when the client has one.
  void enable(const std::string& handle, std::set<std::string> types, const std::string& push_state) {
    std::weak_ptr<JmapSocket> weak = shared_from_this();
    const auto token = context_.service->mailboxes().watch(handle, [weak] {
      if (auto self = weak.lock()) self->changed();
    });
    const auto now = push_state.empty() ? push_states(context_, handle) : states_of_push_state(push_state);
    bool closed;
    uint64_t old = 0;
    std::string old_handle;
    {
      // One watch at a time, even when two enables run at once: the one it replaces goes.
      std::lock_guard lock(mutex_);
      old_handle = handle_;
      handle_ = handle;
      types_ = std::move(types);
      last_ = now;
      closed = closed_;
      old = std::exchange(watch_, closed ? 0 : token);
    }
    if (old) context_.service->mailboxes().unwatch(old_handle, old);
    if (closed) context_.service->mailboxes().unwatch(handle, token);
    else if (!push_state.empty()) changed();  // what changed since the client's pushState
  }

  void disable() {
    uint64_t token;
    std::string handle;
    {
      std::lock_guard lock(mutex_);
      token = std::exchange(watch_, 0);
      handle = handle_;
    }
    if (token) context_.service->mailboxes().unwatch(handle, token);
  }

  void closed() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    context_.runner([self = shared_from_this()] { self->disable(); });
  }

  std::shared_ptr<http::WebSocket> ws() const { return ws_; }
  // Messages taken but not yet answered: counted on the io thread, so a client that sends
  // without waiting cannot fill the blocking pool's queue.
  std::atomic<int> in_flight{0};
  // Who the socket's requests come from (known after its first message).
  void set_member(const std::string& handle) {
    std::lock_guard lock(mutex_);
    member_ = handle;
  }
  std::string member() {
    std::lock_guard lock(mutex_);
    return member_;
  }

 // Something changed: the states are compared with those sent last, on the blocking pool.
  void changed() {
    if (pending_.exchange(true)) return;
    context_.runner([self = shared_from_this()] {
      std::lock_guard serial(self->serial_);
      self->pending_ = false;
      std::string handle;
      json last;
      std::set<std::string> types;
      {
        std::lock_guard lock(self->mutex_);
        if (!self->watch_) return;
        handle = self->handle_;
        last = self->last_;
        types = self->types_;
      }
      try {
        const auto states = push_states(self->context_, handle);
        json event = state_change(handle, states, last, types);
        {
          std::lock_guard lock(self->mutex_);
          self->last_ = states;
        }
        if (event.is_null()) return;
        event["pushState"] = push_state_of(states);
        self->ws_->send(event.dump());
      } catch (const std::exception& e) {
        spdlog::warn("jmap websocket push for {}: {}", handle, e.what());
      }
    });
  }

 private:
  JmapContext& context_;
  const std::shared_ptr<http::WebSocket> ws_;
  std::mutex mutex_;
  std::string handle_, member_;
  json last_;  // the states sent last, by type
  std::set<std::string> types_;
  uint64_t watch_ = 0;
  bool closed_ = false;
  std::atomic<bool> pending_{false};
  std::mutex serial_;
};

class Jmap {
 public:
  explicit Jmap(JmapContext context) : context_(std::move(context)), auth_(*context_.home, "mail") {}

  // Who is asking, or nullopt (then 401). Throws coop::Error for suspended members, throttling.
  std::optional<auth::VerifiedMember> member(const http::Request& q) { return auth_.check_member(q); }

  json session(const http::Request& q, const std::string& handle) {
    const auto& l = context_.limits;
    const std::string base = context_.scheme + "://" + q.header("host", "localhost");
    const auto account = account_id(handle);
    json core = {{"maxSizeUpload", l.max_size_upload},
                 {"maxConcurrentUpload", l.max_concurrent_upload},
                 {"maxSizeRequest", l.max_size_request},
                 {"maxConcurrentRequests", l.max_concurrent_requests},
                 {"maxCallsInRequest", l.max_calls_in_request},
                 {"maxObjectsInGet", l.max_objects_in_get},
                 {"maxObjectsInSet", l.max_objects_in_set},
                 {"collationAlgorithms", {"i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"}}};
    // RFC 8887 4: requests and push over a WebSocket on the same host.
    const json websocket = {{"url", (context_.scheme == "https" ? "wss://" : "ws://") + q.header("host", "localhost") + "/jmap/ws"},
                            {"supportsPush", true}};
    return {{"capabilities", {{kCore, core}, {kMail, json::object()}, {kSubmission, json::object()}, {kVacation, json::object()},
                              {kWebSocket, websocket}}},
            {"accounts", {{account, {{"name", handle}, {"isPersonal", true}, {"isReadOnly", false},
                                     {"accountCapabilities", {{kMail, mail_account_capabilities(l)},
                                                              {kSubmission, submission_account_capabilities()},
                                                              {kVacation, json::object()}}}}}}},
            {"primaryAccounts", {{kMail, account}, {kSubmission, account}, {kVacation, account}}},
            {"username", handle},
            {"apiUrl", base + "/jmap/api/"},
            {"downloadUrl", base + "/jmap/download/{accountId}/{blobId}/{name}?accept={type}"},
            {"uploadUrl", base + "/jmap/upload/{accountId}/"},
            {"eventSourceUrl", base + "/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}"},
            {"state", session_state(handle)}};
  }

  // RFC 8620 3.3-3.7. The request has passed authentication and the size limit.
  http::Response api(const http::Request& q, const auth::VerifiedMember& who) {
    // RFC 8620 3.6.1: a body that is not application/json is notJSON (no type: read as JSON).
    auto type = ascii_lower(q.header("content-type"));
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    if (!type.empty() && type != "application/json")
      return problem("notJSON", 400, "the request's Content-Type is " + type + ", not application/json");
    json request;
    try {
      request = parse_json(q.body);
    } catch (const std::exception& e) {
      return problem("notJSON", 400, std::string("the body is not JSON: ") + e.what());
    }
    json answer = run_request(request, who);
    if (answer.contains("status")) return problem_response(std::move(answer));
    return http::Response::json(answer);
  }

  // A parsed Request object (RFC 8620 3.3) run: the Response object (3.4), or a problem
  // object (3.6.1, it has "status") when the request as a whole is refused.
  json run_request(const json& request, const auth::VerifiedMember& who) {
    const auto& handle = who.handle;
    if (!request.is_object() || !request.contains("using") || !request["using"].is_array() ||
        !request.contains("methodCalls") || !request["methodCalls"].is_array())
      return problem_body("notRequest", 400, "a Request object has \"using\" and \"methodCalls\" arrays (RFC 8620 3.3)");
    std::set<std::string> capabilities;
    for (const auto& c : request["using"]) {
      if (!c.is_string()) return problem_body("notRequest", 400, "\"using\" holds capability names");
      const auto name = c.get<std::string>();
      if (name != kCore && name != kMail && name != kSubmission && name != kVacation && name != kWebSocket)
        return problem_body("unknownCapability", 400, "this server does not support " + name);
      capabilities.insert(name);
    }
    const auto& calls = request["methodCalls"];
    if (calls.size() > static_cast<std::size_t>(context_.limits.max_calls_in_request))
      return problem_body("limit", 400, "at most " + std::to_string(context_.limits.max_calls_in_request) + " method calls a request",
                          {{"limit", "maxCallsInRequest"}});
    for (const auto& call : calls)
      if (!call.is_array() || call.size() != 3 || !call[0].is_string() || !call[1].is_object() || !call[2].is_string())
        return problem_body("notRequest", 400, "each method call is [name, arguments, method call id] (RFC 8620 3.2)");
    json created_ids = request.contains("createdIds") ? request["createdIds"] : json::object();
    if (!created_ids.is_object()) return problem_body("notRequest", 400, "createdIds is an object");

    json responses = json::array();
    std::size_t reference_budget = context_.limits.max_size_request;
    for (const auto& call : calls) {
      const auto name = call[0].get<std::string>();
      const auto& id = call[2];
      try {
        const json args = resolve_references(call[1], responses, reference_budget);
        json response = json::array();  // built by moves: a big result is not copied
        std::vector<json> implicit;
        response.push_back(name);
        response.push_back(run(name, args, capabilities, who, created_ids, implicit));
        response.push_back(id);
        responses.push_back(std::move(response));
        for (auto& extra : implicit) {
          extra.push_back(id);
          responses.push_back(std::move(extra));
        }
      } catch (const MethodError& e) {
        json error = {{"type", e.type}};
        if (*e.what()) error["description"] = e.what();
        error.update(e.extra);
        responses.push_back({"error", error, id});
      } catch (const Error& e) {
        // A failure of ours is that call's serverFail: what earlier calls did stands, and is said.
        if (e.status() >= 500) spdlog::error("jmap {}: {} failed: {}", handle, name, e.what());
        responses.push_back({"error", e.status() >= 500 ? json{{"type", "serverFail"}}
                                                        : json{{"type", "invalidArguments"}, {"description", e.what()}}, id});
      } catch (const json::exception& e) {
        responses.push_back({"error", {{"type", "invalidArguments"}, {"description", e.what()}}, id});
      } catch (const std::exception& e) {
        spdlog::error("jmap {}: {} failed: {}", handle, name, e.what());
        responses.push_back({"error", {{"type", "serverFail"}}, id});
      }
    }
    json out = json::object();
    out["methodResponses"] = std::move(responses);
    out["sessionState"] = session_state(handle);
    if (request.contains("createdIds")) out["createdIds"] = created_ids;
    return out;
  }

  // RFC 8620 3.7: "#name": {resultOf, name, path} replaced by what the path finds in the
  // earlier response; anything wrong is invalidResultReference.
  // budget: what references may still copy in this request, in bytes of JSON; every
  // reference costs at least 1 KiB, so a request cannot multiply one big result.
  static json resolve_references(const json& args, const json& responses, std::size_t& budget) {
    json out = json::object();
    for (const auto& [key, value] : args.items()) {
      if (key.empty() || key[0] != '#') {
        out[key] = value;
        continue;
      }
      const auto plain = key.substr(1);
      if (args.contains(plain)) throw MethodError("invalidArguments", "both " + plain + " and #" + plain + " are given");
      if (!value.is_object() || !value.contains("resultOf") || !value["resultOf"].is_string() || !value.contains("name") ||
          !value["name"].is_string() || !value.contains("path") || !value["path"].is_string())
        throw MethodError("invalidResultReference", "a ResultReference has resultOf, name and path");
      // Step 1: the first response with that method call id.
      const json* found = nullptr;
      for (const auto& r : responses)
        if (r[2] == value["resultOf"]) {
          found = &r;
          break;
        }
      if (!found || (*found)[0] != value["name"])
        throw MethodError("invalidResultReference", "no earlier " + value["name"].get<std::string>() + " response with id " +
                                                        value["resultOf"].get<std::string>());
      auto result = evaluate_pointer((*found)[1], value["path"].get<std::string>());
      if (!result) throw MethodError("invalidResultReference", "the path " + value["path"].get<std::string>() + " finds nothing");
      const auto cost = std::max<std::size_t>(1024, result->dump().size());
      if (cost > budget) throw MethodError("requestTooLarge", "the request's result references copy more than maxSizeRequest");
      budget -= cost;
      out[plain] = std::move(*result);
    }
    return out;
  }

  json run(const std::string& name, const json& args, const std::set<std::string>& capabilities, const auth::VerifiedMember& who,
           json& created_ids, std::vector<json>& implicit) {
    const auto& handle = who.handle;
    if (name == "Core/echo") {
      if (!capabilities.count(kCore)) throw MethodError("unknownMethod", "Core/echo needs " + std::string(kCore) + " in using");
      return args;
    }
    const auto* methods = &mail_methods();
    auto it = methods->find(name);
    if (it == methods->end()) {
      methods = &submission_methods();
      it = methods->find(name);
    }
    if (it == methods->end() || !capabilities.count(it->second.capability))
      throw MethodError("unknownMethod", it == methods->end() ? "no method " + name
                                                              : name + " needs " + it->second.capability + " in using");
    const auto account = account_id(handle);
    if (!args.contains("accountId") || !args["accountId"].is_string())
      throw MethodError("invalidArguments", "accountId is required");
    if (args["accountId"] != account) throw MethodError("accountNotFound", "");
    return it->second.run(context_, Call{handle, account, args, who.name, who.emails, created_ids, implicit});
  }

  // RFC 8620 2: the session's own state changes only with the session object (its account
  // and capabilities), not with the mail in it.
  std::string session_state(const std::string& handle) { return sha256_hex("coop-jmap-session-1:" + handle).substr(0, 16); }

  // Requests and uploads in flight per member, within the session's limits.
  class Slot {
   public:
    Slot(std::mutex& mutex, std::map<std::string, int>& counts, const std::string& handle, int max)
        : mutex_(mutex), counts_(counts), handle_(handle) {
      std::lock_guard lock(mutex_);
      if (counts_[handle_] >= max) return;
      ++counts_[handle_];
      taken_ = true;
    }
    ~Slot() {
      if (!taken_) return;
      std::lock_guard lock(mutex_);
      if (--counts_[handle_] == 0) counts_.erase(handle_);
    }
    bool taken() const { return taken_; }

   private:
    std::mutex& mutex_;
    std::map<std::string, int>& counts_;
    std::string handle_;
    bool taken_ = false;
  };

  JmapContext context_;
  auth::BasicAuthCache auth_;
  std::mutex mutex_;
  std::map<std::string, int> requests_, uploads_;
  // Push connections, to end them when the worker stops.
  std::vector<std::weak_ptr<EventStream>> streams_;
  std::map<uint64_t, std::shared_ptr<JmapSocket>> sockets_;  // by WebSocket id
  bool stopping_ = false;
};

void stop_jmap_push(Jmap& jmap) {
  std::vector<std::weak_ptr<EventStream>> streams;
  {
    std::lock_guard lock(jmap.mutex_);
    jmap.stopping_ = true;  // no stream opens from now on
    streams.swap(jmap.streams_);
  }
  for (auto& weak : streams)
    if (auto stream = weak.lock()) stream->close();
  std::map<uint64_t, std::shared_ptr<JmapSocket>> sockets;
  {
    std::lock_guard lock(jmap.mutex_);
    sockets.swap(jmap.sockets_);
  }
  for (auto& [_, socket] : sockets) {
    socket->ws()->close(1001, "the mail worker is stopping");
    socket->closed();
  }
}

void end_jmap_member(Jmap& jmap, const std::string& handle) {
  jmap.auth_.forget(handle);
  std::vector<std::shared_ptr<EventStream>> streams;
  std::vector<std::shared_ptr<JmapSocket>> sockets;
  {
    std::lock_guard lock(jmap.mutex_);
    for (auto& weak : jmap.streams_)
      if (auto stream = weak.lock(); stream && stream->handle() == handle) streams.push_back(stream);
    for (auto& [_, socket] : jmap.sockets_) sockets.push_back(socket);
  }
  for (auto& stream : streams) stream->close();
  for (auto& socket : sockets)
    if (socket->member() == handle) socket->ws()->close(1008, "access revoked");
}

std::shared_ptr<Jmap> add_jmap_routes(http::Router& router, JmapContext context) {
  auto jmap = std::make_shared<Jmap>(std::move(context));
  auto run = jmap->context_.runner;
  Jmap* j = jmap.get();
  // A change outside the mail store: the member's push connections look again.
  j->context_.changed = [j](const std::string& handle) {
    std::vector<std::shared_ptr<EventStream>> streams;
    std::vector<std::shared_ptr<JmapSocket>> sockets;
    {
      std::lock_guard lock(j->mutex_);
      for (auto& weak : j->streams_)
        if (auto stream = weak.lock(); stream && stream->handle() == handle) streams.push_back(stream);
      for (auto& [_, socket] : j->sockets_)
        if (socket->member() == handle) sockets.push_back(socket);
    }
    for (auto& stream : streams) stream->changed();
    for (auto& socket : sockets) socket->changed();
  };
  // Every route checks credentials on the blocking pool (the registry's answer, Argon2).
  auto authed = [j](const http::Request& q, const std::function<http::Response(const auth::VerifiedMember&)>& then) {
    const auto who = j->member(q);
    if (!who) return unauthorized();
    return then(*who);
  };
  auto session = [j, authed](const http::Request& q) {
    return authed(q, [&](const auth::VerifiedMember& who) { return http::Response::json(j->session(q, who.handle)); });
  };
  // RFC 8620 2.2: the session is found at /.well-known/jmap.
  router.add_blocking("GET", "/.well-known/jmap", run, session, "the JMAP session resource");
  router.add_blocking("GET", "/jmap/session", run, session, "the JMAP session resource");
  router.add_blocking("POST", "/jmap/api", run, [j, authed](const http::Request& q) {
    return authed(q, [&](const auth::VerifiedMember& who) {
      const auto& handle = who.handle;
      if (q.body.size() > j->context_.limits.max_size_request)
        return problem("limit", 400, "the request is over maxSizeRequest", {{"limit", "maxSizeRequest"}});
      Jmap::Slot slot(j->mutex_, j->requests_, handle, j->context_.limits.max_concurrent_requests);
      if (!slot.taken())
        return problem("limit", 400, "too many requests at once", {{"limit", "maxConcurrentRequests"}});
      return j->api(q, who);
    });
  }, "JMAP method calls (RFC 8620 3)");
  // RFC 8620 6.1: the body is the blob; the answer names it.
  router.add_blocking("POST", "/jmap/upload/{account}", run, [j, authed](const http::Request& q) {
    return authed(q, [&](const auth::VerifiedMember& who) {
      const auto& handle = who.handle;
      if (q.param("account") != account_id(handle)) return problem("notFound", 404, "no such account");
      if (q.body.size() > j->context_.limits.max_size_upload)
        return problem("limit", 413, "the blob is over maxSizeUpload", {{"limit", "maxSizeUpload"}});
      Jmap::Slot slot(j->mutex_, j->uploads_, handle, j->context_.limits.max_concurrent_upload);
      if (!slot.taken()) return problem("limit", 400, "too many uploads at once", {{"limit", "maxConcurrentUpload"}});
      const auto sha = j->context_.service->blobs().put(q.body);
      remember_upload(handle, sha);
      return http::Response::json({{"accountId", account_id(handle)}, {"blobId", "G" + sha},
                                   {"type", q.header("content-type", "application/octet-stream")}, {"size", q.body.size()}},
                                  201);
    });
  }, "JMAP blob upload (RFC 8620 6.1)");
  // RFC 8620 6.2: a blob the member can see, with the name and type the URL asks for.
  router.add_blocking("GET", "/jmap/download/{account}/{blob}/{name}", run, [j, authed](const http::Request& q) {
    return authed(q, [&](const auth::VerifiedMember& who) {
      const auto& handle = who.handle;
      if (q.param("account") != account_id(handle)) return problem("notFound", 404, "no such blob");
      std::string type = q.query_value("accept", "application/octet-stream");
      if (type.empty() || type.size() > 200 || type.find_first_of("\r\n") != std::string::npos) type = "application/octet-stream";
      auto bytes = read_blob(j->context_, handle, q.param("blob"));
      if (!bytes) return problem("notFound", 404, "no such blob");
      auto r = http::Response::bytes(200, std::move(*bytes), type);
      std::string name = q.param("name");
      std::string safe;
      for (char c : name) safe += (id_char(c) || c == '.') ? c : '_';
      r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + safe.substr(0, 200) + "\"");
      r.headers.emplace_back("Cache-Control", "private, immutable, max-age=31536000");
      r.headers.emplace_back("X-Content-Type-Options", "nosniff");
      return r;
    });
  }, "JMAP blob download (RFC 8620 6.2)");
  // RFC 8620 7.3: push over server-sent events.
  router.add_blocking("GET", "/jmap/eventsource", run, [j, authed](const http::Request& q) {
    return authed(q, [&](const auth::VerifiedMember& who) {
      std::set<std::string> types;
      const auto list = q.query_value("types", "*");
      if (list != "*")
        for (std::size_t start = 0; start <= list.size();) {
          const auto comma = std::min(list.find(',', start), list.size());
          if (comma > start) types.insert(list.substr(start, comma - start));
          start = comma + 1;
        }
      const auto closeafter = q.query_value("closeafter", "no");
      if (closeafter != "no" && closeafter != "state") return problem("invalidArguments", 400, "closeafter is state or no");
      const auto ping_text = q.query_value("ping", "0");
      if (ping_text.empty() || ping_text.size() > 6 || !std::all_of(ping_text.begin(), ping_text.end(), ::isdigit))
        return problem("invalidArguments", 400, "ping is a number of seconds");
      // RFC 8620 7.3: the server may bound the interval; here 5 s to 5 minutes (0: none).
      int ping = std::stoi(ping_text);
      if (ping > 0) ping = std::clamp(ping, 5, 300);
      auto stream = std::make_shared<EventStream>(j->context_, who.handle, std::move(types), closeafter == "state", ping);
      {
        // At most 8 push connections a member (a few devices), 10,000 in all.
        std::lock_guard lock(j->mutex_);
        std::erase_if(j->streams_, [](const auto& w) { return w.expired(); });
        const auto mine = std::count_if(j->streams_.begin(), j->streams_.end(), [&](const auto& w) {
          const auto other = w.lock();
          return other && other->handle() == who.handle;
        });
        if (j->stopping_) return problem("serverUnavailable", 503, "the mail worker is stopping");
        if (mine >= 8 || j->streams_.size() >= 10000) return problem("limit", 400, "too many push connections", {{"limit", "pushConnections"}});
        stream->start();  // under mutex_: stop_jmap_push sees every stream that started
        j->streams_.push_back(stream);
      }
      http::Response r;
      r.content_type = "text/event-stream";
      r.headers.emplace_back("Cache-Control", "no-cache");
      r.stream = stream;
      return r;
    });
  }, "JMAP push as server-sent events (RFC 8620 7.3)");
  // RFC 8887: the "jmap" subprotocol, after the member's credentials (401 without them).
  http::WebSocketHandlers ws;
  ws.subprotocol = "jmap";
  ws.max_message_bytes = j->context_.limits.max_size_request;
  ws.admit = [j](const http::Request& q, std::function<void(std::optional<http::Response>)> answer) {
    j->context_.runner([j, q, answer = std::move(answer)] {
      try {
        if (!j->member(q)) return answer(unauthorized());
        {
          std::lock_guard lock(j->mutex_);
          if (j->stopping_) return answer(problem("serverUnavailable", 503, "the mail worker is stopping"));
        }
        answer(std::nullopt);
      } catch (const Error& e) {
        answer(http::Response::bytes(e.status(), std::string(e.what()) + "\n", "text/plain"));
      } catch (const std::exception&) {
        answer(http::Response::bytes(500, "internal error\n", "text/plain"));
      }
    });
  };
  ws.on_open = [j](const std::shared_ptr<http::WebSocket>& socket) {
    std::lock_guard lock(j->mutex_);
    j->sockets_[socket->id()] = std::make_shared<JmapSocket>(j->context_, socket);
  };
  ws.on_close = [j](const std::shared_ptr<http::WebSocket>& socket) {
    std::shared_ptr<JmapSocket> gone;
    {
      std::lock_guard lock(j->mutex_);
      const auto it = j->sockets_.find(socket->id());
      if (it == j->sockets_.end()) return;
      gone = it->second;
      j->sockets_.erase(it);
    }
    gone->closed();
  };
  ws.on_message = [j](const std::shared_ptr<http::WebSocket>& socket, std::string text) {
    std::shared_ptr<JmapSocket> state;
    {
      std::lock_guard lock(j->mutex_);
      const auto it = j->sockets_.find(socket->id());
      if (it == j->sockets_.end()) return;
      state = it->second;
    }
    if (state->in_flight.fetch_add(1) >= j->context_.limits.max_concurrent_requests) {
      --state->in_flight;
      json refused = problem_body("limit", 400, "too many requests at once on this socket", {{"limit", "maxConcurrentRequests"}});
      refused["@type"] = "RequestError";
      socket->send(refused.dump());
      return;
    }
    j->context_.runner([j, socket, state, text = std::move(text)] {
      struct Done {
        JmapSocket& socket;
        ~Done() { --socket.in_flight; }
      } done{*state};
      // RFC 8887 4.3.4: a RequestError names the request it answers, when it had an id.
      auto error = [&](json problem_object, const json& id) {
        problem_object["@type"] = "RequestError";
        if (!id.is_null()) problem_object["requestId"] = id;
        socket->send(problem_object.dump());
      };
      try {
        const auto who = j->member(socket->request());  // cached since the handshake
        if (!who) return socket->close(1008, "credentials no longer valid");
        state->set_member(who->handle);
        json message;
        try {
          message = parse_json(text);
        } catch (const std::exception& e) {
          return error(problem_body("notJSON", 400, std::string("the message is not JSON: ") + e.what()), nullptr);
        }
        const json id = message.is_object() && message.contains("id") && message["id"].is_string() ? message["id"] : json(nullptr);
        const auto type = message.is_object() ? message.value("@type", json(nullptr)) : json(nullptr);
        if (type == "Request") {
          Jmap::Slot slot(j->mutex_, j->requests_, who->handle, j->context_.limits.max_concurrent_requests);
          if (!slot.taken()) return error(problem_body("limit", 400, "too many requests at once", {{"limit", "maxConcurrentRequests"}}), id);
          json answer = j->run_request(message, *who);
          if (answer.contains("status")) return error(std::move(answer), id);
          answer["@type"] = "Response";
          if (!id.is_null()) answer["requestId"] = id;
          socket->send(answer.dump());
        } else if (type == "WebSocketPushEnable") {
          std::set<std::string> types;
          const auto data_types = message.value("dataTypes", json(nullptr));
          if (data_types.is_array())
            for (const auto& t : data_types)
              if (t.is_string()) types.insert(t.get<std::string>());
          const auto push_state = message.value("pushState", json(nullptr));
          state->enable(who->handle, std::move(types), push_state.is_string() ? push_state.get<std::string>() : std::string());
        } else if (type == "WebSocketPushDisable") {
          state->disable();
        } else {
          error(problem_body("notRequest", 400, "@type is Request, WebSocketPushEnable or WebSocketPushDisable (RFC 8887 4.3)"), id);
        }
      } catch (const Error& e) {
        error(problem_body(e.status() == 429 ? "limit" : "serverFail", e.status(), e.what()), nullptr);
      } catch (const std::exception& e) {
        spdlog::error("jmap websocket: {}", e.what());
        error(problem_body("serverFail", 500, "internal error"), nullptr);
      }
    });
  };
  router.add_websocket("/jmap/ws", std::move(ws));
  return jmap;
}

}  // namespace coop::mail
