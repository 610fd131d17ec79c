// libFuzzer target: bytes an IMAP client sends. The reader gathers commands (the first byte
// picks how the input is split), then each command is walked token by token as the session
// reads them. A command always has one line more than it has literals; modified UTF-7 names
// survive a round trip; nothing may crash.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "workers/mail/imap_parser.h"

using namespace coop::mail::imap;

namespace {

// Modified UTF-7 mailbox names: whatever decodes encodes back to text that decodes the same.
void modified_utf7_round_trip(const std::string& text) {
  if (const auto decoded = from_modified_utf7(text))
    if (from_modified_utf7(to_modified_utf7(*decoded)) != decoded) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 23;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  CommandReader reader(ReaderLimits{256, 512, 2048});
  for (std::size_t at = 0; at < input.size(); at += piece) {
    reader.feed(input.substr(at, piece));
    for (auto status = reader.next(); status != CommandReader::Status::need_more; status = reader.next()) {
      if (status == CommandReader::Status::fatal) return 0;
      if (status != CommandReader::Status::command) continue;
      const RawCommand command = reader.take();
      if (command.lines.size() != command.literals.size() + 1) std::abort();
      tag_of(command);
      Cursor c(command);
      if (!c.tag() || !c.space() || !c.atom()) continue;
      for (int i = 0; i < 64 && !c.at_end(); ++i) {
        if (!c.space()) break;
        if (c.number() || c.nstring()) continue;
        if (auto text = c.astring()) {
          modified_utf7_round_trip(*text);
          continue;
        }
        if (c.list_mailbox()) continue;
        if (auto set = parse_sequence_set(c.rest_of_line(), 100)) set->contains(50);
      }
    }
  }
  return 0;
}
