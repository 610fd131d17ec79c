// The member portal's pages: plain HTML forms with one stylesheet inline, every text from a
// member or the registry escaped. Rendering only; portal.cpp decides who sees what.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "workers/member/store/member_store.h"

namespace coop::member {

struct PageContext {
  std::string handle, name;
  bool admin = false;
  std::string csrf;  // goes into every form
  bool publisher = false;  // may publish the cooperative's sites
};

// An app password just made: shown on this page only.
struct NewSecret {
  std::string label, secret;
};

std::string login_page(const std::string& error);
std::string dashboard_page(const PageContext& c, const Member& member);
std::string password_page(const PageContext& c, const std::string& error, const std::string& done);
std::string app_passwords_page(const PageContext& c, const std::vector<AppPassword>& passwords, const std::string& error,
                               const NewSecret* made);
std::string logins_page(const PageContext& c, const std::vector<AuditEntry>& entries);
std::string settings_page(const PageContext& c, const nlohmann::json& settings);
std::string takeout_page(const PageContext& c, const std::string& error);
std::string members_page(const PageContext& c, const std::vector<Member>& members, const std::string& error);
std::string forbidden_page(const PageContext& c);
// sites: coop-site's GET /v1/sites; site and versions: GET /v1/sites/NAME and its versions.
std::string sites_page(const PageContext& c, const nlohmann::json& sites, const std::string& error, const std::string& done);
// map_page: the shard's map page, where a click shows a place's coordinates ("" without a map).
std::string site_page(const PageContext& c, const nlohmann::json& site, const nlohmann::json& versions,
                      const std::string& map_page, const std::string& error, const std::string& done);
std::string error_page(int status, const std::string& message);

// text as a QR code (ISO/IEC 18004, through libqrencode), an inline SVG; empty when it does
// not fit one.
std::string qr_svg(const std::string& text);

}  // namespace coop::member
