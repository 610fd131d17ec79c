// Media downloads over federation: the multipart/mixed answer's content part, and what is
// refused (a hostile server's answer never becomes media).
#include <catch2/catch.hpp>

#include "workers/federate/media.h"

using coop::federate::parse_media_download;

TEST_CASE("the content part of a multipart/mixed media answer is taken with its type") {
  const std::string body =
      "--xyz\r\nContent-Type: application/json\r\n\r\n{}\r\n--xyz\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--x\r\n--xyz--\r\n";
  const auto part = parse_media_download(body);
  REQUIRE(part);
  CHECK(part->content_type == "image/png");
  CHECK(part->bytes == "\x89PNG\r\n--x");  // a line that only looks like a boundary is content
  const std::string untyped = "--b0\r\n\r\n{}\r\n--b0\r\n\r\nraw\r\n--b0--";
  REQUIRE(parse_media_download(untyped));
  CHECK(parse_media_download(untyped)->content_type == "application/octet-stream");
}

TEST_CASE("answers that are not a two-part multipart body, or that redirect, are refused") {
  for (const std::string body : {std::string(""), std::string("{}"), std::string("--\r\n"),
                                 std::string("--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--"),  // one part
                                 std::string("--b\r\n\r\n{}\r\n--b\r\n\r\nx"),                              // never closed
                                 std::string("--b\r\n\r\n{}\r\n--b\r\nLocation: http://127.0.0.1:1/x\r\n\r\n\r\n--b--"),
                                 std::string("--b\r\n\r\n{}\r\n--b\r\nno blank line\r\n--b--"),
                                 std::string("--") + std::string(100, 'b') + "\r\n"})
    CHECK_FALSE(parse_media_download(body));
}
