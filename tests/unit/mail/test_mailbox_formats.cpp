// Maildir names, flags and delivery; mboxrd quoting, Status/X-Status flags and exact round trips.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "common/error.h"
#include "common/mail/mailbox_formats.h"

namespace mail = coop::mail;
namespace fs = std::filesystem;

namespace {

struct Message {
  std::string sender;
  int64_t date = 0;
  unsigned flags = 0;
  std::string bytes;
};

// Writes messages to an mbox string, feeding each message in pieces of chunk_size() bytes.
std::string export_mbox(const std::vector<Message>& messages,
                        const std::function<std::size_t()>& chunk_size = [] { return std::size_t{1} << 20; }) {
  std::string out;
  mail::MboxWriter writer([&](std::string_view bytes) { out += bytes; });
  for (const Message& m : messages) {
    writer.begin_message(m.sender, m.date, m.flags);
    std::string_view rest = m.bytes;
    while (!rest.empty()) {
      const std::size_t n = std::min(rest.size(), std::max<std::size_t>(1, chunk_size()));
      writer.write(rest.substr(0, n));
      rest.remove_prefix(n);
    }
    writer.end_message();
  }
  return out;
}

// Reads every message of an mbox string, giving the reader at most chunk bytes per pull.
std::vector<Message> import_mbox(const std::string& mbox, mail::MboxLineEnding ending = mail::MboxLineEnding::kLf,
                                 std::size_t chunk = 1 << 20) {
  std::size_t pos = 0;
  mail::MboxReader reader(
      [&](char* buffer, std::size_t n) {
        const std::size_t count = std::min({n, chunk, mbox.size() - pos});
        std::memcpy(buffer, mbox.data() + pos, count);
        pos += count;
        return count;
      },
      ending);
  std::vector<Message> messages;
  Message m;
  while (reader.next(m.bytes, m.flags, m.sender, m.date)) messages.push_back(m);
  return messages;
}

Message one(std::string bytes, unsigned flags = 0) {
  return Message{"alice@coop.example", 1700000000, flags, std::move(bytes)};
}

// The single message an mbox round trip gives back.
std::string round_trip(const std::string& bytes, mail::MboxLineEnding ending = mail::MboxLineEnding::kLf) {
  const auto messages = import_mbox(export_mbox({one(bytes)}), ending);
  REQUIRE(messages.size() == 1);
  return messages[0].bytes;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "coop-mailbox-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

// ---- mboxrd ----

TEST_CASE("mboxrd quotes From_ lines at any depth") {
  CHECK(mail::mbox_from_line_quote_needed("From alice"));
  CHECK(mail::mbox_from_line_quote_needed(">From alice"));
  CHECK(mail::mbox_from_line_quote_needed(">>>From "));
  CHECK_FALSE(mail::mbox_from_line_quote_needed("From"));
  CHECK_FALSE(mail::mbox_from_line_quote_needed("From:alice"));
  CHECK_FALSE(mail::mbox_from_line_quote_needed(" From alice"));
  CHECK_FALSE(mail::mbox_from_line_quote_needed(">> From"));
  CHECK_FALSE(mail::mbox_from_line_quote_needed(">>>"));

  const std::string body = "Subject: q\n\nFrom a\n>From b\n>>From c\n>>>From d\n";
  const std::string mbox = export_mbox({one(body)});
  CHECK(mbox.find("\n>From a\n>>From b\n>>>From c\n>>>>From d\n") != std::string::npos);
  CHECK(round_trip(body) == body);
}

TEST_CASE("mboxrd leaves From without a following space unquoted") {
  const std::string body = "From: alice\nSubject: x\n\nFrom\nFromage\n>From\nFrom:\n";
  const std::string mbox = export_mbox({one(body)});
  CHECK(mbox.find("\nFrom\nFromage\n>From\nFrom:\n") != std::string::npos);
  CHECK(mbox.find(">From:") == std::string::npos);
  CHECK(round_trip(body) == body);
}

TEST_CASE("mboxrd quoting survives a From_ line split across write chunks") {
  const std::string body = "Subject: x\r\n\r\nhello\r\n>>From there\r\nFrom here\r\nFrom\r\nFro\r\n";
  const std::string whole = export_mbox({one(body)});
  CHECK(whole.find("\n>>>From there\n>From here\nFrom\nFro\n") != std::string::npos);
  // Every chunking, down to one byte at a time, splits "From " and CRLF in every possible place.
  for (std::size_t size = 1; size <= 7; ++size) {
    CHECK(export_mbox({one(body)}, [size] { return size; }) == whole);
  }
  std::mt19937 random(7);
  CHECK(export_mbox({one(body)}, [&] { return std::size_t{random() % 4}; }) == whole);
}

TEST_CASE("mboxrd reader unquotes lines split across source reads") {
  const std::string body = "Subject: x\n\n>From a\nFrom b\n";
  const std::string mbox = export_mbox({one(body), one(body)});
  for (std::size_t chunk = 1; chunk <= 5; ++chunk) {
    const auto messages = import_mbox(mbox, mail::MboxLineEnding::kLf, chunk);
    REQUIRE(messages.size() == 2);
    CHECK(messages[0].bytes == body);
    CHECK(messages[1].bytes == body);
  }
}

TEST_CASE("a message without a final newline gains one and then stays stable") {
  const std::string body = "Subject: x\n\nno newline at the end";
  const std::string first = export_mbox({one(body)});
  CHECK(first.ends_with("\nno newline at the end\n\n"));
  CHECK(round_trip(body) == body + "\n");
  CHECK(export_mbox(import_mbox(first)) == first);

  // Even when the unfinished last line is an unfinished "From" or headers without a body.
  CHECK(round_trip("Subject: x\n\nFrom") == "Subject: x\n\nFrom\n");
  CHECK(round_trip("Subject: x\n\n>From ") == "Subject: x\n\n>From \n");
  CHECK(round_trip("Subject: only headers") == "Subject: only headers\n");
  CHECK(round_trip("") == "");
}

TEST_CASE("mbox output uses LF and the reader restores CRLF on request") {
  const std::string crlf = "Subject: x\r\nTo: bob\r\n\r\nline one\r\nline two\r\n";
  const std::string mbox = export_mbox({one(crlf)});
  CHECK(mbox.find('\r') == std::string::npos);
  CHECK(round_trip(crlf) == "Subject: x\nTo: bob\n\nline one\nline two\n");
  CHECK(round_trip(crlf, mail::MboxLineEnding::kCrlf) == crlf);
  // A lone CR is message text; CR CR LF keeps its first CR.
  const std::string odd = "Subject: x\r\n\r\na\rb\r\r\nc\r";
  CHECK(round_trip(odd, mail::MboxLineEnding::kCrlf) == "Subject: x\r\n\r\na\rb\r\r\nc\r\r\n");
}

TEST_CASE("flags round trip through Status and X-Status") {
  for (unsigned flags = 0; flags < 32; ++flags) {
    const std::string body = "Subject: f\n\nbody\n";
    const auto messages = import_mbox(export_mbox({one(body, flags)}));
    REQUIRE(messages.size() == 1);
    CHECK(messages[0].flags == flags);
    CHECK(messages[0].bytes == body);
  }
  const std::string mbox = export_mbox({one("Subject: f\n\nbody\n", mail::kSeen | mail::kAnswered | mail::kFlagged |
                                                                       mail::kDraft | mail::kDeleted)});
  CHECK(mbox.find("Subject: f\nStatus: RO\nX-Status: AFTD\n\nbody\n") != std::string::npos);
  CHECK(export_mbox({one("Subject: f\n\nbody\n")}).find("Subject: f\nStatus: O\n\nbody") != std::string::npos);
}

TEST_CASE("the reader removes only the Status lines the writer added") {
  // Messages that already end their headers with Status or X-Status keep them.
  for (const std::string body : {"Subject: s\nStatus: RO\n\nbody\n", "Subject: s\nX-Status: F\n\nbody\n",
                                 "Status: RO\nX-Status: AF\n\nbody\n", "X-Status: A\nStatus: O\n",
                                 "\nStatus: RO\n", "Status: O\n\n\n"}) {
    for (const unsigned flags : {0u, unsigned{mail::kSeen}, unsigned{mail::kAnswered | mail::kSeen}}) {
      const auto messages = import_mbox(export_mbox({one(body, flags)}));
      REQUIRE(messages.size() == 1);
      CHECK(messages[0].bytes == body);
      CHECK(messages[0].flags == flags);
    }
  }
}

TEST_CASE("a two-message mbox has exactly the expected bytes") {
  const std::string mbox = export_mbox({
      Message{"alice@coop.example", 0, mail::kSeen | mail::kFlagged,
              "From: alice@coop.example\r\nSubject: hi\r\n\r\nFrom the start\r\n"},
      Message{"", 1700000000, 0, "Subject: second\n\n>From quoted\nbye"},
  });
  CHECK(mbox ==
        "From alice@coop.example Thu Jan  1 00:00:00 1970\n"
        "From: alice@coop.example\n"
        "Subject: hi\n"
        "Status: RO\n"
        "X-Status: F\n"
        "\n"
        ">From the start\n"
        "\n"
        "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n"
        "Subject: second\n"
        "Status: O\n"
        "\n"
        ">>From quoted\n"
        "bye\n"
        "\n");
  const auto messages = import_mbox(mbox);
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].sender == "alice@coop.example");
  CHECK(messages[0].date == 0);
  CHECK(messages[1].sender == "MAILER-DAEMON");
  CHECK(messages[1].date == 1700000000);
}

