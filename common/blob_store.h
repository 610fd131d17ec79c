// Content-addressed blobs (sha256) under blobs/<area>/ab/cdef...: written to a temporary
// file, fsynced, renamed into place and the directory fsynced, so a blob that exists is whole.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace coop {

class BlobStore {
 public:
  // root: COOP_HOME/blobs/<area>; created when missing.
  explicit BlobStore(std::filesystem::path root);

  class Batch;

  // Streams one blob in: hashes as it goes, so memory stays flat for any size.
  class Writer {
   public:
    ~Writer();  // an uncommitted writer leaves nothing behind
    Writer(Writer&&) noexcept;
    Writer& operator=(Writer&&) = delete;
    void append(std::string_view bytes);
    uint64_t size() const { return size_; }
    // What has been appended so far, read back (from the page cache, as a rule): for checks
    // that need the whole message before it is stored for good.
    std::string contents() const;
    // Makes the blob durable and returns its sha256 (hex). Storing bytes that already
    // exist costs nothing more: the temporary file is dropped.
    std::string commit();

   private:
    friend class BlobStore;
    friend class Batch;
    Writer(BlobStore& store, int fd, std::filesystem::path tmp);
    std::string digest();  // the sha256 of what was appended (once)
    // Batch: closes the file without fsync; place() then renames it into place (or drops it
    // when those bytes are stored already).
    std::string seal();
    void place();
    BlobStore* store_;
    int fd_;
    std::filesystem::path tmp_;
    void* hash_;  // EVP_MD_CTX*
    uint64_t size_ = 0;
    bool done_ = false;
    std::string sha_;
  };

  Writer writer();
  std::string put(std::string_view bytes);
  // A file written elsewhere (an upload spooled by common/http) becomes the writer's content,
  // hashed by reading it once; commit() renames it into place. The file must be on the
  // store's filesystem (spool_dir() is), and is removed if the writer is not committed.
  Writer adopt(const std::filesystem::path& file);
  std::filesystem::path spool_dir() const { return root_ / "incoming"; }

  // Many blobs made durable together, for an import: add() writes each to a temporary file
  // unsynced; commit() syncs the filesystem once, renames them all into place and syncs once
  // more, so a blob at its final path is always whole. Nothing is durable before commit();
  // a batch dropped before it leaves nothing behind.
  class Batch {
   public:
    explicit Batch(BlobStore& store) : store_(&store) {}
    std::string add(std::string_view bytes);  // its sha256; threads may add at once
    void commit();

   private:
    BlobStore* store_;
    std::mutex mutex_;
    std::vector<Writer> pending_;
  };
  bool exists(const std::string& sha256) const;
  std::filesystem::path path_of(const std::string& sha256) const;
  // The whole blob; coop::Error(errc::kNoSuchBlob, 404) when absent.
  std::string read(const std::string& sha256) const;
  uint64_t size_of(const std::string& sha256) const;
  // Deletes a blob nothing refers to any more (the caller knows); absent is not an error.
  void remove(const std::string& sha256);

  // After a failed fsync nothing more is acknowledged (as LevelDB does): the store refuses
  // writes until the process restarts and an operator has looked.
  bool failed() const { return failed_; }

 private:
  void fail(const std::string& what);
  std::filesystem::path root_;
  bool failed_ = false;
};

}  // namespace coop
