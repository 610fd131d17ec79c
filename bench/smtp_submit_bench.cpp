// Submits messages over SMTP from several connections at once, as mail clients and apps
// do: EHLO, STARTTLS, AUTH PLAIN (when given a user), then MAIL, RCPT, DATA per message.
// Blocking sockets and OpenSSL, a thread per connection; prints the seconds it took.
// usage: smtp_submit_bench HOST PORT CONNECTIONS MESSAGES SIZE FROM TO [USER PASSWORD]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/base64.h"

namespace {

class Client {
 public:
  Client(const std::string& host, int port, SSL_CTX* ctx) : ctx_(ctx) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect");
  }
  ~Client() {
    if (ssl_) SSL_free(ssl_);
    ::close(fd_);
  }
  void send(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
      const int n = ssl_ ? SSL_write(ssl_, data.data() + done, static_cast<int>(data.size() - done))
                         : static_cast<int>(::write(fd_, data.data() + done, data.size() - done));
      if (n <= 0) throw std::runtime_error("write");
      done += static_cast<std::size_t>(n);
    }
  }
  // The last line of a reply; throws unless its code starts with expect.
  std::string reply(char expect) {
    while (true) {
      const auto eol = in_.find("\r\n");
      if (eol != std::string::npos) {
        const auto line = in_.substr(0, eol);
        in_.erase(0, eol + 2);
        if (line.size() >= 4 && line[3] == '-') continue;
        if (line.empty() || line[0] != expect) throw std::runtime_error("unexpected reply: " + line);
        return line;
      }
      char buf[8192];
      const int n = ssl_ ? SSL_read(ssl_, buf, sizeof buf) : static_cast<int>(::read(fd_, buf, sizeof buf));
      if (n <= 0) throw std::runtime_error("read");
      in_.append(buf, static_cast<std::size_t>(n));
    }
  }
  std::string command(const std::string& line, char expect) {
    send(line + "\r\n");
    return reply(expect);
  }
  void starttls() {
    command("STARTTLS", '2');
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (SSL_connect(ssl_) != 1) throw std::runtime_error("TLS handshake");
  }

 private:
  SSL_CTX* ctx_;
  SSL* ssl_ = nullptr;
  int fd_;
  std::string in_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr, "usage: %s HOST PORT CONNECTIONS MESSAGES SIZE FROM TO [USER PASSWORD]\n", argv[0]);
    return 2;
  }
  const std::string host = argv[1], from = argv[6], to = argv[7];
  const int port = std::atoi(argv[2]), connections = std::atoi(argv[3]), messages = std::atoi(argv[4]);
  const std::size_t size = static_cast<std::size_t>(std::atoi(argv[5]));
  const std::string user = argc > 9 ? argv[8] : "", password = argc > 9 ? argv[9] : "";
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  std::atomic<int> next{0}, failed{0};
  std::string body;
  while (body.size() < size) body += "Benchmark body line, seventy-odd characters long, for a message of size.\r\n";
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c)
    threads.emplace_back([&] {
      try {
        Client client(host, port, ctx);
        client.reply('2');
        client.command("EHLO bench.client", '2');
        client.starttls();
        client.command("EHLO bench.client", '2');
        if (!user.empty())
          client.command("AUTH PLAIN " + coop::base64_encode(std::string(1, '\0') + user + std::string(1, '\0') + password), '2');
        for (int i; (i = next++) < messages;) {
          client.command("MAIL FROM:<" + from + ">", '2');
          client.command("RCPT TO:<" + to + ">", '2');
          client.command("DATA", '3');
          client.send("From: " + from + "\r\nTo: " + to + "\r\nSubject: bench " + std::to_string(i) +
                      "\r\nMessage-ID: <" + std::to_string(i) + "." + std::to_string(::getpid()) + "@bench>\r\n\r\n" + body +
                      ".\r\n");
          client.reply('2');
        }
        client.command("QUIT", '2');
      } catch (const std::exception& e) {
        ++failed;
        std::fprintf(stderr, "smtp_submit_bench: %s\n", e.what());
      }
    });
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.3f\n", seconds);
  SSL_CTX_free(ctx);
  return failed ? 1 : 0;
}