TEST_CASE("export then import then export is byte-identical for random messages") {
  std::mt19937_64 random(20240611);
  const std::vector<std::string> pieces = {"From ", ">From ", ">>From ", "From", ">", "\r\n", "\n", "\r",
                                           "Status: RO\n", "X-Status: AF\n", "Status: O\r\n", "\r\n\r\n",
                                           "Subject: hello\r\n", "body text ", "From: a@b\r\n", " ", "x"};
  std::vector<Message> messages;
  for (int i = 0; i < 20; ++i) {
    Message m;
    m.sender = i % 5 == 0 ? "" : "sender" + std::to_string(i) + "@coop.example";
    m.date = static_cast<int64_t>(random() % 4000000000ULL);
    m.flags = static_cast<unsigned>(random() % 32);
    const std::size_t count = random() % 60;
    for (std::size_t p = 0; p < count; ++p) m.bytes += pieces[random() % pieces.size()];
    if (i == 3) m.bytes += std::string(200000, 'y');  // larger than the writer's flush size
    messages.push_back(std::move(m));
  }
  const auto chunk = [&] { return std::size_t{random() % 9}; };
  const std::string first = export_mbox(messages, chunk);
  const auto imported = import_mbox(first, mail::MboxLineEnding::kCrlf, 1 + random() % 13);
  REQUIRE(imported.size() == messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    CHECK(imported[i].flags == messages[i].flags);
    CHECK(imported[i].date == messages[i].date);
    CHECK(imported[i].sender == (messages[i].sender.empty() ? "MAILER-DAEMON" : messages[i].sender));
  }
  const std::string second = export_mbox(imported, chunk);
  CHECK(second == first);
  CHECK(export_mbox(import_mbox(second, mail::MboxLineEnding::kCrlf, 4096), chunk) == first);
}

