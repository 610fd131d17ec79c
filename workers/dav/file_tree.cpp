// Generic WebDAV resources in dav.db (files, collections, dead properties).
#include "workers/dav/file_tree.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <mutex>

#include "common/blob_store.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/http/date.h"
#include "common/sqlite.h"
#include "common/text.h"
#include "workers/dav/dav_xml.h"

namespace coop::dav {

namespace {

using http::Request;
using http::Response;

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE files (
        owner         TEXT NOT NULL,
        path          TEXT NOT NULL,
        is_collection INTEGER NOT NULL,
        data          BLOB NOT NULL DEFAULT '',
        content_type  TEXT NOT NULL DEFAULT '',
        etag          TEXT NOT NULL,
        modified_at   INTEGER NOT NULL,
        PRIMARY KEY (owner, path)
      ) WITHOUT ROWID;
      CREATE TABLE file_props (
        owner TEXT NOT NULL,
        path  TEXT NOT NULL,
        ns    TEXT NOT NULL,
        name  TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (owner, path, ns, name)
      ) WITHOUT ROWID;
    )sql"},
    // File contents move out to the blob store (blobs/dav-files/), so files of any size are
    // streamed to disk and back; rows from before keep theirs in data.
    {2, R"sql(
      ALTER TABLE files ADD COLUMN blob TEXT;
      ALTER TABLE files ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
      UPDATE files SET size = length(data);
      CREATE INDEX files_by_blob ON files (blob) WHERE blob IS NOT NULL;
    )sql"},
};

// "/dav/files/alice/a/b/" -> "a/b"; nullopt when the path leaves the tree or is not in it.
std::optional<std::string> relative(const std::string& path, const std::string& owner) {
  const std::string prefix = "/dav/files/" + owner;
  std::string decoded;
  if (!percent_decode(path, decoded) || decoded.rfind(prefix, 0) != 0) return std::nullopt;
  std::string rest = decoded.substr(prefix.size());
  if (!rest.empty() && rest[0] != '/') return std::nullopt;
  std::string out;
  std::size_t start = 0;
  while (start < rest.size()) {
    auto end = rest.find('/', start);
    if (end == std::string::npos) end = rest.size();
    const auto part = rest.substr(start, end - start);
    if (part == "..") return std::nullopt;  // never outside the member's tree
    if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
    start = end + 1;
  }
  return out;
}

std::string parent_of(const std::string& rel) {
  const auto slash = rel.rfind('/');
  return slash == std::string::npos ? "" : rel.substr(0, slash);
}

Response status(int code) {
  auto r = Response::bytes(code, "", "");
  r.headers.emplace_back("DAV", "1, 3, calendar-access, addressbook, extended-mkcol");
  return r;
}

const QName kResourcetype{std::string(kDav), "resourcetype"};

}  // namespace

// RFC 4918 6 and 10.4: write locks, kept in memory (a restart releases them, which clients
// treat as an expired lock), and the If header's state and ETag conditions.
struct Lock {
  std::string owner_handle;
  std::string token;  // opaquelocktoken:<uuid>
  std::string path;
  bool infinite = true;
  bool exclusive = true;
  std::string owner_xml;
  int64_t timeout = 3600;
  std::chrono::steady_clock::time_point expires;
};

struct Condition {
  bool negate = false;
  bool is_token = true;
  std::string value;
};

