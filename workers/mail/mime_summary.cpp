// Parses a stored message with GMime into its IMAP ENVELOPE and BODYSTRUCTURE as JSON.
#include "workers/mail/mime_summary.h"

#include "workers/mail/gmime_ref.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace coop::mail {

void ensure_gmime_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_mime_init();
    // GLib initialises GObject classes lazily under futex locks ThreadSanitizer cannot see;
    // creating them here, inside call_once, keeps the worker's TSan runs free of that noise.
    // Static types' classes live for the process anyway.
    for (GType type : {GMIME_TYPE_PARSER, GMIME_TYPE_STREAM_MEM, GMIME_TYPE_MESSAGE, GMIME_TYPE_MESSAGE_PART,
                       GMIME_TYPE_MULTIPART, GMIME_TYPE_PART, GMIME_TYPE_TEXT_PART, GMIME_TYPE_DATA_WRAPPER,
                       GMIME_TYPE_HEADER_LIST, GMIME_TYPE_CONTENT_TYPE, GMIME_TYPE_CONTENT_DISPOSITION,
                       GMIME_TYPE_PARAM_LIST, INTERNET_ADDRESS_LIST_TYPE, INTERNET_ADDRESS_TYPE_MAILBOX,
                       INTERNET_ADDRESS_TYPE_GROUP}) {
      g_type_class_ref(type);
    }
  });
}

namespace {

using nlohmann::json;

// A message GMime parsed from bytes, alive as long as this is.
struct ParsedMessage {
  explicit ParsedMessage(std::string_view bytes)
      : stream((ensure_gmime_initialized(), g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()))),
        parser(g_mime_parser_new_with_stream(stream.get())),
        message(g_mime_parser_construct_message(parser.get(), nullptr)) {}
  GRef<GMimeStream> stream;
  GRef<GMimeParser> parser;
  GRef<GMimeMessage> message;
};

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// nlohmann::json::dump throws on invalid UTF-8, and 8-bit headers arrive in any charset:
// every string that enters the JSON goes through here. Invalid sequences (bad lead or
// continuation bytes, overlong forms, surrogates, > U+10FFFF) become U+FFFD.
std::string valid_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    const auto lead = static_cast<unsigned char>(in[i]);
    if (lead < 0x80) {
      out += static_cast<char>(lead);
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    uint32_t minimum = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2, code_point = lead & 0x1F, minimum = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, code_point = lead & 0x0F, minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4, code_point = lead & 0x07, minimum = 0x10000;
    }
    bool valid = length != 0 && i + length <= in.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(in[i + k]);
      if ((next & 0xC0) != 0x80) valid = false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    if (valid && (code_point < minimum || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF))) {
      valid = false;
    }
    if (valid) {
      out.append(in.substr(i, length));
      i += length;
    } else {
      out.append(kReplacementCharacter);
      ++i;
    }
  }
  return out;
}

json string_or_null(const char* text) { return text ? json(valid_utf8(text)) : json(nullptr); }

json string_or_null(const std::optional<std::string>& text) { return text ? json(*text) : json(nullptr); }

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = g_ascii_tolower(c);
  return out;
}

// The raw value of the first header called `name`, unfolded (RFC 5322 2.2.3) and trimmed:
// what IMAP puts in ENVELOPE's date, in-reply-to and message-id and BODYSTRUCTURE's body-fld-id.
std::optional<std::string> raw_header(GMimeObject* object, const char* name) {
  GMimeHeaderList* headers = g_mime_object_get_header_list(object);
  GMimeHeader* header = headers ? g_mime_header_list_get_header(headers, name) : nullptr;
  const char* raw = header ? g_mime_header_get_raw_value(header) : nullptr;
  if (!raw) return std::nullopt;
  std::string unfolded;
  for (const char* p = raw; *p; ++p) {
    if (*p != '\r' && *p != '\n') unfolded += *p;
  }
  const auto first = unfolded.find_first_not_of(" \t");
  if (first == std::string::npos) return std::string();
  const auto last = unfolded.find_last_not_of(" \t");
  return valid_utf8(std::string_view(unfolded).substr(first, last - first + 1));
}

// Mailboxes as ENVELOPE addresses (RFC 3501 7.4.2, RFC 9051 7.5.2). An RFC 5322 group is
// kept as IMAP writes it: a start marker whose mailbox is the group's name, its members, and
// an end marker with no mailbox; both markers carry "group": true and no host.
void append_addresses(InternetAddressList* list, json& out, int depth) {
  if (!list || depth > 4) return;
  const int count = internet_address_list_length(list);
  for (int i = 0; i < count; ++i) {
    InternetAddress* address = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_GROUP(address)) {
      const char* group = internet_address_get_name(address);
      out.push_back({{"name", nullptr}, {"mailbox", valid_utf8(group ? group : "")}, {"host", nullptr}, {"group", true}});
      append_addresses(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address)), out, depth + 1);
      out.push_back({{"name", nullptr}, {"mailbox", nullptr}, {"host", nullptr}, {"group", true}});
      continue;
    }
    if (!INTERNET_ADDRESS_IS_MAILBOX(address)) continue;
    const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address));
    const std::string_view spec = addr ? addr : "";
    // The domain never contains '@' but a quoted local part may.
    const auto at = spec.rfind('@');
    const char* name = internet_address_get_name(address);
    out.push_back({
        {"name", name && *name ? string_or_null(name) : json(nullptr)},
        {"mailbox", valid_utf8(spec.substr(0, at))},
        {"host", at == std::string_view::npos ? json(nullptr) : json(valid_utf8(spec.substr(at + 1)))},
    });
  }
}