TEST_CASE("the reader splits only at From_ lines that follow an empty line") {
  // A foreign mboxo file may hold an unquoted "From " inside a message.
  const std::string mbox =
      "\nFrom a@b Thu Jan  1 00:00:00 1970\nSubject: one\n\nbody\nFrom inside\n\n"
      "From c@d Thu Jan  1 00:01:00 1970 +0000\nSubject: two\n\n";
  const auto messages = import_mbox(mbox);
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].bytes == "Subject: one\n\nbody\nFrom inside\n");
  CHECK(messages[1].sender == "c@d");
  CHECK(messages[1].date == 60);
  CHECK(messages[1].bytes == "Subject: two\n");
  // Dates the reader cannot make sense of become 0 rather than an error.
  CHECK(import_mbox("From x Thu Jan 123456789012345678901 00:00:00 1970\n\n")[0].date == 0);
  CHECK(import_mbox("From x yesterday\n\n")[0].date == 0);
  CHECK(import_mbox("From x\n\n")[0].sender == "x");
}

TEST_CASE("the reader rejects a file that is not an mbox and accepts an empty one") {
  CHECK(import_mbox("").empty());
  CHECK_THROWS_AS(import_mbox("Subject: x\n\nbody\n"), coop::Error);
}

TEST_CASE("mbox writer and reader stream without holding the whole file") {
  const std::string big(3 << 20, 'z');
  std::size_t sink_calls = 0;
  std::string out;
  mail::MboxWriter writer([&](std::string_view bytes) {
    ++sink_calls;
    CHECK(bytes.size() <= 256 * 1024);  // bounded by the writer, not by the message
    out += bytes;
  });
  writer.begin_message("a@b", 0, 0);
  for (std::size_t i = 0; i < big.size(); i += 256 * 1024) writer.write(std::string_view(big).substr(i, 256 * 1024));
  CHECK(sink_calls > 1);  // bytes left before the message ended
  writer.end_message();
  const std::string second = "Subject: second\n\n" + std::string(1 << 20, 'w') + "\n";
  writer.begin_message("a@b", 0, 0);
  writer.write(second);
  writer.end_message();

  std::size_t pos = 0;
  mail::MboxReader reader([&](char* buffer, std::size_t n) {
    const std::size_t count = std::min(n, out.size() - pos);
    std::memcpy(buffer, out.data() + pos, count);
    pos += count;
    return count;
  });
  std::string message, sender;
  unsigned flags = 0;
  int64_t date = 0;
  REQUIRE(reader.next(message, flags, sender, date));
  CHECK(message == big + "\n");
  CHECK(pos < out.size());  // only read up to the next From_ line, not to the end
  REQUIRE(reader.next(message, flags, sender, date));
  CHECK(message == second);
  CHECK_FALSE(reader.next(message, flags, sender, date));
}

