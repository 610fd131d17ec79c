// The Netflux relay and history keeper without a network: frame orderings the npm clients
// rely on, durable logs, signatures, checkpoints and history offsets.
#include <catch2/catch.hpp>

#include "tests/unit/common/temp_dir.h"

#include <sodium.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/error.h"
#include "workers/docs/channel_store.h"
#include "workers/docs/netflux.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace coop::docs;

namespace {

// A user whose frames land in a list.
struct Peer {
  std::string id;
  std::vector<json> inbox;
  std::vector<json> take() { return std::exchange(inbox, {}); }
};

Peer& connect(Netflux& nf, std::map<std::string, Peer>& peers) {
  auto holder = std::make_shared<Peer*>(nullptr);
  static int counter = 0;
  auto& peer = peers["p" + std::to_string(counter++)];
  *holder = &peer;
  peer.id = nf.connect([holder](std::shared_ptr<const std::string> frame) {
    (*holder)->inbox.push_back(json::parse(*frame));
    return true;
  });
  return peer;
}

const std::string kChannel = std::string(32, 'a');

// A relay over a fresh store, and the users connected to it.
struct Relay {
  coop::test::TempDir dir;
  ChannelStore store{dir.path()};
  Netflux nf{store};
  std::map<std::string, Peer> peers;
};

std::string b64(const unsigned char* data, std::size_t size) {
  std::string out(sodium_base64_encoded_len(size, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, size, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

}  // namespace

TEST_CASE_METHOD(Relay, "IDENT first; JOIN answers JACK, the history keeper, members, then the joiner", "[docs][netflux]") {
  Peer& a = connect(nf, peers);
  Peer& b = connect(nf, peers);
  REQUIRE(a.inbox.size() == 1);
  CHECK(a.inbox[0] == json::array({0, "", "IDENT", a.id}));
  CHECK(a.id.size() == 32);
  CHECK(nf.history_keeper().size() == 16);
  a.take();
  b.take();

  nf.frame(a.id, json::array({1, "JOIN", kChannel}).dump());
  auto got = a.take();
  REQUIRE(got.size() == 3);
  CHECK(got[0] == json::array({1, "JACK", kChannel}));
  CHECK(got[1] == json::array({0, nf.history_keeper(), "JOIN", kChannel}));
  CHECK(got[2] == json::array({0, a.id, "JOIN", kChannel}));

  nf.frame(b.id, json::array({1, "JOIN", kChannel}).dump());
  got = b.take();
  REQUIRE(got.size() == 4);
  CHECK(got[1][1] == nf.history_keeper());
  CHECK(got[2] == json::array({0, a.id, "JOIN", kChannel}));
  CHECK(got[3] == json::array({0, b.id, "JOIN", kChannel}));
  CHECK(a.take() == std::vector<json>{json::array({0, b.id, "JOIN", kChannel})});

  nf.frame(b.id, json::array({2, "JOIN", kChannel}).dump());
  got = b.take();
  CHECK(got[0] == json::array({2, "ERROR", "EJOINED", kChannel}));
  CHECK(a.take().empty());  // nothing broadcast for a repeated JOIN

  // A message is stored, relayed to the others (with its time) and ACKed; never echoed.
  nf.frame(a.id, json::array({2, "MSG", kChannel, "ciphertext-1"}).dump());
  nf.flush();  // relayed and ACKed once its group commit is on disk
  got = a.take();
  CHECK(got == std::vector<json>{json::array({2, "ACK"})});
  got = b.take();
  REQUIRE(got.size() == 1);
  CHECK(got[0][1] == a.id);
  CHECK(got[0][4] == "ciphertext-1");
  CHECK(got[0][5].is_number_integer());
  CHECK(store.index(kChannel).offsets.size() == 1);

  // Disconnecting tells the channel.
  nf.disconnect(a.id);
  CHECK(b.take() == std::vector<json>{json::array({0, a.id, "LEAVE", kChannel})});
  CHECK(nf.users() == 1);
}

TEST_CASE_METHOD(Relay, "history: metadata on first GET_HISTORY, checkpoints, lastKnownHash, EUNKNOWN", "[docs][netflux]") {
  Peer& a = connect(nf, peers);
  nf.frame(a.id, json::array({1, "JOIN", kChannel}).dump());
  const auto history = [&](const json& config) {
    a.take();
    nf.frame(a.id, json::array({9, "MSG", nf.history_keeper(), json::array({"GET_HISTORY", kChannel, config}).dump()}).dump());
    std::vector<json> payloads;
    for (const auto& f : a.take())
      if (f[0] == 0) payloads.push_back(json::parse(f[4].get<std::string>()));
    return payloads;
  };
  auto first = history({{"txid", 7}, {"metadata", {{"owners", {"x"}}}}});
  REQUIRE(first.size() == 2);
  CHECK(first[0]["channel"] == kChannel);
  CHECK(first[0]["owners"] == json::array({"x"}));
  CHECK(first[1] == json{{"state", 1}, {"channel", kChannel}, {"txid", 7}});

  // 300 messages with a checkpoint every 50: a fresh reader starts at the one before last.
  for (int i = 1; i <= 300; ++i) {
    const std::string content = (i % 50 == 0 ? "cp|id" + std::to_string(i) + "|" : std::string()) + "m" + std::to_string(i);
    nf.frame(a.id, json::array({100 + i, "MSG", kChannel, content}).dump());
  }
  nf.flush();
  auto replay = history({{"txid", 8}});
  // Metadata, the 51 lines from the checkpoint before the last, the end marker.
  REQUIRE(replay.size() == 1 + 51 + 1);
  CHECK(replay[1][4] == "cp|id250|m250");
  CHECK(replay[1][0] == 8);  // the txid replaces the 0
  CHECK(replay.back()["state"] == 1);
  auto all = history({{"txid", 9}, {"lastKnownHash", -1}});
  CHECK(all.size() == 1 + 300 + 1);
  auto after = history({{"txid", 10}, {"lastKnownHash", "m299"}});
  REQUIRE(after.size() == 1 + 2 + 1);  // the known message itself, then the last
  CHECK(after[1][4] == "m299");
  auto unknown = history({{"txid", 11}, {"lastKnownHash", "nope"}});
  CHECK(unknown.back()["error"] == "EUNKNOWN");
}

TEST_CASE_METHOD(Relay, "signed channels refuse messages without a valid signature", "[docs][netflux]") {
  REQUIRE(sodium_init() >= 0);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  Peer& a = connect(nf, peers);
  nf.frame(a.id, json::array({1, "JOIN", kChannel}).dump());
  nf.frame(a.id, json::array({2, "MSG", nf.history_keeper(),
                              json::array({"GET_HISTORY", kChannel, {{"metadata", {{"validateKey", b64(pk, sizeof pk)}}}}}).dump()})
                     .dump());
  a.take();
  const std::string inner = "bm9uY2U=|Ym94";
  std::vector<unsigned char> signed_message(inner.size() + crypto_sign_BYTES);
  unsigned long long length = 0;
  crypto_sign(signed_message.data(), &length, reinterpret_cast<const unsigned char*>(inner.data()), inner.size(), sk);
  const std::string good = b64(signed_message.data(), length);
  nf.frame(a.id, json::array({3, "MSG", kChannel, good}).dump());
  nf.flush();
  CHECK(a.take() == std::vector<json>{json::array({3, "ACK"})});
  nf.frame(a.id, json::array({4, "MSG", kChannel, "cp|abc|" + good}).dump());
  nf.flush();
  CHECK(a.take() == std::vector<json>{json::array({4, "ACK"})});
  std::string forged = good;
  forged[10] = forged[10] == 'A' ? 'B' : 'A';
  nf.frame(a.id, json::array({5, "MSG", kChannel, forged}).dump());
  nf.flush();
  CHECK(a.take() == std::vector<json>{json::array({5, "ERROR"})});
  CHECK(store.index(kChannel).offsets.size() == 2);
}

TEST_CASE_METHOD(Relay, "malformed frames: errors where there is a seq, drop on non-JSON", "[docs][netflux]") {
  Peer& a = connect(nf, peers);
  a.take();
  CHECK(nf.frame(a.id, R"([1,"BOGUS"])"));
  CHECK(a.take()[0][2] == "EINVAL");
  CHECK(nf.frame(a.id, R"([2,"JOIN","../../etc"])"));
  CHECK(a.take()[0][1] == "ERROR");
  CHECK(nf.frame(a.id, R"([3,"MSG"])"));
  CHECK(a.take()[0][1] == "ERROR");
  CHECK(nf.frame(a.id, R"({"a":1})"));
  CHECK(nf.frame(a.id, R"([4,"LEAVE"])"));
  CHECK(a.take()[0][2] == "EINVAL");
  CHECK_FALSE(nf.frame(a.id, "not json"));
  CHECK_FALSE(nf.frame("nobody", R"([1,"PING"])"));
}

TEST_CASE("channel logs: durable lines, a torn tail cut on reopen, checkpoint ids", "[docs][store]") {
  coop::test::TempDir dir;
  {
    ChannelStore store(dir.path());
    store.append(kChannel, json::array({0, "u", "MSG", kChannel, "one", 1}).dump(), "one");
    store.append(kChannel, json::array({0, "u", "MSG", kChannel, "cp|X1|two", 2}).dump(), "cp|X1|two");
    CHECK(store.index(kChannel).checkpoints == std::vector<std::size_t>{1});
  }
  // A crash mid-write leaves half a line: it was never acknowledged and goes away.
  const auto log = dir.path() / kChannel.substr(0, 2) / (kChannel + ".ndjson");
  std::ofstream(log, std::ios::app) << R"([0,"u","MSG",")";
  ChannelStore store(dir.path());
  const auto& index = store.index(kChannel);
  CHECK(index.offsets.size() == 2);
  CHECK(index.last_checkpoint_id == "X1");
  CHECK(index.hashes.at("one") == 0);
  store.append(kChannel, json::array({0, "u", "MSG", kChannel, "three", 3}).dump(), "three");
  CHECK(store.read_lines(kChannel, 1).size() == 1);  // written, not yet durable: not read back
  for (auto& point : store.sync_points({kChannel})) {
    CHECK(::fdatasync(point.fd) == 0);
    ::close(point.fd);
    store.mark_durable(point);
  }
  const auto lines = store.read_lines(kChannel, 1);
  REQUIRE(lines.size() == 2);
  CHECK(json::parse(lines[1])[4] == "three");
  CHECK(checkpoint_id("cp|abc=|x") == std::optional<std::string>("abc="));
  CHECK(checkpoint_id("cp|x") == std::optional<std::string>(""));
  CHECK_FALSE(checkpoint_id("xcp|a|b"));
  CHECK(ChannelStore::valid_id(kChannel));
  CHECK_FALSE(ChannelStore::valid_id("../" + std::string(29, 'a')));
  CHECK_FALSE(ChannelStore::valid_id(std::string(32, 'A')));
}

TEST_CASE_METHOD(Relay, "review fixes: deep nesting, readers create nothing, claims, tombstones", "[docs][netflux]") {
  Peer& a = connect(nf, peers);
  a.take();
  // Brackets nested far enough would exhaust the stack when copied: refused unparsed.
  std::string deep = "[1,\"MSG\",\"" + a.id + "\"," + std::string(200000, '[') + std::string(200000, ']') + "]";
  CHECK_FALSE(nf.frame(a.id, deep));
  Peer& b = connect(nf, peers);
  b.take();
  // Asking for the history of a channel that does not exist creates no file.
  const std::string nowhere(32, 'c');
  nf.frame(b.id, json::array({1, "MSG", nf.history_keeper(), json::array({"GET_HISTORY", nowhere, json::object()}).dump()}).dump());
  CHECK_FALSE(store.exists(nowhere));
  CHECK_THROWS_AS(nf.claim(nowhere, "alice"), coop::Error);
  // A new channel (metadata, no message) can be claimed once; then it is the owner's.
  nf.frame(b.id, json::array({2, "JOIN", kChannel}).dump());
  nf.frame(b.id, json::array({3, "MSG", nf.history_keeper(),
                              json::array({"GET_HISTORY", kChannel, {{"metadata", {{"expire", 1e300}}}}}).dump()})
                     .dump());
  CHECK_FALSE(store.metadata(kChannel)->contains("expire"));  // out of range: ignored
  nf.claim(kChannel, "alice");
  nf.claim(kChannel, "alice");
  CHECK_THROWS_AS(nf.claim(kChannel, "bob"), coop::Error);
  // Deleted: tombstoned, no new messages, no re-creation, history says EDELETED.
  nf.delete_channel(kChannel);
  CHECK(store.deleted(kChannel));
  CHECK_THROWS_AS(store.set_metadata(kChannel, json::object()), coop::Error);
  b.take();
  nf.frame(b.id, json::array({4, "MSG", nf.history_keeper(), json::array({"GET_HISTORY", kChannel, {{"txid", 1}}}).dump()}).dump());
  auto frames = b.take();
  REQUIRE(frames.size() >= 2);
  CHECK(json::parse(frames.back()[4].get<std::string>())["error"] == "EDELETED");
}

TEST_CASE("a full channel refuses messages and keeps what it has", "[docs][netflux]") {
  coop::test::TempDir dir;
  ChannelStore store{dir.path()};
  NetfluxLimits limits;
  limits.max_channel_bytes = 2000;
  Netflux nf{store, limits};
  std::map<std::string, Peer> peers;
  Peer& a = connect(nf, peers);
  nf.frame(a.id, json::array({1, "JOIN", kChannel}).dump());
  a.take();
  int seq = 2, acked = 0;
  json last;
  for (; seq < 40; ++seq) {
    nf.frame(a.id, json::array({seq, "MSG", kChannel, std::string(200, 'x')}).dump());
    nf.flush();
    last = a.take().at(0);
    if (last[1] != "ACK") break;
    ++acked;
  }
  CHECK(last == json::array({seq, "ERROR", "E_CHANNEL_FULL", kChannel}));
  CHECK(acked >= 5);
  CHECK(store.index(kChannel).offsets.size() == static_cast<std::size_t>(acked));
  CHECK(store.index(kChannel).bytes <= 2000);
}