// RFC 4918 10.4.2: If = 1*No-tag-list | 1*Tagged-list; resource tags are taken to name the
// request URI (coop-dav keeps no cross-resource state). nullopt when malformed.
std::optional<std::vector<std::vector<Condition>>> parse_if(const std::string& header) {
  std::vector<std::vector<Condition>> lists;
  std::size_t i = 0;
  auto skip = [&] {
    while (i < header.size() && std::isspace(static_cast<unsigned char>(header[i]))) ++i;
  };
  while (true) {
    skip();
    if (i >= header.size()) break;
    if (header[i] == '<') {  // a resource tag
      const auto end = header.find('>', i);
      if (end == std::string::npos) return std::nullopt;
      i = end + 1;
      continue;
    }
    if (header[i] != '(') return std::nullopt;
    ++i;
    std::vector<Condition> list;
    while (true) {
      skip();
      if (i >= header.size()) return std::nullopt;
      if (header[i] == ')') {
        ++i;
        break;
      }
      Condition c;
      if (header.compare(i, 3, "Not") == 0) {
        c.negate = true;
        i += 3;
        skip();
      }
      if (i >= header.size()) return std::nullopt;
      const char open = header[i];
      if (open != '<' && open != '[') return std::nullopt;
      const auto end = header.find(open == '<' ? '>' : ']', i);
      if (end == std::string::npos) return std::nullopt;
      c.is_token = open == '<';
      c.value = header.substr(i + 1, end - i - 1);
      i = end + 1;
      list.push_back(std::move(c));
    }
    if (list.empty()) return std::nullopt;
    lists.push_back(std::move(list));
  }
  return lists;
}

