// RFC 8555 7 over libcurl: directory, nonces, account, order, authorizations, finalize,
// certificate download. Every request after the directory is a JWS POST (6.2), POST-as-GET
// for reads (6.3).
#include "workers/supervisor/acme_client.h"

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "common/base64.h"
#include "common/error.h"
#include "common/net/acme_challenge.h"
#include "common/version.h"

namespace coop::acme {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::size_t kMaxResponse = 1 << 20;  // a certificate chain or an order is far smaller
// RFC 8555 6.5: a refused nonce is retried with the fresh one the refusal carries. Pebble in
// the tests refuses one in five; five retries still failed once in a full run (a 1 in 15,000
// chance per request), ten make it 1 in 10 million.
constexpr int kNonceRetries = 10;

[[noreturn]] void fail(const std::string& what) { throw Error(errc::kTlsError, what, 502); }

struct Reply {
  long status = 0;
  std::string body;
  std::string location, nonce, content_type;
  long retry_after = 0;  // seconds, 0 when absent
};

std::string trimmed(std::string value) {
  value.erase(0, value.find_first_not_of(" \t"));
  value.erase(value.find_last_not_of(" \t\r\n") + 1);
  return value;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() + size * count > kMaxResponse) return 0;
  body->append(data, size * count);
  return size * count;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* out) {
  auto* reply = static_cast<Reply*>(out);
  const std::string line(data, size * count);
  const auto colon = line.find(':');
  if (colon == std::string::npos) return size * count;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  const std::string value = trimmed(line.substr(colon + 1));
  if (name == "location") reply->location = value;
  if (name == "replay-nonce") reply->nonce = value;
  if (name == "content-type") reply->content_type = value;
  if (name == "retry-after") reply->retry_after = std::clamp(std::atol(value.c_str()), 0L, 3600L);
  return size * count;
}

class Session {
 public:
  Session(const Settings& settings, const AccountKey& account) : settings_(settings), account_(account) {}

  void open() {
    const auto reply = request("GET", settings_.directory, nullptr);
    if (reply.status != 200) fail("the ACME directory " + settings_.directory + " answered " + std::to_string(reply.status));
    directory_ = parse(reply, "directory");
    for (const char* field : {"newNonce", "newAccount", "newOrder"})
      if (!directory_.contains(field) || !directory_[field].is_string())
        fail("the ACME directory has no " + std::string(field));
  }

  // RFC 8555 7.3: newAccount with the key's JWK finds the account or creates it.
  void account() {
    json payload = {{"termsOfServiceAgreed", true}};
    if (!settings_.contact.empty()) payload["contact"] = settings_.contact;
    const auto reply = post(directory_["newAccount"], payload);
    if (reply.location.empty()) fail("the ACME server named no account URL");
    kid_ = reply.location;
  }

  // POST (payload an object) or POST-as-GET (payload null), retried with a fresh nonce on
  // badNonce (6.5); throws on any other problem.
  Reply post(const std::string& url, const json& payload, const char* accept = nullptr) {
    for (int attempt = 0;; ++attempt) {
      if (nonce_.empty()) fresh_nonce();
      const auto body = account_.sign(payload, std::exchange(nonce_, std::string()), url, kid_).dump();
      auto reply = request("POST", url, &body, accept);
      if (!reply.nonce.empty()) nonce_ = reply.nonce;
      if (reply.status < 400) return reply;
      const auto problem = problem_of(reply);
      if (problem.value("type", "") == "urn:ietf:params:acme:error:badNonce" && attempt < kNonceRetries) {
        spdlog::debug("ACME: {} refused the nonce; again with a fresh one", url);
        continue;
      }
      fail(describe(problem, reply.status, url));
    }
  }

  const json& directory() const { return directory_; }

  static json parse(const Reply& reply, const std::string& what) {
    auto value = json::parse(reply.body, nullptr, false);
    if (value.is_discarded() || !value.is_object()) fail("the ACME server's " + what + " is not a JSON object");
    return value;
  }

  static std::string describe(const json& problem, long status, const std::string& url) {
    std::string text = problem.value("detail", "");
    if (text.empty()) text = "HTTP " + std::to_string(status) + " from " + url;
    if (const auto type = problem.value("type", ""); !type.empty()) text += " (" + type + ")";
    if (problem.contains("subproblems") && problem["subproblems"].is_array())
      for (const auto& sub : problem["subproblems"])
        if (sub.is_object()) text += "; " + sub.value("detail", sub.value("type", ""));
    return text;
  }

 private:
  static json problem_of(const Reply& reply) {
    auto value = json::parse(reply.body, nullptr, false);
    return value.is_object() ? value : json::object();
  }

  void fresh_nonce() {
    const auto reply = request("HEAD", directory_["newNonce"], nullptr);
    if (reply.nonce.empty()) fail("the ACME server gave no Replay-Nonce");
    nonce_ = reply.nonce;
  }

