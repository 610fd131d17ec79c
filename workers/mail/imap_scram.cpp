// SCRAM-SHA-256 through libgsasl's server side, with secrets from coop-member.
#include "workers/mail/imap_scram.h"

#include <gsasl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <mutex>
#include <optional>

#include "common/control/client.h"
#include "common/error.h"
#include "common/paths.h"

namespace coop::mail {

struct ScramExchange::Impl {
  const Home& home;
  std::string source;
  Gsasl_session* session = nullptr;
  std::string user;
  std::optional<nlohmann::json> secrets;  // coop-member's answer, once asked
  std::optional<Error> refused;          // throttled, or the registry down

  // The secrets of the user the client named (RFC 5802 5.1 "n="), asked once.
  bool fetch() {
    if (secrets) return true;
    if (refused) return false;
    const char* authid = gsasl_property_fast(session, GSASL_AUTHID);
    user = authid ? authid : "";
    try {
      control::Client member(home.socket("member"));
      const nlohmann::json body = {{"user", user}, {"source", source}};
      const auto response = member.request("POST", "/v1/auth/scram", body.dump(), std::chrono::seconds(30));
      if (response.status == 429) {
        const auto error = nlohmann::json::parse(response.body, nullptr, false);
        const auto details = error.is_object() ? error.value("error", nlohmann::json::object()) : nlohmann::json::object();
        refused = auth::ThrottledError(details.value("message", "too many failed logins"), details.value("retry_after_ms", int64_t{1000}));
        return false;
      }
      response.throw_if_error();
      secrets = response.json();
      return true;
    } catch (const Error& e) {
      refused = e;
      return false;
    }
  }

  static int callback(Gsasl*, Gsasl_session* session, Gsasl_property property) {
    auto* self = static_cast<Impl*>(gsasl_session_hook_get(session));
    if (!self) return GSASL_NO_CALLBACK;
    const char* field = property == GSASL_SCRAM_ITER        ? "iterations"
                        : property == GSASL_SCRAM_SALT      ? "salt"
                        : property == GSASL_SCRAM_STOREDKEY ? "stored_key"
                        : property == GSASL_SCRAM_SERVERKEY ? "server_key"
                                                            : nullptr;
    if (!field || !self->fetch()) return GSASL_NO_CALLBACK;
    const auto& value = self->secrets->at(field);
    // The keys come base64: libgsasl 2.2 reads them so (whatever its header says), as its own
    // `gsasl --mkpasswd` prints them.
    const std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    return gsasl_property_set(session, property, text.c_str());
  }

  static Gsasl* context() {
    static Gsasl* ctx = [] {
      Gsasl* made = nullptr;
      if (gsasl_init(&made) != GSASL_OK) throw Error(errc::kInternal, "GNU SASL did not start", 500);
      gsasl_callback_set(made, &Impl::callback);
      return made;
    }();
    return ctx;
  }
};

ScramExchange::ScramExchange(const Home& home, std::string source) : impl_(std::make_unique<Impl>(Impl{home, std::move(source)})) {
  const int rc = gsasl_server_start(Impl::context(), "SCRAM-SHA-256", &impl_->session);
  if (rc != GSASL_OK) throw Error(errc::kInternal, std::string("SCRAM: ") + gsasl_strerror(rc), 500);
  gsasl_session_hook_set(impl_->session, impl_.get());
  gsasl_property_set(impl_->session, GSASL_SERVICE, "imap");
}

ScramExchange::~ScramExchange() {
  if (impl_->session) gsasl_finish(impl_->session);
}

ScramExchange::Step ScramExchange::step(const std::string& client) {
  char* out = nullptr;
  const int rc = gsasl_step64(impl_->session, client.c_str(), &out);
  Step result;
  result.reply = out ? out : "";
  gsasl_free(out);
  if (rc == GSASL_NEEDS_MORE) {
    result.outcome = Outcome::more;
  } else if (rc == GSASL_OK) {
    // RFC 5802 5.1: an authorization identity other than the user's own is not granted.
    const char* authzid = gsasl_property_fast(impl_->session, GSASL_AUTHZID);
    result.outcome = authzid && *authzid && impl_->user != authzid ? Outcome::failed : Outcome::proved;
  } else {
    spdlog::debug("imap scram for '{}': {}", impl_->user, gsasl_strerror(rc));
    result.outcome = Outcome::failed;
  }
  return result;
}

auth::VerifiedMember ScramExchange::finish(bool proved) {
  if (impl_->refused) throw *impl_->refused;
  control::Client member(impl_->home.socket("member"));
  const nlohmann::json body = {{"user", impl_->user}, {"protocol", "mail"}, {"source", impl_->source}, {"proved", proved}};
  const auto response = member.request("POST", "/v1/auth/scram/outcome", body.dump(), std::chrono::seconds(30));
  response.throw_if_error();
  const auto j = response.json();
  return auth::VerifiedMember{j.value("handle", ""), j.value("name", ""), j.value("role", ""),
                              j.value("groups", std::vector<std::string>{}), j.value("emails", std::vector<std::string>{}),
                              j.value("credential", "")};
}

}  // namespace coop::mail
