// libFuzzer target: the SMTP DATA and BDAT byte streams (dot-stuffing, bare LF, long lines),
// checked against what must hold: reads of any size give the same content, DATA ends only
// after "\r\n.\r\n" was sent, and stored content has no bare LF.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "workers/mail/smtp_parser.h"

namespace {

struct Read {
  bool done = false;
  std::string content, rest;
};

Read read(std::string_view bytes, std::size_t piece) {
  coop::mail::DataReader reader;
  Read r;
  std::string in;
  for (std::size_t at = 0; at < bytes.size() && !r.done; at += piece) {
    in.append(bytes.substr(at, piece));
    r.done = reader.consume(in, r.content);
  }
  r.rest = in;
  return r;
}

bool has_bare_lf(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto whole = read(input, input.size() + 1);
  const auto bytewise = read(input, 1);
  const auto odd = read(input, 7);
  if (whole.done != bytewise.done || whole.done != odd.done) std::abort();
  if (whole.done && (whole.content != bytewise.content || whole.content != odd.content)) std::abort();
  if (whole.done) {
    // The terminator is the last thing taken: it was sent as CRLF "." CRLF (or DATA began with it).
    const auto taken = input.substr(0, input.size() - whole.rest.size());
    if (taken != ".\r\n" && (taken.size() < 5 || taken.substr(taken.size() - 5) != "\r\n.\r\n")) std::abort();
    if (has_bare_lf(whole.content)) std::abort();
  }
  std::string chunked;
  char previous = '\n';
  coop::mail::append_crlf_normalised(input.substr(0, size / 2), previous, chunked);
  coop::mail::append_crlf_normalised(input.substr(size / 2), previous, chunked);
  if (has_bare_lf(chunked)) std::abort();
  return 0;
}