  Reply request(const char* method, const std::string& url, const std::string* body, const char* accept = nullptr) {
    // RFC 8555 6.1: https only (a test may name a private CA that signs the server's certificate).
    if (url.rfind("https://", 0) != 0) fail("ACME URLs must be https: " + url);
    Reply reply;
    CURL* curl = curl_easy_init();
    if (!curl) fail("cannot start libcurl");
    curl_slist* headers = nullptr;
    const std::string agent = std::string("coop/") + kVersion;
    if (body) headers = curl_slist_append(headers, "Content-Type: application/jose+json");
    if (accept) headers = curl_slist_append(headers, (std::string("Accept: ") + accept).c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, agent.c_str());
    if (!settings_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.ca_file.c_str());
    if (headers) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (std::string_view(method) == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body) {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply);
    char error[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    const CURLcode code = curl_easy_perform(curl);
    if (code == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (code != CURLE_OK)
      fail("cannot reach the ACME server at " + url + ": " + (error[0] ? error : curl_easy_strerror(code)));
    return reply;
  }

  const Settings& settings_;
  const AccountKey& account_;
  json directory_;
  std::string nonce_, kid_;
};

// Waits between polls as the server asks (Retry-After), else 0.25, 0.5, 1, 2, 4 s up to 8.
void pause(const Reply& reply, int round, Clock::time_point deadline, const std::string& what) {
  const auto wait = reply.retry_after > 0 ? std::chrono::milliseconds(reply.retry_after * 1000)
                                          : std::chrono::milliseconds(250 << std::min(round, 5));
  if (Clock::now() + wait > deadline) fail("gave up waiting for " + what);
  std::this_thread::sleep_for(wait);
}

// RFC 8555 7.5: publishes the answer to the chosen challenge of one authorization and tells
// the server to validate it; false when the authorization is already valid.
bool answer(Session& session, const Settings& settings, const AccountKey& account, const std::string& url,
            std::string& name, const std::function<void(const std::string&)>& progress) {
  const auto authz = Session::parse(session.post(url, nullptr), "authorization");
  name = authz.value("identifier", json::object()).value("value", "");
  if (authz.value("status", "") == "valid") return false;  // still valid from an earlier order
  progress("authorizing " + name + " by " + settings.challenge);
  json chosen;
  for (const auto& challenge : authz.value("challenges", json::array()))
    if (challenge.is_object() && challenge.value("type", "") == settings.challenge) chosen = challenge;
  if (chosen.is_null()) fail("the ACME server offers no " + settings.challenge + " challenge for " + name);
  const std::string token = chosen.value("token", "");
  const std::string key_authorization_text = key_authorization(token, account.jwk());
  if (settings.challenge == "http-01")
    net::publish_acme_http01(token, key_authorization_text);
  else
    net::publish_acme_tls_alpn01(name, make_tls_alpn01_certificate(name, key_authorization_text));
  session.post(chosen.value("url", ""), json::object());  // 7.5.1: ready to be validated
  return true;
}

// Polls one authorization until the server has decided; throws with its reason when invalid.
void await_validation(Session& session, const std::string& url, const std::string& name, Clock::time_point deadline) {
  Reply reply;
  for (int round = 0;; ++round) {
    pause(reply, round, deadline, "the validation of " + name);
    reply = session.post(url, nullptr);
    const auto authz = Session::parse(reply, "authorization");
    const auto status = authz.value("status", "");
    if (status == "valid") return;
    if (status == "pending") continue;
    // invalid (or deactivated, expired, revoked): the challenge's error says why.
    std::string why;
    for (const auto& challenge : authz.value("challenges", json::array()))
      if (challenge.is_object() && challenge.contains("error") && challenge["error"].is_object())
        why = Session::describe(challenge["error"], 403, url);
    fail("the ACME server did not validate " + name + " (" + status + ")" + (why.empty() ? "" : ": " + why));
  }
}

}  // namespace

Issued obtain_certificate(const Settings& settings, const AccountKey& account, const std::vector<std::string>& names,
                          const std::function<void(const std::string&)>& progress) {
  const auto deadline = Clock::now() + settings.deadline;
  Session session(settings, account);
  progress("reading the directory " + settings.directory);
  session.open();
  session.account();

  json identifiers = json::array();
  for (const auto& name : names) identifiers.push_back({{"type", "dns"}, {"value", name}});
  progress("ordering a certificate");
  auto reply = session.post(session.directory()["newOrder"], {{"identifiers", identifiers}});
  const std::string order_url = reply.location;
  if (order_url.empty()) fail("the ACME server named no order URL");
  auto order = Session::parse(reply, "order");

  struct Withdraw {
    ~Withdraw() { net::withdraw_acme_challenges(); }
  } withdraw;
  // Every challenge is answered first, so that the server validates the names side by side.
  std::vector<std::pair<std::string, std::string>> pending;  // authorization URL, name
  for (const auto& url : order.value("authorizations", json::array())) {
    if (!url.is_string()) continue;
    std::string name;
    if (answer(session, settings, account, url, name, progress)) pending.emplace_back(url, name);
  }
  for (const auto& [url, name] : pending) await_validation(session, url, name, deadline);

  progress("finalizing");
  const auto csr = make_key_and_csr(names, settings.key_type);
  reply = session.post(order.value("finalize", ""), {{"csr", base64url_encode(csr.csr_der)}});
  order = Session::parse(reply, "order");
  for (int round = 0; order.value("status", "") != "valid"; ++round) {
    const auto status = order.value("status", "");
    if (status == "invalid") {
      fail("the ACME server refused the order" +
           (order.contains("error") ? ": " + Session::describe(order["error"], 403, order_url) : std::string()));
    }
    pause(reply, round, deadline, "the certificate");
    reply = session.post(order_url, nullptr);
    order = Session::parse(reply, "order");
  }
  const std::string certificate_url = order.value("certificate", "");
  if (certificate_url.empty()) fail("the ACME server's valid order has no certificate URL");
  progress("downloading the certificate");
  reply = session.post(certificate_url, nullptr, "application/pem-certificate-chain");
  if (reply.body.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    fail("the ACME server's certificate is not a PEM chain");
  return {reply.body, csr.key_pem};
}

}  // namespace coop::acme
