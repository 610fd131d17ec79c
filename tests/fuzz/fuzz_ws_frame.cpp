// libFuzzer target: bytes a WebSocket client sends after the handshake. The reader must yield
// the same events whether the bytes come at once or in pieces (the first byte picks the piece
// size), text only as UTF-8, nothing over the message limit, and nothing after a close or an
// error.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/ws_frame.h"
#include "common/text.h"

using coop::http::ws::Event;
using coop::http::ws::FrameReader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  constexpr std::size_t kMax = 4096;
  const std::size_t piece = 1 + data[0] % 17;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  FrameReader whole(kMax), split(kMax);
  std::vector<Event> at_once, in_pieces;
  whole.feed(input, at_once);
  for (std::size_t at = 0; at < input.size(); at += piece) split.feed(input.substr(at, piece), in_pieces);

  if (at_once.size() != in_pieces.size()) std::abort();
  for (std::size_t i = 0; i < at_once.size(); ++i) {
    const auto& a = at_once[i];
    const auto& b = in_pieces[i];
    if (a.kind != b.kind || a.payload != b.payload || a.code != b.code) std::abort();
    if (a.kind == Event::Kind::text && !coop::is_valid_utf8(a.payload)) std::abort();
    if (a.payload.size() > kMax) std::abort();
    const bool last = a.kind == Event::Kind::close || a.kind == Event::Kind::error;
    if (last && i + 1 != at_once.size()) std::abort();
  }
  if (whole.done() != split.done()) std::abort();
  return 0;
}
