// The read-only address book of every active member (name, addresses, handle, Matrix ID,
// groups), owned by the shard and readable by every member, kept in step with the registry.
#pragma once

#include <mutex>
#include <string>

namespace coop {
class Home;
}

namespace coop::dav {

class DavStore;

class MemberDirectory {
 public:
  MemberDirectory(const Home& home, DavStore& store, std::string domain);
  // Rewrites the cards that changed and removes those of members no longer active.
  void refresh();

 private:
  const Home& home_;
  DavStore& store_;
  std::string domain_;
  std::mutex mutex_;
};

}  // namespace coop::dav
