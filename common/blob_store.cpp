// Durable content-addressed blob storage.
#include "common/blob_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include "common/error.h"
#include "common/fs.h"

namespace coop {

namespace fs = std::filesystem;

namespace {

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(::getpid()) + "." + std::to_string(counter++) + "." + std::to_string(rng() & 0xffffff);
}

}  // namespace

BlobStore::BlobStore(fs::path root) : root_(std::move(root)) {
  std::error_code ec;
  fs::create_directories(root_ / "tmp", ec);
  if (ec) throw Error(errc::kIoError, "cannot create " + root_.string() + ": " + ec.message(), 500);
}

void BlobStore::fail(const std::string& what) {
  failed_ = true;
  throw Error(errc::kStorageFailed, what + "; refusing further writes until restart", 500);
}

fs::path BlobStore::path_of(const std::string& sha256) const {
  if (!is_sha256_hex(sha256)) throw Error(errc::kBadBlobId, "not a sha256: " + sha256, 400);
  return root_ / sha256.substr(0, 2) / sha256.substr(2);
}

bool BlobStore::exists(const std::string& sha256) const {
  std::error_code ec;
  return fs::exists(path_of(sha256), ec);
}

uint64_t BlobStore::size_of(const std::string& sha256) const {
  std::error_code ec;
  const auto size = fs::file_size(path_of(sha256), ec);
  if (ec) throw Error(errc::kNoSuchBlob, "no blob " + sha256, 404);
  return size;
}

std::string BlobStore::read(const std::string& sha256) const {
  std::ifstream in(path_of(sha256), std::ios::binary);
  if (!in) throw Error(errc::kNoSuchBlob, "no blob " + sha256, 404);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

BlobStore::Writer BlobStore::writer() {
  if (failed_) throw Error(errc::kStorageFailed, "the blob store had a write failure; restart after checking the disk", 500);
  const auto tmp = root_ / "tmp" / ("blob." + unique_suffix());
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(errc::kIoError, "cannot create " + tmp.string() + ": " + std::strerror(errno), 500);
  return Writer(*this, fd, tmp);
}

std::string BlobStore::put(std::string_view bytes) {
  auto w = writer();
  w.append(bytes);
  return w.commit();
}

BlobStore::Writer BlobStore::adopt(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw Error(errc::kIoError, "cannot open " + file.string() + ": " + std::strerror(errno), 500);
  Writer w(*this, fd, file);
  std::string piece(1 << 20, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, piece.data(), piece.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(errc::kIoError, "cannot read " + file.string() + ": " + std::strerror(errno), 500);
    if (n == 0) break;
    EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(w.hash_), piece.data(), static_cast<std::size_t>(n));
    w.size_ += static_cast<uint64_t>(n);
  }
  return w;
}

BlobStore::Writer::Writer(BlobStore& store, int fd, fs::path tmp)
    : store_(&store), fd_(fd), tmp_(std::move(tmp)), hash_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(hash_), EVP_sha256(), nullptr);
}

BlobStore::Writer::Writer(Writer&& other) noexcept
    : store_(other.store_), fd_(other.fd_), tmp_(std::move(other.tmp_)), hash_(other.hash_), size_(other.size_),
      done_(other.done_), sha_(std::move(other.sha_)) {
  other.fd_ = -1;
  other.hash_ = nullptr;
  other.done_ = true;
}

BlobStore::Writer::~Writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) ::unlink(tmp_.c_str());
  if (hash_) EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(hash_));
}

void BlobStore::Writer::append(std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(hash_), bytes.data(), bytes.size());
  size_ += bytes.size();
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(errno == ENOSPC || errno == EDQUOT ? "disk_full" : "io_error",
                  "cannot write " + tmp_.string() + ": " + std::strerror(errno), 500);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string BlobStore::Writer::contents() const {
  std::string out(size_, '\0');
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(errc::kIoError, "cannot read back " + tmp_.string() + ": " + std::strerror(errno), 500);
    done += static_cast<std::size_t>(n);
  }
  return out;
}

std::string BlobStore::Writer::digest() {
  if (!sha_.empty()) return sha_;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(hash_), md, &length);
  static const char* hex = "0123456789abcdef";
  for (unsigned i = 0; i < length; ++i) {
    sha_ += hex[md[i] >> 4];
    sha_ += hex[md[i] & 15];
  }
  return sha_;
}

std::string BlobStore::Writer::seal() {
  const auto sha = digest();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return sha;
}

void BlobStore::Writer::place() {
  const auto target = store_->path_of(sha_);
  // One system call a blob as a rule: RENAME_NOREPLACE never overwrites (a blob that exists
  // is whole and the same bytes: the destructor drops this copy), and the fan-out directory
  // is made only when the rename says it is missing.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) {
      done_ = true;
      return;
    }
    if (errno == EEXIST) return;
    if (errno != ENOENT || attempt > 0) break;
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw Error(errc::kIoError, "cannot create " + target.parent_path().string() + ": " + ec.message(), 500);
  }
  throw Error(errc::kIoError, "cannot rename into " + target.string() + ": " + std::strerror(errno), 500);
}

std::string BlobStore::Batch::add(std::string_view bytes) {
  auto w = store_->writer();
  w.append(bytes);
  const auto sha = w.seal();
  std::lock_guard lock(mutex_);
  pending_.push_back(std::move(w));
  return sha;
}

void BlobStore::Batch::commit() {
  if (pending_.empty()) return;
  // Linux syncfs: everything written on the blobs' filesystem reaches the disk; once for the
  // contents before any is renamed into place, once for the renames.
  auto sync = [this] {
    const int fd = ::open(store_->root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool ok = fd >= 0 && ::syncfs(fd) == 0;
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    if (!ok) store_->fail("syncfs of " + store_->root_.string() + " failed: " + std::strerror(saved));
  };
  sync();
  if (store_->failed()) throw Error(errc::kStorageFailed, "the blob store had a write failure; restart after checking the disk", 500);
  for (auto& w : pending_) w.place();
  sync();
  if (store_->failed()) throw Error(errc::kStorageFailed, "the blob store had a write failure; restart after checking the disk", 500);
  pending_.clear();
}

std::string BlobStore::Writer::commit() {
  const auto sha = digest();
  const auto target = store_->path_of(sha);
  std::error_code ec;
  if (fs::exists(target, ec)) {
    // Already durable from an earlier write: the same bytes are stored once.
    ::close(fd_);
    fd_ = -1;
    return sha;  // the destructor removes the temporary file
  }
  if (::fsync(fd_) != 0) store_->fail("fsync of " + tmp_.string() + " failed: " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  const bool new_fanout = fs::create_directories(target.parent_path(), ec);
  if (ec) throw Error(errc::kIoError, "cannot create " + target.parent_path().string() + ": " + ec.message(), 500);
  if (::rename(tmp_.c_str(), target.c_str()) != 0)
    throw Error(errc::kIoError, "cannot rename into " + target.string() + ": " + std::strerror(errno), 500);
  done_ = true;
  try {
    fsync_directory(target.parent_path());
    if (new_fanout) fsync_directory(target.parent_path().parent_path());  // the new directory's own entry
  } catch (const Error& e) {
    store_->fail(e.what());
  }
  return sha;
}

void BlobStore::remove(const std::string& sha256) {
  std::error_code ec;
  fs::remove(path_of(sha256), ec);
}

}  // namespace coop