json address_list(InternetAddressList* list) {
  json out = json::array();
  append_addresses(list, out, 0);
  return out;
}

json empty_envelope() {
  return {{"date", nullptr},          {"subject", nullptr}, {"from", json::array()}, {"sender", json::array()},
          {"reply_to", json::array()}, {"to", json::array()}, {"cc", json::array()},   {"bcc", json::array()},
          {"in_reply_to", nullptr},    {"message_id", nullptr}};
}

json envelope_of(GMimeMessage* message) {
  GMimeObject* object = GMIME_OBJECT(message);
  json envelope = empty_envelope();
  envelope["date"] = string_or_null(raw_header(object, "Date"));
  envelope["subject"] = string_or_null(g_mime_message_get_subject(message));
  envelope["from"] = address_list(g_mime_message_get_from(message));
  envelope["sender"] = address_list(g_mime_message_get_sender(message));
  envelope["reply_to"] = address_list(g_mime_message_get_reply_to(message));
  envelope["to"] = address_list(g_mime_message_get_to(message));
  envelope["cc"] = address_list(g_mime_message_get_cc(message));
  envelope["bcc"] = address_list(g_mime_message_get_bcc(message));
  envelope["in_reply_to"] = string_or_null(raw_header(object, "In-Reply-To"));
  envelope["message_id"] = string_or_null(raw_header(object, "Message-ID"));
  // RFC 3501 7.4.2: the server fills in sender and reply-to from from when they are absent.
  if (envelope["sender"].empty()) envelope["sender"] = envelope["from"];
  if (envelope["reply_to"].empty()) envelope["reply_to"] = envelope["from"];
  return envelope;
}

json parameters_of(GMimeParamList* list) {
  json params = json::object();
  const int count = list ? g_mime_param_list_length(list) : 0;
  for (int i = 0; i < count; ++i) {
    GMimeParam* param = g_mime_param_list_get_parameter_at(list, i);
    const char* name = param ? g_mime_param_get_name(param) : nullptr;
    if (!name) continue;
    const std::string key = valid_utf8(lowercase(name));
    if (params.contains(key)) continue;  // the first occurrence wins, as GMime's own lookups do
    params[key] = string_or_null(g_mime_param_get_value(param));
  }
  return params;
}

struct BodyMeasure {
  int64_t size = 0;
  int64_t lines = 0;
};

// RFC 3501 body-fld-lines counts text lines; the line break before a multipart delimiter
// belongs to the delimiter (RFC 2046 5.1.1), so a last line without one still counts.
class LineCounter {
 public:
  void add(std::string_view chunk) {
    if (chunk.empty()) return;
    size_ += static_cast<int64_t>(chunk.size());
    newlines_ += static_cast<int64_t>(std::count(chunk.begin(), chunk.end(), '\n'));
    ends_with_newline_ = chunk.back() == '\n';
  }
  BodyMeasure result() const { return {size_, newlines_ + (size_ > 0 && !ends_with_newline_ ? 1 : 0)}; }

 private:
  int64_t size_ = 0;
  int64_t newlines_ = 0;
  bool ends_with_newline_ = false;
};

BodyMeasure measure(std::string_view body) {
  LineCounter counter;
  counter.add(body);
  return counter.result();
}

BodyMeasure measure(GMimeStream* stream) {
  LineCounter counter;
  char buffer[16384];
  g_mime_stream_reset(stream);
  for (;;) {
    const ssize_t got = g_mime_stream_read(stream, buffer, sizeof buffer);
    if (got <= 0) break;
    counter.add(std::string_view(buffer, static_cast<size_t>(got)));
  }
  g_mime_stream_reset(stream);
  return counter.result();
}

bool is_boundary_end(std::string_view rest) {
  // RFC 2046 5.1.1: the delimiter may be followed by "--" and linear whitespace.
  return rest.empty() || rest.starts_with("--") || rest[0] == '\r' || rest[0] == '\n' || rest[0] == ' ' ||
         rest[0] == '\t';
}

class StructureWalker {
 public:
  explicit StructureWalker(std::string_view bytes) : bytes_(bytes) {}

  bool has_attachments() const { return has_attachments_; }

