// Generic WebDAV resources in dav.db (files, collections, dead properties).
#include "workers/dav/file_tree.h"

#include <ctime>
#include <mutex>

#include "common/digest.h"
#include "common/error.h"
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
};

std::string http_date(int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char out[64];
  std::strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return out;
}

std::string decode(const std::string& path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && std::isxdigit(static_cast<unsigned char>(path[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(path[i + 2]))) {
      out += static_cast<char>(std::stoi(path.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += path[i];
    }
  }
  return out;
}

// "/dav/files/alice/a/b/" -> "a/b"; nullopt when the path leaves the tree or is not in it.
std::optional<std::string> relative(const std::string& path, const std::string& owner) {
  const std::string prefix = "/dav/files/" + owner;
  const auto decoded = decode(path);
  if (decoded.rfind(prefix, 0) != 0) return std::nullopt;
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

struct FileTree::Impl {
  std::mutex mutex;
  std::unique_ptr<sqlite::Database> db;

  struct Entry {
    std::string path;
    bool collection = false;
    std::string data, content_type, etag;
    int64_t modified_at = 0;
  };

  void ensure_root(const std::string& owner) {
    db->prepare("INSERT OR IGNORE INTO files (owner, path, is_collection, etag, modified_at) VALUES (?1, '', 1, '\"root\"', ?2)")
        .bind(1, owner)
        .bind(2, static_cast<int64_t>(::time(nullptr)))
        .run();
  }

  std::optional<Entry> find(const std::string& owner, const std::string& path) {
    auto& s = db->prepare("SELECT path, is_collection, data, content_type, etag, modified_at FROM files WHERE owner = ?1 AND path = ?2");
    s.bind(1, owner).bind(2, path);
    if (!s.step()) return std::nullopt;
    Entry e{s.column_text(0), s.column_int64(1) != 0, s.column_text(2), s.column_text(3), s.column_text(4), s.column_int64(5)};
    s.reset();
    return e;
  }

  std::vector<Entry> subtree(const std::string& owner, const std::string& path, bool children_only) {
    auto& s = db->prepare(
        "SELECT path, is_collection, data, content_type, etag, modified_at FROM files WHERE owner = ?1 "
        "AND (?2 = '' OR path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/') ORDER BY path");
    s.bind(1, owner).bind(2, path);
    std::vector<Entry> out;
    while (s.step()) {
      Entry e{s.column_text(0), s.column_int64(1) != 0, s.column_text(2), s.column_text(3), s.column_text(4), s.column_int64(5)};
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
        {{std::string(kDav), "getlastmodified"}, http_date(e.modified_at), 200},
        {{std::string(kDav), "getetag"}, xml_escape(e.etag), 200}};
    if (!e.collection) {
      live.push_back({{std::string(kDav), "getcontentlength"}, std::to_string(e.data.size()), 200});
      live.push_back({{std::string(kDav), "getcontenttype"}, xml_escape(e.content_type.empty() ? "application/octet-stream" : e.content_type), 200});
    }
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
      db->prepare("INSERT OR REPLACE INTO files (owner, path, is_collection, data, content_type, etag, modified_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
          .bind(1, owner)
          .bind(2, target)
          .bind(3, e.collection ? 1 : 0)
          .bind_blob(4, e.data)
          .bind(5, e.content_type)
          .bind(6, e.etag)
          .bind(7, now)
          .run();
      db->prepare("INSERT OR REPLACE INTO file_props (owner, path, ns, name, value) "
                  "SELECT owner, ?3, ns, name, value FROM file_props WHERE owner = ?1 AND path = ?2")
          .bind(1, owner)
          .bind(2, e.path)
          .bind(3, target)
          .run();
    }
  }
};

FileTree::FileTree(const std::filesystem::path& database) : impl_(std::make_unique<Impl>()) {
  impl_->db = sqlite::Database::open(database);
  impl_->db->migrate(kMigrations);
}

FileTree::~FileTree() = default;

Response FileTree::handle(const Request& q, const std::string& handle) {
  const auto rel = relative(q.path, handle);
  if (!rel) return status(decode(q.path).rfind("/dav/files/" + handle, 0) == 0 ? 403 : 404);
  std::lock_guard lock(impl_->mutex);
  impl_->ensure_root(handle);
  const auto now = static_cast<int64_t>(::time(nullptr));
  const auto existing = impl_->find(handle, *rel);
  const auto parent = rel->empty() ? std::optional<Impl::Entry>{} : impl_->find(handle, parent_of(*rel));
  const bool parent_ok = rel->empty() || (parent && parent->collection);

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
    const std::string etag = "\"" + sha256_hex(q.body).substr(0, 24) + "\"";
    impl_->db->prepare("INSERT OR REPLACE INTO files (owner, path, is_collection, data, content_type, etag, modified_at) "
                       "VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)")
        .bind(1, handle)
        .bind(2, *rel)
        .bind_blob(3, q.body)
        .bind(4, q.header("content-type"))
        .bind(5, etag)
        .bind(6, now)
        .run();
    auto r = status(existing ? 204 : 201);
    r.headers.emplace_back("ETag", etag);
    return r;
  }
  if (q.method == "GET" || q.method == "HEAD") {
    if (!existing) return status(404);
    auto r = Response::bytes(200, existing->collection ? std::string() : existing->data,
                             existing->collection ? "text/plain" : (existing->content_type.empty() ? "application/octet-stream" : existing->content_type));
    r.headers.emplace_back("ETag", existing->etag);
    r.headers.emplace_back("Last-Modified", http_date(existing->modified_at));
    return r;
  }
  if (q.method == "DELETE") {
    if (!existing) return status(404);
    if (rel->empty()) return status(403);
    sqlite::Transaction tx(*impl_->db);
    impl_->remove_tree(handle, *rel);
    tx.commit();
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
    if (to->rfind(*rel + "/", 0) == 0 && !rel->empty()) return status(403);  // into itself
    const auto target_parent = impl_->find(handle, parent_of(*to));
    if (!target_parent || !target_parent->collection) return status(409);
    const bool target_exists = impl_->find(handle, *to).has_value();
    if (target_exists && q.header("overwrite", "T") == "F") return status(412);
    const bool deep = q.method == "MOVE" || q.header("depth", "infinity") != "0";
    sqlite::Transaction tx(*impl_->db);
    if (target_exists) impl_->remove_tree(handle, *to);
    impl_->copy_tree(handle, *rel, *to, deep);
    if (q.method == "MOVE") impl_->remove_tree(handle, *rel);
    tx.commit();
    return status(target_exists ? 204 : 201);
  }
  return status(405);
}

}  // namespace coop::dav
