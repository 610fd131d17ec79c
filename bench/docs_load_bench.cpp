// Load for bench-docs, lighter than a Node client so that the server is what is measured: N
// raw Netflux clients on one thread, C channels; each sends an edit-sized message, waits for
// its ACK (one in flight, as ChainPad does) and sends the next, for D seconds. Receivers time
// each message from its send. Prints JSON: sent/s, delivered/s, p50/p99 ms, errors.
//   docs_load_bench HOST PORT PATH CLIENTS CHANNELS SECONDS
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace net = boost::asio;
using Tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

const Clock::time_point kEpoch = Clock::now();
int64_t now_us() { return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - kEpoch).count(); }

// RFC 6455 5.2-5.3: one masked text frame, as a client must send it.
std::string client_frame(const std::string& payload, std::mt19937& random) {
  std::string out;
  out += static_cast<char>(0x81);
  const std::size_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(0x80 | n);
  } else {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xFF);
  }
  const uint32_t key = random();
  const char mask[4] = {static_cast<char>(key), static_cast<char>(key >> 8), static_cast<char>(key >> 16), static_cast<char>(key >> 24)};
  out.append(mask, 4);
  for (std::size_t i = 0; i < n; ++i) out += static_cast<char>(payload[i] ^ mask[i & 3]);
  return out;
}

struct Totals {
  bool running = false;
  uint64_t sent = 0, delivered = 0, errors = 0;
  std::vector<int64_t> latencies_us;
  int ready = 0;
};

class LoadClient : public std::enable_shared_from_this<LoadClient> {
 public:
  LoadClient(net::io_context& io, std::string channel, Totals& totals) : socket_(io), channel_(std::move(channel)), totals_(totals) {}

  // The opening handshake, done before the clock starts.
  void connect(const Tcp::endpoint& endpoint, const std::string& host, const std::string& path) {
    socket_.connect(endpoint);
    socket_.set_option(Tcp::no_delay(true));
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host +
                                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    net::write(socket_, net::buffer(request));
    const std::size_t end = net::read_until(socket_, net::dynamic_buffer(in_), "\r\n\r\n");
    if (in_.compare(0, 12, "HTTP/1.1 101") != 0) throw std::runtime_error("handshake refused: " + in_.substr(0, end));
    in_.erase(0, end);
  }

  void start_reading() {
    parse();
    read();
  }

  void send_next() {
    if (!totals_.running) return;
    pending_ = ++seq_;
    send("[" + std::to_string(pending_) + ",\"MSG\",\"" + channel_ + "\",\"t" + std::to_string(now_us()) + " " + pad() + "\"]");
    ++totals_.sent;
  }

 private:
  static const std::string& pad() {
    static const std::string text(300, 'x');  // about an encrypted ChainPad patch
    return text;
  }

  void send(const std::string& text) {
    out_ += client_frame(text, random_);
    if (!writing_) write();
  }