  // `part` is the IMAP part specifier (RFC 3501 6.4.5); a multipart passes it on as the
  // prefix of its children's numbers. `in_attached_message` keeps attachments of a forwarded
  // message from counting for the outer one.
  json describe(GMimeObject* object, const std::string& part, int depth, bool in_attached_message) {
    ++parts_;
    json node = common_fields(object, part);
    const std::string type = node["type"];
    if (GMIME_IS_MULTIPART(object)) {
      describe_multipart(GMIME_MULTIPART(object), part, depth, in_attached_message, node);
    } else if (GMIME_IS_MESSAGE_PART(object)) {
      describe_message_part(GMIME_MESSAGE_PART(object), part, depth, node);
      if (!in_attached_message) note_attachment(node, type);
    } else {
      if (GMIME_IS_PART(object)) describe_leaf(GMIME_PART(object), type, node);
      if (!in_attached_message) note_attachment(node, type);
    }
    return node;
  }

  // The structure of a message whose body GMime could not give us: the whole input as text.
  json describe_unparsed(std::string_view body, const std::string& part) {
    json node = {{"type", "text"},
                 {"subtype", "plain"},
                 {"params", {{"charset", "us-ascii"}}},
                 {"id", nullptr},
                 {"description", nullptr},
                 {"encoding", "7bit"},
                 {"disposition", nullptr},
                 {"language", nullptr},
                 {"location", nullptr},
                 {"part", part}};
    const auto measured = measure(body);
    node["size"] = measured.size;
    node["lines"] = measured.lines;
    return node;
  }

 private:
  json common_fields(GMimeObject* object, const std::string& part) {
    json node;
    GMimeContentType* content_type = g_mime_object_get_content_type(object);
    const char* media_type = content_type ? g_mime_content_type_get_media_type(content_type) : nullptr;
    const char* media_subtype = content_type ? g_mime_content_type_get_media_subtype(content_type) : nullptr;
    // RFC 2045 5.2: a missing or unusable Content-Type means text/plain.
    const std::string type = valid_utf8(media_type && *media_type ? media_type : "text");
    const std::string subtype = valid_utf8(media_subtype && *media_subtype ? media_subtype : "plain");
    node["type"] = lowercase(type);
    node["subtype"] = lowercase(subtype);
    // IMAP BODYSTRUCTURE gives them back as written ("X-MyOwn"); kept only where that differs.
    if (type != node["type"]) node["type_written"] = type;
    if (subtype != node["subtype"]) node["subtype_written"] = subtype;
    node["params"] = parameters_of(content_type ? g_mime_content_type_get_parameters(content_type) : nullptr);
    node["id"] = string_or_null(raw_header(object, "Content-ID"));
    node["description"] = string_or_null(g_mime_object_get_header(object, "Content-Description"));
    const auto encoding = raw_header(object, "Content-Transfer-Encoding");
    // RFC 2045 6.1: 7bit is the default.
    node["encoding"] = encoding && !encoding->empty() ? lowercase(*encoding) : std::string("7bit");
    GMimeContentDisposition* disposition = g_mime_object_get_content_disposition(object);
    const char* disposition_type = disposition ? g_mime_content_disposition_get_disposition(disposition) : nullptr;
    if (disposition_type && *disposition_type) {
      node["disposition"] = {{"type", valid_utf8(lowercase(disposition_type))},
                             {"params", parameters_of(g_mime_content_disposition_get_parameters(disposition))}};
    } else {
      node["disposition"] = nullptr;
    }
    node["language"] = languages_of(object);
    node["location"] = string_or_null(raw_header(object, "Content-Location"));
    if (const auto md5 = raw_header(object, "Content-MD5"); md5 && !md5->empty()) node["md5"] = *md5;  // RFC 1864
    node["part"] = part;
    return node;
  }

  // RFC 3282 Content-Language: a list of tags, as IMAP body-fld-lang and JMAP language want.
  static json languages_of(GMimeObject* object) {
    const auto header = raw_header(object, "Content-Language");
    if (!header) return nullptr;
    json tags = json::array();
    std::string tag;
    for (char c : *header + ",") {
      if (c == ',' || c == ' ' || c == '\t') {
        if (!tag.empty()) tags.push_back(tag);
        tag.clear();
      } else {
        tag += c;
      }
    }
    return tags.empty() ? json(nullptr) : tags;
  }

  void note_attachment(const json& node, const std::string& type) {
    if (node["disposition"].is_object() && node["disposition"]["type"] == "attachment") {
      has_attachments_ = true;
      return;
    }
    if (type == "text" || type == "multipart") return;
    const auto& disposition_params = node["disposition"].is_object() ? node["disposition"]["params"] : json::object();
    if (disposition_params.contains("filename") || node["params"].contains("name")) has_attachments_ = true;
  }