// ---- Maildir ----

TEST_CASE("maildir info lists flag letters in ASCII order") {
  CHECK(mail::maildir_info(0) == ":2,");
  CHECK(mail::maildir_info(mail::kSeen | mail::kAnswered | mail::kFlagged) == ":2,FRS");
  CHECK(mail::maildir_info(mail::kSeen | mail::kAnswered | mail::kFlagged | mail::kDeleted | mail::kDraft) ==
        ":2,DFRST");
  CHECK(mail::maildir_info(mail::kDeleted | mail::kDraft) == ":2,DT");
}

TEST_CASE("maildir flag parsing ignores unknown letters and names without info") {
  CHECK(mail::parse_maildir_flags("1700000000.M0P1Q1.host:2,aSxFzP") == (mail::kSeen | mail::kFlagged));
  CHECK(mail::parse_maildir_flags("1700000000.M0P1Q1.host:2,DFRST") ==
        (mail::kDraft | mail::kFlagged | mail::kAnswered | mail::kSeen | mail::kDeleted));
  CHECK(mail::parse_maildir_flags("1700000000.M0P1Q1.host:2,s") == 0);
  CHECK(mail::parse_maildir_flags("1700000000.M0P1Q1.host:2,") == 0);
  CHECK(mail::parse_maildir_flags("1700000000.M0P1Q1.host") == 0);
  CHECK(mail::parse_maildir_flags("/m/cur/1.M0P1Q1.host:2,R") == mail::kAnswered);
  for (unsigned flags = 0; flags < 32; ++flags) {
    CHECK(mail::parse_maildir_flags("x" + mail::maildir_info(flags)) == flags);
  }
}

TEST_CASE("maildir unique names differ by sequence and escape the host") {
  const std::string a = mail::maildir_unique_name(1700000000, 1, "mx.coop.example");
  const std::string b = mail::maildir_unique_name(1700000000, 2, "mx.coop.example");
  CHECK(a != b);
  CHECK(a == "1700000000.M0P" + std::to_string(::getpid()) + "Q1.mx.coop.example");
  const std::string odd = mail::maildir_unique_name(5, 9, "a/b:c");
  CHECK(odd.ends_with(".a\\057b\\072c"));
  CHECK(odd.find('/') == std::string::npos);
  CHECK(odd.find(':') == std::string::npos);
}