  void write() {
    writing_ = true;
    writing_now_.swap(out_);
    out_.clear();
    net::async_write(socket_, net::buffer(writing_now_), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return;
      if (!self->out_.empty()) self->write();
    });
  }

  void read() {
    socket_.async_read_some(net::buffer(chunk_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      if (ec) return;
      self->in_.append(self->chunk_.data(), n);
      self->parse();
      self->read();
    });
  }

  // Server frames are unmasked (5.1); Netflux frames are text.
  void parse() {
    std::size_t at = 0;
    for (;;) {
      if (in_.size() - at < 2) break;
      const auto* b = reinterpret_cast<const unsigned char*>(in_.data() + at);
      std::size_t header = 2;
      uint64_t length = b[1] & 0x7F;
      if (length == 126) {
        if (in_.size() - at < 4) break;
        length = (uint64_t{b[2]} << 8) | b[3];
        header = 4;
      } else if (length == 127) {
        if (in_.size() - at < 10) break;
        length = 0;
        for (int i = 0; i < 8; ++i) length = (length << 8) | b[2 + i];
        header = 10;
      }
      if (in_.size() - at < header + length) break;
      if ((b[0] & 0x0F) == 0x1) on_message(std::string_view(in_.data() + at + header, length));
      at += header + length;
    }
    in_.erase(0, at);
  }

  // Netflux frames, told apart by their shape rather than parsed whole: the load must cost
  // little next to the server it measures.
  void on_message(std::string_view m) {
    if (m.rfind("[0,", 0) == 0) {
      if (m.find(",\"MSG\",") != std::string_view::npos) {
        if (!totals_.running) return;
        const auto t = m.find("\"t", m.find(channel_));
        if (t == std::string_view::npos) return;
        ++totals_.delivered;
        totals_.latencies_us.push_back(now_us() - std::stoll(std::string(m.substr(t + 2, 20))));
        return;
      }
      if (m.find(",\"IDENT\",") != std::string_view::npos) {
        const auto start = m.find("IDENT\",\"") + 8;
        me_ = std::string(m.substr(start, m.find('"', start) - start));
        send("[" + std::to_string(++seq_) + ",\"JOIN\",\"" + channel_ + "\"]");
        return;
      }
      if (!me_.empty() && m.find(",\"JOIN\",") != std::string_view::npos && m.find("\"" + me_ + "\",\"JOIN\"") != std::string_view::npos &&
          !joined_) {
        joined_ = true;
        ++totals_.ready;
      }
      return;
    }
    // [seq,"ACK"] or [seq,"ERROR",...] for the message in flight.
    const auto comma = m.find(',');
    if (comma == std::string_view::npos || m.size() < 2) return;
    const uint64_t seq = std::strtoull(std::string(m.substr(1, comma - 1)).c_str(), nullptr, 10);
    if (seq == 0 || seq != pending_) return;
    if (m.substr(comma + 1, 5) != "\"ACK\"") ++totals_.errors;
    send_next();
  }

  Tcp::socket socket_;
  std::string channel_;
  Totals& totals_;
  std::string in_, out_, writing_now_;
  std::array<char, 64 << 10> chunk_{};
  bool writing_ = false, joined_ = false;
  uint64_t seq_ = 0, pending_ = 0;
  std::string me_;
  std::mt19937 random_{std::random_device{}()};
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: docs_load_bench HOST PORT PATH CLIENTS CHANNELS SECONDS\n";
    return 2;
  }
  const std::string host = argv[1], path = argv[3];
  const int clients = std::stoi(argv[4]), channels = std::stoi(argv[5]);
  const double seconds = std::stod(argv[6]);
  net::io_context io;
  const Tcp::endpoint endpoint(net::ip::make_address(host), static_cast<unsigned short>(std::stoi(argv[2])));
  Totals totals;
  std::vector<std::shared_ptr<LoadClient>> all;
  for (int i = 0; i < clients; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    const int c = i % channels;
    std::string channel;
    for (int k = 0; k < 16; ++k) channel += {kHex[(c >> 4) & 15], kHex[c & 15]};
    auto client = std::make_shared<LoadClient>(io, channel, totals);
    client->connect(endpoint, host, path);
    client->start_reading();
    all.push_back(client);
  }
  // Everyone in a channel before the clock starts.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (totals.ready < clients && Clock::now() < deadline) io.run_for(std::chrono::milliseconds(10));
  if (totals.ready < clients) {
    std::cerr << "only " << totals.ready << " of " << clients << " clients joined\n";
    return 1;
  }
  totals.running = true;
  totals.latencies_us.reserve(1 << 22);
  const auto started = Clock::now();
  for (auto& client : all) client->send_next();
  io.run_for(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
  totals.running = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  auto& l = totals.latencies_us;
  std::sort(l.begin(), l.end());
  auto quantile_ms = [&](double q) {
    return l.empty() ? 0.0 : static_cast<double>(l[std::min(l.size() - 1, static_cast<std::size_t>(q * static_cast<double>(l.size())))]) / 1000.0;
  };
  std::printf("{\"sent_per_s\": %.1f, \"delivered_per_s\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"errors\": %llu}\n",
              static_cast<double>(totals.sent) / elapsed, static_cast<double>(totals.delivered) / elapsed, quantile_ms(0.5),
              quantile_ms(0.99), static_cast<unsigned long long>(totals.errors));
  return 0;
}