std::string new_token() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[64];
  std::snprintf(out, sizeof out, "opaquelocktoken:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

bool within(const std::string& path, const std::string& root) {
  return root.empty() || path == root || path.rfind(root + "/", 0) == 0;
}

struct FileTree::Impl {
  std::mutex mutex;
  std::unique_ptr<sqlite::Database> db;
  std::vector<Lock> locks;
  BlobStore blobs;

  explicit Impl(std::filesystem::path blob_root) : blobs(std::move(blob_root)) {}

  struct Entry {
    std::string path;
    bool collection = false;
    std::string data, content_type, etag;
    int64_t modified_at = 0;
    std::string blob;  // the content's sha256 in the blob store; empty: in data (older rows)
    int64_t size = 0;
  };

  static constexpr const char* kColumns = "path, is_collection, data, content_type, etag, modified_at, blob, size";

  static Entry read_entry(sqlite::Statement& s) {
    return Entry{s.column_text(0), s.column_int64(1) != 0, s.column_text(2), s.column_text(3), s.column_text(4),
                 s.column_int64(5), s.column_is_null(6) ? std::string() : s.column_text(6), s.column_int64(7)};
  }

  // Blobs no row refers to any more go (several rows may share one: COPY, equal files).
  void release(const std::vector<std::string>& shas) {
    for (const auto& sha : shas) {
      auto& used = db->prepare("SELECT 1 FROM files WHERE blob = ?1 LIMIT 1");
      used.bind(1, sha);
      const bool referenced = used.step();
      used.reset();
      if (!referenced) blobs.remove(sha);
    }
  }

  std::vector<std::string> blobs_under(const std::string& owner, const std::string& path) {
    auto& s = db->prepare("SELECT blob FROM files WHERE owner = ?1 AND blob IS NOT NULL "
                          "AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')");
    s.bind(1, owner).bind(2, path);
    std::vector<std::string> out;
    while (s.step()) out.push_back(s.column_text(0));
    s.reset();
    return out;
  }

  void purge_locks() {
    const auto now = std::chrono::steady_clock::now();
    locks.erase(std::remove_if(locks.begin(), locks.end(), [&](const Lock& l) { return l.expires <= now; }), locks.end());
  }

  // Locks that cover path: on it, or on an ancestor with depth infinity.
  std::vector<const Lock*> covering(const std::string& owner, const std::string& path) {
    std::vector<const Lock*> out;
    for (const auto& l : locks)
      if (l.owner_handle == owner && (l.path == path || (l.infinite && within(path, l.path)))) out.push_back(&l);
    return out;
  }

  // RFC 4918 10.4: the If header as a whole; nullopt when there is none.
  std::optional<bool> if_holds(const std::string& header, const std::string& owner, const std::string& path,
                               const std::optional<Entry>& entry) {
    if (header.empty()) return std::nullopt;
    const auto lists = parse_if(header);
    if (!lists) return false;
    const auto held = covering(owner, path);
    for (const auto& list : *lists) {
      bool all = true;
      for (const auto& c : list) {
        bool ok;
        if (c.is_token)
          ok = std::any_of(held.begin(), held.end(), [&](const Lock* l) { return l->token == c.value; });
        else
          ok = entry && entry->etag == c.value;
        all = all && (c.negate ? !ok : ok);
      }
      if (all) return true;
    }
    return false;
  }

  static std::vector<std::string> submitted_tokens(const std::string& header) {
    std::vector<std::string> out;
    if (const auto lists = parse_if(header))
      for (const auto& list : *lists)
        for (const auto& c : list)
          if (c.is_token && !c.negate) out.push_back(c.value);
    return out;
  }

  // 423 unless every lock on path (and, when deep, below it) has its token in the If header.
  bool may_modify(const std::string& owner, const std::string& path, const std::string& if_header, bool deep) {
    const auto tokens = submitted_tokens(if_header);
    for (const auto& l : locks) {
      if (l.owner_handle != owner) continue;
      const bool applies = l.path == path || (l.infinite && within(path, l.path)) || (deep && within(l.path, path));
      if (applies && std::find(tokens.begin(), tokens.end(), l.token) == tokens.end()) return false;
    }
    return true;
  }

  void drop_locks(const std::string& owner, const std::string& path) {
    locks.erase(std::remove_if(locks.begin(), locks.end(),
                               [&](const Lock& l) { return l.owner_handle == owner && within(l.path, path); }),
                locks.end());
  }

  std::string activelock(const Lock& l, const std::string& href) {
    return "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope>" +
           std::string(l.exclusive ? "<D:exclusive/>" : "<D:shared/>") + "</D:lockscope><D:depth>" +
           (l.infinite ? "infinity" : "0") + "</D:depth>" + (l.owner_xml.empty() ? "" : "<D:owner>" + l.owner_xml + "</D:owner>") +
           "<D:timeout>Second-" + std::to_string(l.timeout) + "</D:timeout><D:locktoken>" + href_xml(l.token) +
           "</D:locktoken><D:lockroot>" + href_xml(href) + "</D:lockroot></D:activelock>";
  }


  void ensure_root(const std::string& owner) {
    db->prepare("INSERT OR IGNORE INTO files (owner, path, is_collection, etag, modified_at) VALUES (?1, '', 1, '\"root\"', ?2)")
        .bind(1, owner)
        .bind(2, static_cast<int64_t>(::time(nullptr)))
        .run();
  }

  std::optional<Entry> find(const std::string& owner, const std::string& path) {
    auto& s = db->prepare(std::string("SELECT ") + kColumns + " FROM files WHERE owner = ?1 AND path = ?2");
    s.bind(1, owner).bind(2, path);
    if (!s.step()) return std::nullopt;
    Entry e = read_entry(s);
    s.reset();
    return e;
  }

  std::vector<Entry> subtree(const std::string& owner, const std::string& path, bool children_only) {
    auto& s = db->prepare(std::string("SELECT ") + kColumns + " FROM files WHERE owner = ?1 "
                          "AND (?2 = '' OR path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/') ORDER BY path");
    s.bind(1, owner).bind(2, path);
    std::vector<Entry> out;
    while (s.step()) {
      Entry e = read_entry(s);
      if (children_only) {
        if (e.path == path) continue;
        const auto rest = path.empty() ? e.path : e.path.substr(path.size() + 1);
        if (rest.find('/') != std::string::npos) continue;
      }
      out.push_back(std::move(e));
    }
    s.reset();
    return out;
  }

  void remove_tree(const std::string& owner, const std::string& path) {
    for (const char* table : {"files", "file_props"})
      db->prepare(std::string("DELETE FROM ") + table +
                  " WHERE owner = ?1 AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')")
          .bind(1, owner)
          .bind(2, path)
          .run();
  }

  std::string href(const std::string& owner, const Entry& e) {
    std::string out = "/dav/files/" + percent_encode(owner) + "/";
    std::size_t start = 0;
    while (start < e.path.size()) {
      auto end = e.path.find('/', start);
      if (end == std::string::npos) end = e.path.size();
      out += percent_encode(e.path.substr(start, end - start)) + "/";
      start = end + 1;
    }
    if (!e.collection && out.back() == '/' && !e.path.empty()) out.pop_back();
    return out;
  }

  std::vector<PropValue> props(const std::string& owner, const Entry& e, const PropfindRequest& request) {
    std::vector<PropValue> live = {
        {kResourcetype, e.collection ? std::optional<std::string>("<D:collection/>") : std::optional<std::string>(""), 200},
        {{std::string(kDav), "getlastmodified"}, http::http_date(e.modified_at), 200},
        {{std::string(kDav), "getetag"}, xml_escape(e.etag), 200}};
    if (!e.collection) {
      live.push_back({{std::string(kDav), "getcontentlength"}, std::to_string(e.size), 200});
      live.push_back({{std::string(kDav), "getcontenttype"}, xml_escape(e.content_type.empty() ? "application/octet-stream" : e.content_type), 200});
    }
    std::string discovery;
    for (const auto* l : covering(owner, e.path)) discovery += activelock(*l, href(owner, Entry{l->path, true, {}, {}, {}, 0}));
    live.push_back({{std::string(kDav), "lockdiscovery"}, discovery, 200});
    live.push_back({{std::string(kDav), "supportedlock"},
                    std::string("<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
                                "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"),
                    200});
    std::vector<PropValue> dead;
    auto& s = db->prepare("SELECT ns, name, value FROM file_props WHERE owner = ?1 AND path = ?2 ORDER BY ns, name");
    s.bind(1, owner).bind(2, e.path);
    while (s.step()) dead.push_back({{s.column_text(0), s.column_text(1)}, s.column_text(2), 200});
    s.reset();
    std::vector<PropValue> all = live;
    all.insert(all.end(), dead.begin(), dead.end());
    if (request.kind == PropfindRequest::kAllprop) return all;
    if (request.kind == PropfindRequest::kPropname) {
      for (auto& p : all) p.value.reset();
      return all;
    }
    std::vector<PropValue> out;
    for (const auto& want : request.props) {
      auto it = std::find_if(all.begin(), all.end(), [&](const PropValue& p) { return p.name == want; });
      out.push_back(it == all.end() ? PropValue{want, std::nullopt, 404} : *it);
    }
    return out;
  }

  void copy_tree(const std::string& owner, const std::string& from, const std::string& to, bool deep) {
    const auto now = static_cast<int64_t>(::time(nullptr));
    for (const auto& e : subtree(owner, from, false)) {
      if (!deep && e.path != from) continue;
      const std::string target = to + e.path.substr(from.size());
      auto& insert = db->prepare(
          "INSERT OR REPLACE INTO files (owner, path, is_collection, data, content_type, etag, modified_at, blob, size) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
      insert.bind(1, owner).bind(2, target).bind(3, e.collection ? 1 : 0).bind_blob(4, e.data).bind(5, e.content_type);
      insert.bind(6, e.etag).bind(7, now).bind(9, e.size);
      if (e.blob.empty()) insert.bind_null(8);
      else insert.bind(8, e.blob);
      insert.run();
      db->prepare("INSERT OR REPLACE INTO file_props (owner, path, ns, name, value) "
                  "SELECT owner, ?3, ns, name, value FROM file_props WHERE owner = ?1 AND path = ?2")
          .bind(1, owner)
          .bind(2, e.path)
          .bind(3, target)
          .run();
    }
  }
};

FileTree::FileTree(const std::filesystem::path& database, const std::filesystem::path& blob_root)
    : impl_(std::make_unique<Impl>(blob_root)) {
  // Uploads cut short by a crash leave their spool files: nothing else writes there, and
  // nothing is under way while the worker starts.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(impl_->blobs.spool_dir(), ec)) {
    std::error_code ignored;
    std::filesystem::remove(entry.path(), ignored);
  }
  impl_->db = sqlite::Database::open(database);
  impl_->db->migrate(kMigrations);
}

FileTree::~FileTree() = default;

int64_t FileTree::usage(const std::string& handle) {
  std::lock_guard lock(impl_->mutex);
  auto& s = impl_->db->prepare("SELECT COALESCE(SUM(size), 0) FROM files WHERE owner = ?1 AND is_collection = 0");
  s.bind(1, handle);
  s.step();
  const auto used = s.column_int64(0);
  s.reset();
  return used;
}

std::filesystem::path FileTree::spool_dir() const { return impl_->blobs.spool_dir(); }

Response FileTree::handle(const Request& q, const std::string& handle) {
  const auto rel = relative(q.raw_path(), handle);
  if (!rel) return status(q.path.rfind("/dav/files/" + handle, 0) == 0 ? 403 : 404);
  std::lock_guard lock(impl_->mutex);
  impl_->ensure_root(handle);
  const auto now = static_cast<int64_t>(::time(nullptr));
  const auto existing = impl_->find(handle, *rel);
  const auto parent = rel->empty() ? std::optional<Impl::Entry>{} : impl_->find(handle, parent_of(*rel));
  const bool parent_ok = rel->empty() || (parent && parent->collection);
  impl_->purge_locks();
  const auto if_header = q.header("if");
  // RFC 4918 10.4.1: a false If header fails the request before anything else.
  if (const auto holds = impl_->if_holds(if_header, handle, *rel, existing); holds && !*holds && q.method != "LOCK")
    return status(412);
  const bool modifies = q.method == "PUT" || q.method == "MKCOL" || q.method == "PROPPATCH" || q.method == "DELETE" ||
                        q.method == "MOVE";
  if (modifies && !impl_->may_modify(handle, *rel, if_header, q.method == "DELETE" || q.method == "MOVE"))
    return status(423);

  if (q.method == "LOCK") {
    const auto request = parse_lockinfo(q.body);
    int64_t timeout = 3600;
    const auto timeout_header = q.header("timeout");
    if (timeout_header.rfind("Second-", 0) == 0) timeout = std::clamp<int64_t>(std::atoll(timeout_header.c_str() + 7), 1, 3600);
    Lock* lock = nullptr;
    bool created = false;
    if (request.refresh) {
      // RFC 4918 9.10.2: a refresh names its lock in the If header.
      const auto tokens = Impl::submitted_tokens(if_header);
      for (auto& l : impl_->locks)
        if (l.owner_handle == handle && std::find(tokens.begin(), tokens.end(), l.token) != tokens.end() &&
            (l.path == *rel || (l.infinite && within(*rel, l.path))))
          lock = &l;
      if (!lock) return status(412);
    } else {
      const bool infinite = q.header("depth", "infinity") != "0";
      for (const auto& l : impl_->locks) {
        if (l.owner_handle != handle) continue;
        const bool overlaps = l.path == *rel || (l.infinite && within(*rel, l.path)) || (infinite && within(l.path, *rel));
        if (overlaps && (l.exclusive || request.exclusive)) return status(423);
      }
      if (!existing) {
        // RFC 4918 9.10.4: locking an unmapped URL makes an empty resource.
        if (!parent_ok) return status(409);
        impl_->db->prepare("INSERT INTO files (owner, path, is_collection, etag, modified_at) VALUES (?1, ?2, 0, ?3, ?4)")
            .bind(1, handle)
            .bind(2, *rel)
            .bind(3, "\"" + sha256_hex("").substr(0, 24) + "\"")
            .bind(4, now)
            .run();
        created = true;
      }
      impl_->locks.push_back(Lock{handle, new_token(), *rel, infinite, request.exclusive, request.owner, timeout, {}});
      lock = &impl_->locks.back();
    }
    lock->timeout = timeout;
    lock->expires = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
    const auto entry = impl_->find(handle, lock->path);
    const std::string root_href = impl_->href(handle, entry ? *entry : Impl::Entry{lock->path, false, {}, {}, {}, 0});
    auto r = Response::bytes(created ? 201 : 200,
                             "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>" +
                                 impl_->activelock(*lock, root_href) + "</D:lockdiscovery></D:prop>",
                             "application/xml; charset=utf-8");
    r.headers.emplace_back("Lock-Token", "<" + lock->token + ">");
    return r;
  }
  if (q.method == "UNLOCK") {
    auto token = q.header("lock-token");
    if (token.size() > 2 && token.front() == '<' && token.back() == '>') token = token.substr(1, token.size() - 2);
    for (auto it = impl_->locks.begin(); it != impl_->locks.end(); ++it) {
      if (it->owner_handle == handle && it->token == token && (it->path == *rel || (it->infinite && within(*rel, it->path)))) {
        impl_->locks.erase(it);
        return status(204);
      }
    }
    return status(409);  // RFC 4918 9.11.1: lock-token-matches-request-uri
  }

  if (q.method == "MKCOL") {
    if (!q.body.empty()) return status(415);  // RFC 4918 9.3.1: a body we do not understand
    if (existing) return status(405);
    if (!parent_ok) return status(409);
    impl_->db->prepare("INSERT INTO files (owner, path, is_collection, etag, modified_at) VALUES (?1, ?2, 1, ?3, ?4)")
        .bind(1, handle)
        .bind(2, *rel)
        .bind(3, "\"" + sha256_hex(*rel + std::to_string(now)).substr(0, 16) + "\"")
        .bind(4, now)
        .run();
    return status(201);
  }
  if (q.method == "PUT") {
    if (existing && existing->collection) return status(405);
    if (!parent_ok) return status(409);
    // The content is durable in the blob store (fsynced, renamed into place) before the row
    // that names it commits: a 201 means both are on disk.
    std::string sha;
    int64_t size = 0;
    if (!q.body_file.empty()) {
      auto writer = impl_->blobs.adopt(q.body_file);
      size = static_cast<int64_t>(writer.size());
      sha = writer.commit();
    } else {
      sha = impl_->blobs.put(q.body);
      size = static_cast<int64_t>(q.body.size());
    }
    const std::string etag = "\"" + sha.substr(0, 24) + "\"";
    impl_->db->prepare("INSERT OR REPLACE INTO files (owner, path, is_collection, data, content_type, etag, modified_at, blob, size) "
                       "VALUES (?1, ?2, 0, '', ?3, ?4, ?5, ?6, ?7)")
        .bind(1, handle)
        .bind(2, *rel)
        .bind(3, q.header("content-type"))
        .bind(4, etag)
        .bind(5, now)
        .bind(6, sha)
        .bind(7, size)
        .run();
    if (existing && !existing->blob.empty() && existing->blob != sha) impl_->release({existing->blob});
    auto r = status(existing ? 204 : 201);
    r.headers.emplace_back("ETag", etag);
    return r;
  }
  if (q.method == "GET" || q.method == "HEAD") {
    if (!existing) return status(404);
    auto r = Response::bytes(200, existing->collection ? std::string() : existing->data,
                             existing->collection ? "text/plain" : (existing->content_type.empty() ? "application/octet-stream" : existing->content_type));
    if (!existing->collection && !existing->blob.empty()) {
      // Sent from the blob a piece at a time (common/http), whatever its size.
      const int fd = ::open(impl_->blobs.path_of(existing->blob).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw Error(errc::kIoError, "the content of " + *rel + " is missing from the blob store", 500);
      r.file = std::make_shared<Response::File>();
      r.file->fd = fd;
      r.file->size = static_cast<uint64_t>(existing->size);
    }
    r.headers.emplace_back("ETag", existing->etag);
    r.headers.emplace_back("Last-Modified", http::http_date(existing->modified_at));
    return r;
  }
  if (q.method == "DELETE") {
    if (!existing) return status(404);
    if (rel->empty()) return status(403);
    const auto released = impl_->blobs_under(handle, *rel);
    sqlite::Transaction tx(*impl_->db);
    impl_->remove_tree(handle, *rel);
    tx.commit();
    impl_->release(released);
    impl_->drop_locks(handle, *rel);
    return status(204);
  }
  if (q.method == "PROPFIND") {
    if (!existing) return status(404);
    const auto depth = q.header("depth", "infinity");
    const auto request = parse_propfind(q.body);
    Multistatus ms;
    ms.add_response(impl_->href(handle, *existing), impl_->props(handle, *existing, request));
    if (existing->collection && depth != "0")
      for (const auto& child : impl_->subtree(handle, *rel, depth == "1"))
        if (child.path != *rel) ms.add_response(impl_->href(handle, child), impl_->props(handle, child, request));
    return Response::bytes(207, ms.str(), "application/xml; charset=utf-8");
  }
  if (q.method == "PROPPATCH") {
    if (!existing) return status(404);
    const auto request = parse_proppatch(q.body);
    std::vector<PropValue> results;
    bool failed = false;
    for (const auto& [name, value] : request.changes) {
      // Live properties are the server's (RFC 4918 9.2: 403 cannot-modify-protected-property).
      const bool live = name.ns == kDav && (name.name == "getetag" || name.name == "getcontentlength" ||
                                            name.name == "resourcetype" || name.name == "getlastmodified" ||
                                            name.name == "lockdiscovery" || name.name == "supportedlock");
      results.push_back({name, std::nullopt, live ? 403 : 200});
      failed = failed || live;
    }
    if (failed) {
      for (auto& r : results)
        if (r.status == 200) r.status = 424;
    } else {
      sqlite::Transaction tx(*impl_->db);
      for (const auto& [name, value] : request.changes) {
        if (value)
          impl_->db->prepare("INSERT OR REPLACE INTO file_props (owner, path, ns, name, value) VALUES (?1, ?2, ?3, ?4, ?5)")
              .bind(1, handle)
              .bind(2, *rel)
              .bind(3, name.ns)
              .bind(4, name.name)
              .bind(5, *value)
              .run();
        else
          impl_->db->prepare("DELETE FROM file_props WHERE owner = ?1 AND path = ?2 AND ns = ?3 AND name = ?4")
              .bind(1, handle)
              .bind(2, *rel)
              .bind(3, name.ns)
              .bind(4, name.name)
              .run();
      }
      tx.commit();
    }
    Multistatus ms;
    ms.add_response(impl_->href(handle, *existing), results);
    return Response::bytes(207, ms.str(), "application/xml; charset=utf-8");
  }
  if (q.method == "COPY" || q.method == "MOVE") {
    if (!existing) return status(404);
    std::string destination = q.header("destination");
    if (const auto scheme = destination.find("://"); scheme != std::string::npos) {
      const auto slash = destination.find('/', scheme + 3);
      destination = slash == std::string::npos ? "/" : destination.substr(slash);
    }
    const auto to = relative(destination, handle);
    if (!to || to->empty()) return status(403);
    if (*to == *rel) return status(403);
    // Into itself (every destination is inside the root), or over one of its own ancestors,
    // whose removal with Overwrite: T would take the source with it: RFC 4918 9.8.5 and
    // 9.9.4 leave 403 for what cannot be done.
    if (rel->empty() || to->rfind(*rel + "/", 0) == 0) return status(403);
    if (rel->rfind(*to + "/", 0) == 0) return status(403);
    const auto target_parent = impl_->find(handle, parent_of(*to));
    if (!target_parent || !target_parent->collection) return status(409);
    const bool target_exists = impl_->find(handle, *to).has_value();
    if (target_exists && q.header("overwrite", "T") == "F") return status(412);
    if (!impl_->may_modify(handle, *to, if_header, true)) return status(423);
    const bool deep = q.method == "MOVE" || q.header("depth", "infinity") != "0";
    const auto replaced = target_exists ? impl_->blobs_under(handle, *to) : std::vector<std::string>{};
    sqlite::Transaction tx(*impl_->db);
    if (target_exists) impl_->remove_tree(handle, *to);
    impl_->copy_tree(handle, *rel, *to, deep);
    if (q.method == "MOVE") impl_->remove_tree(handle, *rel);
    tx.commit();
    impl_->release(replaced);
    if (q.method == "MOVE") impl_->drop_locks(handle, *rel);
    return status(target_exists ? 204 : 201);
  }
  return status(405);
}

}  // namespace coop::dav
