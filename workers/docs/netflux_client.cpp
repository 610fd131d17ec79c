// The CLI's Netflux client, on Beast's synchronous WebSocket stream.
#include "workers/docs/netflux_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <random>

#include "common/error.h"

namespace coop::docs {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace ws = beast::websocket;
using nlohmann::json;

struct NetfluxClient::Impl {
  net::io_context io;
  ws::stream<beast::tcp_stream> stream{io};
  std::chrono::seconds timeout;
  std::string user;
  std::string history_keeper;
  int64_t seq = 0;

  json read() {
    beast::flat_buffer buffer;
    beast::get_lowest_layer(stream).expires_after(timeout);
    beast::error_code ec;
    stream.read(buffer, ec);
    if (ec) throw Error(errc::kDocsFailed, "the document server closed the connection: " + ec.message(), 502);
    try {
      return json::parse(beast::buffers_to_string(buffer.data()));
    } catch (const json::exception&) {
      throw Error(errc::kDocsFailed, "the document server sent something that is not JSON", 502);
    }
  }
  void write(const json& frame) {
    beast::get_lowest_layer(stream).expires_after(timeout);
    beast::error_code ec;
    stream.write(net::buffer(frame.dump()), ec);
    if (ec) throw Error(errc::kDocsFailed, "cannot send to the document server: " + ec.message(), 502);
  }
  // Reads until the reply to seq; other frames go to on_other.
  json reply(int64_t number, const std::function<void(const json&)>& on_other = {}) {
    for (;;) {
      json frame = read();
      if (frame.is_array() && !frame.empty() && frame[0] == number) return frame;
      if (on_other) on_other(frame);
    }
  }
};

NetfluxClient::NetfluxClient(const std::string& ws_url, std::chrono::seconds timeout) : impl_(std::make_unique<Impl>()) {
  impl_->timeout = timeout;
  // ws://HOST[:PORT]/PATH
  if (ws_url.rfind("ws://", 0) != 0) throw Error(errc::kBadLink, "not a ws:// address: " + ws_url, 400);
  const auto slash = ws_url.find('/', 5);
  const std::string authority = ws_url.substr(5, slash == std::string::npos ? std::string::npos : slash - 5);
  const std::string path = slash == std::string::npos ? "/" : ws_url.substr(slash);
  std::string host = authority, port = "80";
  if (auto colon = authority.rfind(':'); colon != std::string::npos && authority.find(']') == std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  beast::error_code ec;
  net::ip::tcp::resolver resolver(impl_->io);
  const auto endpoints = resolver.resolve(host, port, ec);
  if (ec) throw Error(errc::kNotRunning, "cannot find " + authority + ": " + ec.message(), 503);
  beast::get_lowest_layer(impl_->stream).expires_after(timeout);
  beast::get_lowest_layer(impl_->stream).connect(endpoints, ec);
  if (ec) throw Error(errc::kNotRunning, "the document server at " + authority + " does not answer (is coop-docs running?)", 503);
  impl_->stream.handshake(authority, path, ec);
  if (ec) throw Error(errc::kDocsFailed, "WebSocket handshake with " + authority + " failed: " + ec.message(), 502);
  impl_->stream.text(true);
  for (;;) {
    const json frame = impl_->read();
    if (frame.is_array() && frame.size() >= 4 && frame[2] == "IDENT") {
      impl_->user = frame[3].get<std::string>();
      break;
    }
  }
}

NetfluxClient::~NetfluxClient() {
  beast::error_code ignored;
  impl_->stream.close(ws::close_code::normal, ignored);
}

void NetfluxClient::join(const std::string& channel) {
  const int64_t seq = ++impl_->seq;
  impl_->write(json::array({seq, "JOIN", channel}));
  const json answer = impl_->reply(seq);
  if (answer[1] != "JACK" && !(answer[1] == "ERROR" && answer.size() > 2 && answer[2] == "EJOINED"))
    throw Error(errc::kDocsFailed, "the server refused to open the document: " + answer.dump(), 502);
  // Then JOINs: the history keeper's (16 hex), the members', ours last.
  for (;;) {
    const json frame = impl_->read();
    if (!frame.is_array() || frame.size() < 4 || frame[2] != "JOIN" || frame[3] != channel) continue;
    const std::string who = frame[1].get<std::string>();
    if (who.size() == 16) impl_->history_keeper = who;
    if (who == impl_->user) break;
  }
  if (impl_->history_keeper.empty()) throw Error(errc::kDocsFailed, "the server has no history keeper", 502);
}

NetfluxClient::History NetfluxClient::history(const std::string& channel, const json& metadata, bool from_start) {
  static std::mt19937 random{std::random_device{}()};
  const int64_t txid = static_cast<int64_t>(random() % 1000000) + 1;
  json config{{"txid", txid}, {"metadata", metadata}};
  if (from_start) config["lastKnownHash"] = -1;
  const int64_t seq = ++impl_->seq;
  impl_->write(json::array({seq, "MSG", impl_->history_keeper, json::array({"GET_HISTORY", channel, config}).dump()}));
  History out;
  for (;;) {
    const json frame = impl_->read();
    if (frame.is_array() && !frame.empty() && frame[0] == seq) {
      if (frame[1] != "ACK") throw Error(errc::kDocsFailed, "history refused: " + frame.dump(), 502);
      continue;
    }
    if (!frame.is_array() || frame.size() < 5 || frame[2] != "MSG" || frame[1] != impl_->history_keeper) continue;
    json payload;
    try {
      payload = json::parse(frame[4].get<std::string>());
    } catch (const json::exception&) {
      continue;
    }
    if (payload.is_array()) {
      if (payload.size() >= 5 && payload[0] == txid && payload[3] == channel && payload[4].is_string())
        out.messages.push_back(payload[4].get<std::string>());
      continue;
    }
    if (!payload.is_object()) continue;
    if (payload.contains("error")) throw Error(errc::kDocsFailed, "the document cannot be read: " + payload["error"].dump(), 502);
    if (payload.value("state", 0) == 1) break;
    if (payload.contains("channel")) out.metadata = payload;
  }
  return out;
}

void NetfluxClient::send(const std::string& channel, const std::string& content) {
  const int64_t seq = ++impl_->seq;
  impl_->write(json::array({seq, "MSG", channel, content}));
  const json answer = impl_->reply(seq);
  if (answer[1] != "ACK") throw Error(errc::kDocsFailed, "the server did not store the change: " + answer.dump(), 502);
}

}  // namespace coop::docs
