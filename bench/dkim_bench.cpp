// DKIM signatures and verifications per second, coop against libopendkim (the library
// OpenDKIM's milter is built on) on the same messages and keys, single-threaded.
// usage: dkim_bench [messages]   (prints one line per measure and the ratios)
//        dkim_bench --sign rsa|ed25519 KEY.pem SELECTOR DOMAIN < message > signed
//          (libopendkim's signature, for the tests of coop's verifier)
// libopendkim is a C library whose header says _Bool and has no extern "C" of its own.
#define _Bool bool
extern "C" {
#include <opendkim/dkim.h>
}
#undef _Bool

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "workers/mail/auth/dkim.h"
#include "workers/mail/auth/dkim_verify.h"

namespace {

using namespace coop::mail;

std::string message(int i) {
  std::string m = "From: Alice Example <alice@bench.example>\r\nTo: Bob <bob@example.net>\r\n"
                  "Subject: benchmark message " + std::to_string(i) + "\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
                  "Message-ID: <" + std::to_string(i) + "@bench.example>\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n\r\n";
  while (m.size() < 4096) m += "A line of text in the body,   with  some spacing  to canonicalise.\r\n";
  return m;
}

double per_second(int n, const std::function<void(int)>& job) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) job(i);
  return n / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// libopendkim: sign a whole message, return the header field.
std::string opendkim_sign(DKIM_LIB* lib, const std::string& pem, dkim_alg_t alg, const std::string& msg) {
  DKIM_STAT status;
  DKIM* d = dkim_sign(lib, reinterpret_cast<const unsigned char*>("bench"), nullptr,
                      reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(pem.c_str())),
                      reinterpret_cast<const unsigned char*>("s1"), reinterpret_cast<const unsigned char*>("bench.example"),
                      DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, alg, -1, &status);
  if (!d) throw std::runtime_error("dkim_sign: " + std::to_string(status));
  dkim_chunk(d, reinterpret_cast<u_char*>(const_cast<char*>(msg.data())), msg.size());
  dkim_chunk(d, nullptr, 0);
  if ((status = dkim_eom(d, nullptr)) != DKIM_STAT_OK) throw std::runtime_error("dkim_eom: " + std::to_string(status));
  unsigned char header[4096];
  dkim_getsighdr(d, header, sizeof header, 16);
  dkim_free(d);
  return "DKIM-Signature: " + std::string(reinterpret_cast<char*>(header)) + "\r\n";
}

bool opendkim_verify(DKIM_LIB* lib, const std::string& msg) {
  DKIM_STAT status;
  DKIM* d = dkim_verify(lib, reinterpret_cast<const unsigned char*>("bench"), nullptr, &status);
  dkim_chunk(d, reinterpret_cast<u_char*>(const_cast<char*>(msg.data())), msg.size());
  dkim_chunk(d, nullptr, 0);
  status = dkim_eom(d, nullptr);
  dkim_free(d);
  return status == DKIM_STAT_OK;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--sign") {
    std::string message((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::ifstream in(argv[3]);
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    DKIM_LIB* lib = dkim_init(nullptr, nullptr);
    const dkim_alg_t alg = std::string(argv[2]) == "ed25519" ? DKIM_SIGN_ED25519SHA256 : DKIM_SIGN_RSASHA256;
    DKIM_STAT status;
    DKIM* d = dkim_sign(lib, reinterpret_cast<const unsigned char*>("test"), nullptr,
                        reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(pem.c_str())),
                        reinterpret_cast<const unsigned char*>(argv[4]), reinterpret_cast<const unsigned char*>(argv[5]),
                        DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, alg, -1, &status);
    if (!d) return 1;
    dkim_chunk(d, reinterpret_cast<u_char*>(message.data()), message.size());
    dkim_chunk(d, nullptr, 0);
    if (dkim_eom(d, nullptr) != DKIM_STAT_OK) return 1;
    unsigned char header[8192];
    if (dkim_getsighdr(d, header, sizeof header, 16) != DKIM_STAT_OK) return 1;
    std::cout << "DKIM-Signature: " << header << "\r\n" << message;
    dkim_free(d);
    dkim_close(lib);
    return 0;
  }
  const int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  std::vector<std::string> messages;
  for (int i = 0; i < n; ++i) messages.push_back(message(i));
  const auto rsa = dkim::Key::generate(dkim::Algorithm::rsa_sha256, "bench.example", "s1");
  const auto ed = dkim::Key::generate(dkim::Algorithm::ed25519_sha256, "bench.example", "s1");

  DKIM_LIB* lib = dkim_init(nullptr, nullptr);
  // Keys for verification from a file instead of DNS (libopendkim's test query method).
  const auto keys = std::filesystem::temp_directory_path() / "coop-dkim-bench-keys";
  dkim_query_t method = DKIM_QUERY_FILE;
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof method);
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, const_cast<char*>(keys.c_str()), keys.string().size());

  std::printf("DKIM, %d messages of 4 KB, one core, relaxed/relaxed\n", n);
  for (const auto* key : {&rsa, &ed}) {
    const bool is_rsa = key == &rsa;
    const char* name = is_rsa ? "RSA-2048" : "Ed25519";
    const auto pem = key->private_pem();
    const dkim_alg_t alg = is_rsa ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256;
    std::vector<std::string> ours(n), theirs(n);
    const double coop_sign = per_second(n, [&](int i) { ours[i] = dkim::sign_message(messages[i], *key, 1796551200) + messages[i]; });
    const double odkim_sign = per_second(n, [&](int i) { theirs[i] = opendkim_sign(lib, pem, alg, messages[i]) + messages[i]; });
    {
      std::ofstream out(keys);
      out << "s1._domainkey.bench.example " << key->dns_record() << "\n";
    }
    // Each verifies both its own and the other's signatures, so both are checked for real.
    int coop_failures = 0, odkim_failures = 0;
    const double coop_verify = per_second(n, [&](int i) {
      const auto& m = i % 2 ? theirs[i] : ours[i];
      std::string error;
      const auto sig = dkim::parse_signature(dkim::signature_fields(m)[0], &error);
      if (!sig || dkim::verify_signature(m, *sig, key->dns_record(), 0).result != "pass") ++coop_failures;
    });
    const double odkim_verify = per_second(n, [&](int i) {
      if (!opendkim_verify(lib, i % 2 ? ours[i] : theirs[i])) ++odkim_failures;
    });
    if (coop_failures || odkim_failures)
      std::printf("  %s: verification failures: coop %d, libopendkim %d\n", name, coop_failures, odkim_failures);
    std::printf("  %-8s sign    coop %8.0f/s  libopendkim %8.0f/s  ratio %.2f\n", name, coop_sign, odkim_sign, coop_sign / odkim_sign);
    std::printf("  %-8s verify  coop %8.0f/s  libopendkim %8.0f/s  ratio %.2f\n", name, coop_verify, odkim_verify,
                coop_verify / odkim_verify);
  }
  std::filesystem::remove(keys);
  dkim_close(lib);
  return 0;
}