  void describe_leaf(GMimePart* part, const std::string& type, json& node) {
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    GMimeStream* stream = content ? g_mime_data_wrapper_get_stream(content) : nullptr;
    BodyMeasure body;
    if (stream) {
      body = measure(stream);
      // With a persistent parser the content is a window onto our memory stream, so its
      // bounds are the body's place in the message.
      if (GMIME_IS_STREAM_MEM(stream) && stream->bound_start >= 0 &&
          static_cast<uint64_t>(stream->bound_start) + static_cast<uint64_t>(body.size) <= bytes_.size()) {
        node["offset"] = stream->bound_start;
      }
    }
    node["size"] = body.size;
    if (type == "text") node["lines"] = body.lines;
  }

  void describe_multipart(GMimeMultipart* multipart, const std::string& part, int depth, bool in_attached_message,
                          json& node) {
    node["parts"] = json::array();
    if (depth >= kMaxMimeDepth) {
      node["truncated"] = true;
      return;
    }
    const int count = g_mime_multipart_get_count(multipart);
    for (int i = 0; i < count; ++i) {
      if (parts_ >= kMaxMimeParts) {
        node["truncated"] = true;
        return;
      }
      GMimeObject* child = g_mime_multipart_get_part(multipart, i);
      if (!child) continue;
      const std::string number = part.empty() ? std::to_string(i + 1) : part + "." + std::to_string(i + 1);
      const char* boundary = g_mime_multipart_get_boundary(multipart);
      boundaries_.push_back(boundary ? boundary : "");
      node["parts"].push_back(describe(child, number, depth + 1, in_attached_message));
      boundaries_.pop_back();
    }
  }

  void describe_message_part(GMimeMessagePart* message_part, const std::string& part, int depth, json& node) {
    GMimeMessage* message = g_mime_message_part_get_message(message_part);
    node["envelope"] = message ? envelope_of(message) : empty_envelope();
    node["body"] = nullptr;
    if (!message) {
      node["size"] = 0;
      node["lines"] = 0;
      return;
    }
    measure_message_part(message, node);
    GMimeObject* body = g_mime_message_get_mime_part(message);
    if (!body) return;
    if (depth >= kMaxMimeDepth || parts_ >= kMaxMimeParts) {
      node["truncated"] = true;
      return;
    }
    // RFC 3501 6.4.5: a non-multipart body of an attached message is part N.1; a multipart
    // body's children are N.1, N.2 ...
    const std::string body_part = GMIME_IS_MULTIPART(body) ? part : part + ".1";
    node["body"] = describe(body, body_part, depth + 1, true);
  }

  // The encapsulated message's octets: from its first header up to the CRLF before the
  // enclosing multipart's next delimiter (RFC 2046 5.1.1), or to the end of the input.
  // Without header offsets, fall back to GMime's re-serialisation of the message.
  void measure_message_part(GMimeMessage* message, json& node) {
    GMimeHeaderList* headers = g_mime_object_get_header_list(GMIME_OBJECT(message));
    GMimeHeader* first = headers && g_mime_header_list_get_count(headers) > 0
                             ? g_mime_header_list_get_header_at(headers, 0)
                             : nullptr;
    const gint64 start = first ? g_mime_header_get_offset(first) : -1;
    if (start >= 0 && static_cast<uint64_t>(start) <= bytes_.size()) {
      size_t end = bytes_.size();
      for (auto it = boundaries_.rbegin(); it != boundaries_.rend(); ++it) {
        end = std::min(end, find_delimiter(*it, static_cast<size_t>(start), end));
      }
      const auto body = measure(bytes_.substr(static_cast<size_t>(start), end - static_cast<size_t>(start)));
      node["offset"] = start;
      node["size"] = body.size;
      node["lines"] = body.lines;
      return;
    }
    GRef<GMimeStream> copy(g_mime_stream_mem_new());
    g_mime_object_write_to_stream(GMIME_OBJECT(message), nullptr, copy.get());
    const auto body = measure(copy.get());
    node["size"] = body.size;
    node["lines"] = body.lines;
  }

  // Where the line break before the first "--boundary" line in [from, limit) starts, or limit.
  size_t find_delimiter(const std::string& boundary, size_t from, size_t limit) const {
    if (boundary.empty()) return limit;
    const std::string dash_boundary = "--" + boundary;
    const auto window = bytes_.substr(0, limit);
    for (size_t at = from;;) {
      const size_t hit = window.find(dash_boundary, at);
      if (hit == std::string_view::npos) return limit;
      const bool at_line_start = hit == from || bytes_[hit - 1] == '\n';
      if (at_line_start && is_boundary_end(bytes_.substr(hit + dash_boundary.size()))) {
        size_t end = hit;
        if (end > from && bytes_[end - 1] == '\n') --end;
        if (end > from && bytes_[end - 1] == '\r') --end;
        return end;
      }
      at = hit + 1;
    }
  }

  std::string_view bytes_;
  std::vector<std::string> boundaries_;
  int parts_ = 0;
  bool has_attachments_ = false;
};

}  // namespace