TEST_CASE("maildir delivery lands in cur with its flags and lists sorted") {
  TempDir temp;
  const fs::path dir = temp.path() / "Maildir";
  mail::maildir_create(dir);
  mail::maildir_create(dir);  // idempotent
  for (const char* sub : {"tmp", "new", "cur"}) {
    CHECK(fs::is_directory(dir / sub));
    CHECK((fs::status(dir / sub).permissions() & fs::perms::group_all) == fs::perms::none);
  }

  mail::maildir_deliver(dir, mail::maildir_unique_name(100, 2, "h"), mail::kSeen | mail::kFlagged, "second\r\n");
  mail::maildir_deliver_stream(dir, mail::maildir_unique_name(100, 1, "h"), 0,
                               [](const std::function<void(std::string_view)>& write) {
                                 write("fir");
                                 write("st\r\n");
                               });
  {
    std::ofstream(dir / "new" / "050.M0P1Q1.h") << "new one";
    std::ofstream(dir / "cur" / ".hidden") << "skip me";
    std::ofstream(dir / "tmp" / "000.partial") << "skip me too";
  }

  const auto messages = mail::maildir_list(dir);
  REQUIRE(messages.size() == 3);
  CHECK(messages[0].path.filename() == "050.M0P1Q1.h");
  CHECK(messages[0].is_new);
  CHECK(messages[1].path.filename() == mail::maildir_unique_name(100, 1, "h") + ":2,");
  CHECK_FALSE(messages[1].is_new);
  CHECK(messages[1].flags == 0);
  CHECK(read_file(messages[1].path) == "first\r\n");
  CHECK(messages[2].path.filename() == mail::maildir_unique_name(100, 2, "h") + ":2,FS");
  CHECK(messages[2].flags == (mail::kSeen | mail::kFlagged));
  CHECK(read_file(messages[2].path) == "second\r\n");
  CHECK(fs::exists(dir / "tmp" / "000.partial"));
  CHECK(std::distance(fs::directory_iterator(dir / "tmp"), fs::directory_iterator()) == 1);

  // The same unique name again must not replace the delivered message.
  CHECK_THROWS_AS(mail::maildir_deliver(dir, mail::maildir_unique_name(100, 2, "h"), mail::kSeen | mail::kFlagged, "x"),
                  coop::Error);
  CHECK(read_file(messages[2].path) == "second\r\n");
  // A producer that fails leaves nothing behind.
  CHECK_THROWS(mail::maildir_deliver_stream(dir, "fails", 0, [](const std::function<void(std::string_view)>& write) {
    write("partial");
    throw std::runtime_error("source failed");
  }));
  CHECK_FALSE(fs::exists(dir / "tmp" / "fails"));
  CHECK(mail::maildir_list(dir).size() == 3);
  CHECK_THROWS_AS(mail::maildir_deliver(dir, "bad/name", 0, "x"), coop::Error);
  CHECK_THROWS_AS(mail::maildir_list(temp.path()), coop::Error);
}

TEST_CASE("keywords travel in X-Keywords after Status, and a message's own X-Keywords stays") {
  std::string out;
  mail::MboxWriter writer([&out](std::string_view chunk) { out += chunk; });
  writer.begin_message("a@example.org", 1000, mail::kSeen, "$Label1 Project");
  writer.write("Subject: one\r\n\r\nbody\r\n");
  writer.end_message();
  writer.begin_message("a@example.org", 1000, 0);
  writer.write("Subject: two\r\nX-Keywords: theirs\r\n\r\nbody\r\n");
  writer.end_message();
  CHECK(out.find("Status: RO\nX-Keywords: $Label1 Project\n\nbody") != std::string::npos);

  std::size_t at = 0;
  mail::MboxReader reader([&](char* buffer, std::size_t size) {
    const auto n = std::min(size, out.size() - at);
    out.copy(buffer, n, at);
    at += n;
    return n;
  }, mail::MboxLineEnding::kCrlf);
  std::string message, sender, keywords;
  unsigned flags = 0;
  int64_t date = 0;
  REQUIRE(reader.next(message, flags, sender, date, keywords));
  CHECK(keywords == "$Label1 Project");
  CHECK(message == "Subject: one\r\n\r\nbody\r\n");
  REQUIRE(reader.next(message, flags, sender, date, keywords));
  CHECK(keywords.empty());
  CHECK(message == "Subject: two\r\nX-Keywords: theirs\r\n\r\nbody\r\n");
}

TEST_CASE("Maildir keywords are letters after the flags, named in dovecot-keywords") {
  TempDir tmp;
  const auto dir = tmp.path() / "box";
  mail::maildir_create(dir);
  mail::MaildirKeywords names;
  const auto letters = names.letters_for("$Junk Project $Junk");
  CHECK(letters == "ab");
  CHECK(names.letters_for("Project Later") == "bc");
  CHECK(mail::maildir_info(mail::kSeen, "ca") == ":2,Sac");
  names.write(dir);
  mail::maildir_deliver(dir, "1.U1.coop", mail::kSeen, "x\r\n", letters);
  const auto read = mail::MaildirKeywords::read(dir);
  const auto listed = mail::maildir_list(dir);
  REQUIRE(listed.size() == 1);
  CHECK(read.keywords_of(mail::maildir_keyword_letters(listed[0].path.filename().string())) == "$Junk Project");
  CHECK(listed[0].flags == mail::kSeen);
  mail::MaildirKeywords full;
  std::string many;
  for (int i = 0; i < 30; ++i) many += "k" + std::to_string(i) + " ";
  CHECK(full.letters_for(many).size() == 26);
  CHECK(full.dropped() == 4);
}
