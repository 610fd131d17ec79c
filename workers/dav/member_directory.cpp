// Members as vCards, from coop-member's control API.
#include "workers/dav/member_directory.h"

#include <nlohmann/json.hpp>

#include <set>

#include "common/control/client.h"
#include "common/paths.h"
#include "workers/dav/store/dav_store.h"
#include "workers/dav/vcard_data.h"

namespace coop::dav {

MemberDirectory::MemberDirectory(const Home& home, DavStore& store, std::string domain)
    : home_(home), store_(store), domain_(std::move(domain)) {}

void MemberDirectory::refresh() {
  std::lock_guard lock(mutex_);
  auto book = store_.collection("coop", "addressbook", "directory");
  if (!book) {
    store_.create_collection("coop", "addressbook", "directory", "Members", "");
    book = store_.collection("coop", "addressbook", "directory");
    store_.grant(book->id, "everyone", "read");
  }
  control::Client client(home_.socket("member"));
  const auto response = client.get("/v1/members?status=active");
  response.throw_if_error();
  std::set<std::string> keep;
  for (const auto& m : response.json()) {
    const std::string handle = m.value("handle", "");
    const std::string name = m.value("name", "").empty() ? handle : m.value("name", "");
    std::vector<std::pair<std::string, std::string>> extra = {{"NICKNAME", handle},
                                                              {"X-MATRIX", "@" + handle + ":" + domain_},
                                                              {"IMPP", "matrix:u/" + handle + ":" + domain_}};
    std::string groups;
    for (const auto& g : m.value("groups", nlohmann::json::array())) groups += (groups.empty() ? "" : ",") + g.get<std::string>();
    if (!groups.empty()) extra.emplace_back("CATEGORIES", groups);
    const auto card = make_vcard("coop-member-" + handle + "@" + domain_, name,
                                 m.value("emails", std::vector<std::string>{}), extra);
    const std::string resource = handle + ".vcf";
    keep.insert(resource);
    const auto existing = store_.resource(book->id, resource);
    if (!existing || existing->data != card) store_.put_resource(book->id, resource, "coop-member-" + handle + "@" + domain_, "VCARD", card);
  }
  for (const auto& r : store_.resources(book->id))
    if (!keep.count(r.name)) store_.delete_resource(book->id, r.name);
}

}  // namespace coop::dav