namespace {

void append_search_text(InternetAddressList* list, std::string& out, int depth) {
  if (!list || depth > 4) return;
  const int count = internet_address_list_length(list);
  for (int i = 0; i < count; ++i) {
    InternetAddress* address = internet_address_list_get_address(list, i);
    const char* name = internet_address_get_name(address);
    if (!out.empty()) out += ", ";
    if (INTERNET_ADDRESS_IS_GROUP(address)) {
      out += std::string(name ? name : "") + ": ";
      append_search_text(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address)), out, depth + 1);
      out += ";";
    } else if (INTERNET_ADDRESS_IS_MAILBOX(address)) {
      const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address));
      if (name && *name) out += std::string(name) + " ";
      out += "<" + std::string(addr ? addr : "") + ">";
    }
  }
}

}  // namespace

namespace {

// The first leaf of this type/subtype, depth first, outside attachments.
GMimeTextPart* first_text_part(GMimeObject* object, const char* subtype, int depth) {
  if (!object || depth > kMaxMimeDepth) return nullptr;
  if (GMIME_IS_MULTIPART(object)) {
    GMimeMultipart* multipart = GMIME_MULTIPART(object);
    const int count = g_mime_multipart_get_count(multipart);
    for (int i = 0; i < count; ++i)
      if (auto* found = first_text_part(g_mime_multipart_get_part(multipart, i), subtype, depth + 1)) return found;
    return nullptr;
  }
  if (!GMIME_IS_TEXT_PART(object)) return nullptr;
  GMimeContentDisposition* disposition = g_mime_object_get_content_disposition(object);
  const char* how = disposition ? g_mime_content_disposition_get_disposition(disposition) : nullptr;
  if (how && g_ascii_strcasecmp(how, "attachment") == 0) return nullptr;
  GMimeContentType* type = g_mime_object_get_content_type(object);
  return type && g_mime_content_type_is_type(type, "text", subtype) ? GMIME_TEXT_PART(object) : nullptr;
}

// The text of a part: for HTML, markup and character references go; every run of blanks
// becomes one space either way.
std::string plain_text(const std::string& decoded, bool html) {
  std::string plain;
  bool in_tag = false, blank = true;
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    const char c = decoded[i];
    if (html && c == '<') in_tag = true;
    if (in_tag) {
      if (c == '>') in_tag = false;
      continue;
    }
    if (html && c == '&') {
      // A character reference is short: look no further than its longest name, so that a
      // run of '&' without ';' costs no more than its length.
      const auto semicolon = std::string_view(decoded).substr(i, 9).find(';');
      if (semicolon != std::string_view::npos) {
        const auto entity = decoded.substr(i + 1, semicolon - 1);
        plain += entity == "amp" ? "&" : entity == "lt" ? "<" : entity == "gt" ? ">" : entity == "quot" ? "\"" : " ";
        i += semicolon;
        blank = false;
        continue;
      }
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (!blank) plain += ' ';
      blank = true;
      continue;
    }
    plain += c;
    blank = false;
  }
  while (!plain.empty() && plain.back() == ' ') plain.pop_back();
  return plain;
}

}  // namespace

std::string message_preview(std::string_view bytes) {
  const ParsedMessage parsed(bytes);
  const auto& message = parsed.message;
  if (!message) return {};
  GMimeObject* body = g_mime_message_get_mime_part(message.get());
  bool html = false;
  GMimeTextPart* part = first_text_part(body, "plain", 0);
  if (!part && (part = first_text_part(body, "html", 0))) html = true;
  if (!part) return {};
  char* text = g_mime_text_part_get_text(part);  // charset converted to UTF-8
  if (!text) return {};
  const std::string decoded = valid_utf8(text);
  g_free(text);
  std::string plain = plain_text(decoded, html);
  // RFC 8970 3.1: at most 256 characters (code points, not bytes).
  std::size_t chars = 0, at = 0;
  while (at < plain.size() && chars < 256) {
    const auto lead = static_cast<unsigned char>(plain[at]);
    at += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    ++chars;
  }
  plain.resize(std::min(at, plain.size()));
  return plain;
}

