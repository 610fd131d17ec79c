// The content-addressed blob store: durable, deduplicated, nothing left behind on failure.
#include <catch2/catch.hpp>

#include "common/blob_store.h"
#include "common/error.h"
#include "temp_dir.h"

TEST_CASE("a blob is addressed by the sha256 of its bytes and read back exactly") {
  coop::test::TempDir dir;
  coop::BlobStore store(dir.path() / "blobs");
  const std::string bytes("hello\0world\r\n", 13);
  const auto sha = store.put(bytes);
  CHECK(sha == "a5caf611f0983777e917c0e5131b1f7500a72bbe1239f6ca67bf73030aaf5c4a");
  CHECK(store.read(sha) == bytes);
  CHECK(store.size_of(sha) == bytes.size());
  CHECK(store.path_of(sha).parent_path().filename() == sha.substr(0, 2));
  CHECK(store.put("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2 vector
}

TEST_CASE("the same bytes are stored once, whatever the chunking") {
  coop::test::TempDir dir;
  coop::BlobStore store(dir.path() / "blobs");
  auto w = store.writer();
  w.append("ab");
  w.append("c");
  CHECK(w.size() == 3);
  const auto first = w.commit();
  CHECK(store.put("abc") == first);
  std::size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path() / "blobs"))
    files += e.is_regular_file();
  CHECK(files == 1);  // no temporary file left either
}

TEST_CASE("an abandoned writer leaves nothing behind") {
  coop::test::TempDir dir;
  coop::BlobStore store(dir.path() / "blobs");
  {
    auto w = store.writer();
    w.append("never committed");
  }
  CHECK(std::filesystem::is_empty(dir.path() / "blobs" / "tmp"));
}

TEST_CASE("a batch stores its blobs at commit, each once, and leaves nothing when dropped") {
  coop::test::TempDir dir;
  coop::BlobStore store(dir.path() / "blobs");
  const auto had = store.put("already here");
  std::string first, again, kept;
  {
    coop::BlobStore::Batch batch(store);
    first = batch.add("one");
    again = batch.add("one");  // twice in one batch
    kept = batch.add("already here");
    CHECK(first == again);
    CHECK(kept == had);
    CHECK_FALSE(store.exists(first));  // nothing is there before commit
    batch.commit();
  }
  CHECK(store.read(first) == "one");
  CHECK(store.read(had) == "already here");
  CHECK(std::filesystem::is_empty(dir.path() / "blobs" / "tmp"));
  {
    coop::BlobStore::Batch dropped(store);
    const auto never = dropped.add("never committed");
    CHECK_FALSE(store.exists(never));
  }
  CHECK(std::filesystem::is_empty(dir.path() / "blobs" / "tmp"));
}

TEST_CASE("blob ids are checked before touching the disk") {
  coop::test::TempDir dir;
  coop::BlobStore store(dir.path() / "blobs");
  CHECK_THROWS_AS(store.read("../../etc/passwd"), coop::Error);
  CHECK_THROWS_AS(store.read(std::string(64, 'A')), coop::Error);
  CHECK_THROWS_AS(store.read(std::string(64, 'a')), coop::Error);  // well-formed, absent
}