namespace {

constexpr std::size_t kMaxAnchors = 200;

// The <a href="...">text</a> links of an HTML part, the text without its markup. Every search
// looks only a bounded way ahead and at most kMaxAnchorTags tags are looked at, so hostile
// markup ("<a <a <a ...", tags without href) costs time in proportion to its length.
constexpr std::size_t kMaxAnchorTags = 2000, kMaxTag = 4096, kMaxAnchorText = 2048;

void collect_anchors(const std::string& html, std::vector<MessageText::Anchor>& out) {
  const std::string lower = lowercase(html);
  const std::string_view all(lower);
  std::size_t tags = 0;
  for (auto at = all.find("<a"); at != std::string_view::npos && out.size() < kMaxAnchors && tags < kMaxAnchorTags;
       at = all.find("<a", at + 2)) {
    if (at + 2 >= all.size() || !g_ascii_isspace(all[at + 2])) continue;
    ++tags;
    const auto tag = all.substr(at, kMaxTag);
    const auto tag_end = tag.find('>');
    if (tag_end == std::string_view::npos) continue;
    // href=, not hreflang=: the name, blanks, then '='.
    std::size_t value = std::string_view::npos;
    for (auto name = tag.find("href"); name != std::string_view::npos && name < tag_end; name = tag.find("href", name + 4)) {
      const auto eq = tag.find_first_not_of(" \t\r\n", name + 4);
      if (eq < tag_end && tag[eq] == '=') {
        value = tag.find_first_not_of(" \t\r\n", eq + 1);
        break;
      }
    }
    if (value == std::string_view::npos || value >= tag_end) continue;
    std::size_t value_end;
    if (tag[value] == '"' || tag[value] == '\'') {
      const char quote = tag[value++];
      value_end = tag.find(quote, value);
    } else {
      value_end = tag.find_first_of(" \t\r\n>", value);
    }
    if (value_end == std::string_view::npos || value_end > tag_end) value_end = std::max(tag_end, value);
    const auto text_start = at + tag_end + 1;
    const auto close = all.substr(text_start, kMaxAnchorText).find("</a");
    const auto text_length = close == std::string_view::npos ? std::min(kMaxAnchorText, all.size() - text_start) : close;
    MessageText::Anchor anchor;
    anchor.href = html.substr(at + value, std::min<std::size_t>(value_end - value, 2048));
    anchor.text = plain_text(html.substr(text_start, text_length), true);
    out.push_back(std::move(anchor));
    if (text_length > 0) at = text_start + text_length - 1;
  }
}

// Every part in order, at most kMaxMimeDepth deep: the text of each text part that is not an
// attachment until max_bytes of text (HTML as its text, followed by the links its markup
// holds), and the facts the spam rules read.
void walk_parts(GMimeObject* object, int depth, std::size_t max_bytes, MessageText& facts) {
  std::string& out = facts.body;
  if (!object || depth > kMaxMimeDepth) return;
  if (GMIME_IS_MULTIPART(object)) {
    GMimeMultipart* multipart = GMIME_MULTIPART(object);
    const int count = g_mime_multipart_get_count(multipart);
    for (int i = 0; i < count && i < kMaxMimeParts; ++i) walk_parts(g_mime_multipart_get_part(multipart, i), depth + 1, max_bytes, facts);
    return;
  }
  if (GMIME_IS_PART(object))
    if (const char* name = g_mime_part_get_filename(GMIME_PART(object)); name && facts.attachment_names.size() < 100)
      facts.attachment_names.push_back(valid_utf8(name));
  if (!GMIME_IS_TEXT_PART(object)) return;
  GMimeContentDisposition* disposition = g_mime_object_get_content_disposition(object);
  const char* how = disposition ? g_mime_content_disposition_get_disposition(disposition) : nullptr;
  if (how && g_ascii_strcasecmp(how, "attachment") == 0) return;
  GMimeContentType* type = g_mime_object_get_content_type(object);
  const bool html = type && g_mime_content_type_is_type(type, "text", "html");
  if (!type || (!html && !g_mime_content_type_is_type(type, "text", "plain"))) return;
  ++(html ? facts.html_parts : facts.plain_parts);
  const bool base64 = g_mime_part_get_content_encoding(GMIME_PART(object)) == GMIME_CONTENT_ENCODING_BASE64;
  if (const char* charset = g_mime_content_type_get_parameter(type, "charset"); charset && facts.charsets.size() < 16)
    facts.charsets.push_back(lowercase(valid_utf8(charset)));
  if (out.size() >= max_bytes) return;
  char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(object));  // charset converted to UTF-8
  if (!text) return;
  const std::string decoded = valid_utf8(text);
  g_free(text);
  // Base64 is for binary and 8-bit text; plain ASCII in it is hidden from simple filters.
  if (base64 && !decoded.empty() &&
      std::all_of(decoded.begin(), decoded.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    facts.base64_text = true;
  if (!out.empty()) out += '\n';
  out += plain_text(decoded, html);
  if (html) {
    collect_anchors(decoded, facts.anchors);
    for (const std::string_view scheme : {"http://", "https://"})
      for (auto at = decoded.find(scheme); at != std::string::npos && out.size() < max_bytes; at = decoded.find(scheme, at + 1)) {
        const auto link = std::string_view(decoded).substr(at, 2048);
        out += ' ';
        out += link.substr(0, link.find_first_of("\"' <>"));
      }
  }
  if (out.size() > max_bytes) {  // cut at a character's start: the text stays valid UTF-8
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
}

}  // namespace

MessageText message_text(std::string_view bytes, std::size_t max_bytes) {
  MessageText out;
  const ParsedMessage parsed(bytes);
  const auto& message = parsed.message;
  if (!message) return out;
  auto* object = GMIME_OBJECT(message.get());
  if (const char* subject = g_mime_message_get_subject(message.get())) out.subject = valid_utf8(subject);
  out.raw_subject = raw_header(object, "Subject").value_or("");
  out.has_from = raw_header(object, "From").has_value();
  out.has_message_id = raw_header(object, "Message-ID").has_value();
  out.mailer = raw_header(object, "X-Mailer").value_or(raw_header(object, "User-Agent").value_or(""));
  if (const auto date = raw_header(object, "Date")) {
    out.has_date = true;
    GDateTime* parsed = g_mime_utils_header_decode_date(date->c_str());
    if (parsed) {
      out.date = g_date_time_to_unix(parsed);
      g_date_time_unref(parsed);
    }
  }
  if (InternetAddressList* from = g_mime_message_get_from(message.get());
      from && internet_address_list_length(from) > 0) {
    InternetAddress* first = internet_address_list_get_address(from, 0);
    if (const char* name = internet_address_get_name(first)) out.from_name = valid_utf8(name);
    if (INTERNET_ADDRESS_IS_MAILBOX(first))
      if (const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(first))) out.from = valid_utf8(addr);
  }
  walk_parts(g_mime_message_get_mime_part(message.get()), 0, max_bytes, out);
  return out;
}

namespace {

// The decoded text of every text part, by body part number (IMAP's: "1", "2.1").
void text_values(GMimeObject* object, const std::string& part_id, int depth, std::map<std::string, std::string>& out) {
  if (!object || depth > kMaxMimeDepth) return;
  if (GMIME_IS_MULTIPART(object)) {
    auto* multipart = GMIME_MULTIPART(object);
    const int count = std::min(g_mime_multipart_get_count(multipart), kMaxMimeParts);
    for (int i = 0; i < count; ++i)
      text_values(g_mime_multipart_get_part(multipart, i),
                  part_id.empty() ? std::to_string(i + 1) : part_id + "." + std::to_string(i + 1), depth + 1, out);
    return;
  }
  if (!GMIME_IS_TEXT_PART(object)) return;
  char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(object));  // charset converted to UTF-8
  if (!text) return;
  out[part_id.empty() ? "1" : part_id] = valid_utf8(text);
  g_free(text);
}

// A leaf part by its body part number.
GMimeObject* find_part(GMimeObject* object, std::string_view want, const std::string& here, int depth) {
  if (!object || depth > kMaxMimeDepth) return nullptr;
  if (GMIME_IS_MULTIPART(object)) {
    auto* multipart = GMIME_MULTIPART(object);
    const int count = std::min(g_mime_multipart_get_count(multipart), kMaxMimeParts);
    for (int i = 0; i < count; ++i) {
      const auto number = here.empty() ? std::to_string(i + 1) : here + "." + std::to_string(i + 1);
      if (want != number && !want.starts_with(number + ".")) continue;
      return find_part(g_mime_multipart_get_part(multipart, i), want, number, depth + 1);
    }
    return nullptr;
  }
  return (here.empty() ? "1" : here) == want ? object : nullptr;
}

}  // namespace

std::map<std::string, std::string> text_part_values(std::string_view bytes) {
  std::map<std::string, std::string> out;
  const ParsedMessage parsed(bytes);
  if (!parsed.message) return out;
  GMimeObject* body = g_mime_message_get_mime_part(parsed.message.get());
  text_values(body, GMIME_IS_MULTIPART(body) ? "" : "1", 0, out);
  return out;
}

std::optional<std::string> part_content(std::string_view bytes, std::string_view part_id) {
  const ParsedMessage parsed(bytes);
  if (!parsed.message) return std::nullopt;
  GMimeObject* part = find_part(g_mime_message_get_mime_part(parsed.message.get()), part_id, "", 0);
  if (!part || !GMIME_IS_PART(part)) return std::nullopt;
  GMimeDataWrapper* content = g_mime_part_get_content(GMIME_PART(part));
  if (!content) return std::nullopt;
  GRef<GMimeStream> decoded(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(content, decoded.get());  // the transfer encoding undone
  GByteArray* data = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(decoded.get()));
  return std::string(reinterpret_cast<const char*>(data->data), data->len);
}

std::map<std::string, std::string> part_header_sections(std::string_view bytes) {
  std::map<std::string, std::string> out;
  const ParsedMessage parsed(bytes);
  if (!parsed.message) return out;
  // Depth-first, numbered as IMAP numbers parts; bounded as every walk here is.
  std::function<void(GMimeObject*, const std::string&, int)> walk = [&](GMimeObject* object, const std::string& here, int depth) {
    if (!object || depth > kMaxMimeDepth || out.size() >= static_cast<std::size_t>(kMaxMimeParts)) return;
    if (GMIME_IS_MULTIPART(object)) {
      auto* multipart = GMIME_MULTIPART(object);
      const int count = std::min(g_mime_multipart_get_count(multipart), kMaxMimeParts);
      for (int i = 0; i < count; ++i)
        walk(g_mime_multipart_get_part(multipart, i), here.empty() ? std::to_string(i + 1) : here + "." + std::to_string(i + 1), depth + 1);
      return;
    }
    char* text = g_mime_header_list_to_string(g_mime_object_get_header_list(object), nullptr);
    out[here.empty() ? "1" : here] = text ? text : "";
    g_free(text);
  };
  walk(g_mime_message_get_mime_part(parsed.message.get()), "", 0);
  return out;
}

std::string decode_header_text(std::string_view raw) {
  ensure_gmime_initialized();
  std::string unfolded;
  for (char c : raw)
    if (c != '\r' && c != '\n') unfolded += c;
  char* decoded = g_mime_utils_header_decode_text(nullptr, unfolded.c_str());
  std::string text = decoded ? decoded : unfolded;
  g_free(decoded);
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return std::string();
  const auto last = text.find_last_not_of(" \t");
  return valid_utf8(std::string_view(text).substr(first, last - first + 1));
}

json parse_address_field(std::string_view raw) {
  ensure_gmime_initialized();
  const std::string text(raw);
  GRef<InternetAddressList> list(internet_address_list_parse(nullptr, text.c_str()));
  return address_list(list.get());
}

std::string address_search_text(std::string_view value) {
  ensure_gmime_initialized();
  const std::string text(value);
  GRef<InternetAddressList> list(internet_address_list_parse(nullptr, text.c_str()));
  std::string out;
  append_search_text(list.get(), out, 0);
  return lowercase(valid_utf8(out));
}

namespace {

// Depth-first over the parts, collecting text/calendar (and application/ics) bodies decoded.
void collect_calendars(GMimeObject* object, int depth, std::vector<std::string>& out) {
  if (!object || depth > kMaxMimeDepth || out.size() >= 8) return;
  if (GMIME_IS_MULTIPART(object)) {
    GMimeMultipart* multipart = GMIME_MULTIPART(object);
    const int count = std::min(g_mime_multipart_get_count(multipart), kMaxMimeParts);
    for (int i = 0; i < count; ++i) collect_calendars(g_mime_multipart_get_part(multipart, i), depth + 1, out);
    return;
  }
  if (!GMIME_IS_PART(object)) return;
  GMimeContentType* type = g_mime_object_get_content_type(object);
  const bool calendar = type && (g_mime_content_type_is_type(type, "text", "calendar") ||
                                 g_mime_content_type_is_type(type, "application", "ics"));
  if (!calendar) return;
  GMimeDataWrapper* content = g_mime_part_get_content(GMIME_PART(object));
  if (!content) return;
  GRef<GMimeStream> decoded(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(content, decoded.get());
  GByteArray* array = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(decoded.get()));
  if (array) out.emplace_back(reinterpret_cast<const char*>(array->data), array->len);
}

}  // namespace

CalendarMail calendar_parts(std::string_view bytes) {
  CalendarMail out;
  const ParsedMessage parsed(bytes);
  const auto& message = parsed.message;
  if (!message) return out;
  if (InternetAddressList* from = g_mime_message_get_from(message.get()); from && internet_address_list_length(from) == 1) {
    InternetAddress* address = internet_address_list_get_address(from, 0);
    if (INTERNET_ADDRESS_IS_MAILBOX(address))
      if (const char* mailbox = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address))) out.from = mailbox;
  }
  collect_calendars(g_mime_message_get_mime_part(message.get()), 0, out.calendars);
  return out;
}

MimeSummary summarize_message(std::string_view bytes) {
  ensure_gmime_initialized();
  MimeSummary summary;
  summary.envelope = empty_envelope();
  StructureWalker walker(bytes);

  // The memory stream copies the bytes; the parser then hands out windows onto that copy.
  GRef<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
  GRef<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  g_mime_parser_set_persist_stream(parser.get(), TRUE);
  g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
  GRef<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));

  GMimeObject* body = message ? g_mime_message_get_mime_part(message.get()) : nullptr;
  if (message) {
    summary.envelope = envelope_of(message.get());
    const char* message_id = g_mime_message_get_message_id(message.get());
    summary.message_id = message_id ? valid_utf8(message_id) : std::string();
    const char* subject = g_mime_message_get_subject(message.get());
    summary.subject = subject ? valid_utf8(subject) : std::string();
    GDateTime* date = g_mime_message_get_date(message.get());
    summary.date = date ? g_date_time_to_unix(date) : 0;
  }
  if (body) {
    // RFC 3501 6.4.5: a single-part message's body is part 1; a multipart's children are 1, 2 ...
    summary.body_structure = walker.describe(body, GMIME_IS_MULTIPART(body) ? "" : "1", 0, false);
  } else {
    const size_t body_start =
        message ? static_cast<size_t>(std::clamp<gint64>(g_mime_parser_get_headers_end(parser.get()), 0,
                                                         static_cast<gint64>(bytes.size())))
                : 0;
    summary.body_structure = walker.describe_unparsed(bytes.substr(body_start), "1");
  }
  summary.has_attachments = walker.has_attachments();
  return summary;
}

}  // namespace coop::mail
