// Builds a message with GMime (RFC 5322 fields, RFC 2045-2047 MIME): GMime chooses each text
// part's charset and transfer encoding, folds and RFC 2047-encodes the fields.
#include "workers/mail/mime_compose.h"

#include <glib.h>

#include <algorithm>
#include <stdexcept>

#include "workers/mail/gmime_ref.h"

namespace coop::mail {

namespace {

// RFC 5322 2.2: a field name is printable ASCII but ':'.
void check_field_name(const std::string& name) {
  if (name.empty() || name.size() > 200) throw std::invalid_argument("a header field name is 1 to 200 characters");
  for (unsigned char c : name)
    if (c < 33 || c > 126 || c == ':') throw std::invalid_argument("header field name " + name + " is not printable ASCII without ':'");
}

void check_line(const std::string& value, const char* what) {
  if (value.find_first_of("\r\n") != std::string::npos || value.find('\0') != std::string::npos)
    throw std::invalid_argument(std::string(what) + " holds a line break");
}

std::pair<std::string, std::string> split_type(const std::string& type) {
  const auto slash = type.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == type.size() || type.find_first_of(" \t\r\n;\"") != std::string::npos)
    throw std::invalid_argument("media type " + type + " is not type/subtype");
  return {type.substr(0, slash), type.substr(slash + 1)};
}

// Appends a field to an object's header, encoded (text) or as given (raw).
void append_field(GMimeObject* object, const ComposedField& f) {
  check_field_name(f.name);
  check_line(f.value, "a field's value");
  if (!f.raw) {
    g_mime_object_append_header(object, f.name.c_str(), f.value.c_str(), "utf-8");
    return;
  }
  g_mime_object_append_header(object, f.name.c_str(), "", nullptr);
  auto* headers = g_mime_object_get_header_list(object);
  auto* header = g_mime_header_list_get_header_at(headers, g_mime_header_list_get_count(headers) - 1);
  g_mime_header_set_raw_value(header, (" " + f.value + "\n").c_str());
}

// A new part; the caller owns the reference.
GMimeObject* build(const ComposedPart& part, int depth) {
  if (depth > 20) throw std::invalid_argument("parts nest at most 20 deep");
  const auto [major, minor] = split_type(part.type);
  for (const auto* s : {&part.disposition, &part.name, &part.cid, &part.language, &part.location}) check_line(*s, "a part's field");
  if (g_ascii_strcasecmp(major.c_str(), "multipart") == 0) {
    GMimeMultipart* multipart = g_mime_multipart_new_with_subtype(minor.c_str());
    for (const auto& sub : part.sub_parts) {
      GMimeObject* child = build(sub, depth + 1);
      g_mime_multipart_add(multipart, child);
      g_object_unref(child);
    }
    for (const auto& f : part.fields) append_field(GMIME_OBJECT(multipart), f);
    return GMIME_OBJECT(multipart);
  }
  const bool text = g_ascii_strcasecmp(major.c_str(), "text") == 0;
  GMimePart* leaf = text ? GMIME_PART(g_mime_text_part_new_with_subtype(minor.c_str()))
                         : g_mime_part_new_with_type(major.c_str(), minor.c_str());
  std::string content;
  if (text) {
    // RFC 2046 4.1.1: text in canonical form, CRLF line ends; UTF-8 (or US-ASCII) as given.
    content.reserve(part.content.size() + part.content.size() / 32);
    for (std::size_t i = 0; i < part.content.size(); ++i) {
      const char c = part.content[i];
      if (c == '\n' && (i == 0 || part.content[i - 1] != '\r')) content += '\r';
      content += c;
    }
    const bool ascii = std::all_of(content.begin(), content.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    g_mime_text_part_set_charset(GMIME_TEXT_PART(leaf), ascii ? "us-ascii" : "utf-8");
  }
  const std::string& bytes = text ? content : part.content;
  GRef<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
  GRef<GMimeDataWrapper> wrapper(g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(leaf, wrapper.get());
  // RFC 2046 5.2.1: message/* is never base64 or quoted-printable.
  const bool message = g_ascii_strcasecmp(major.c_str(), "message") == 0;
  const auto best = g_mime_part_get_best_content_encoding(leaf, GMIME_ENCODING_CONSTRAINT_7BIT);
  g_mime_part_set_content_encoding(leaf, message && best != GMIME_CONTENT_ENCODING_7BIT ? GMIME_CONTENT_ENCODING_8BIT : best);
  if (!part.disposition.empty()) g_mime_object_set_disposition(GMIME_OBJECT(leaf), part.disposition.c_str());
  if (!part.name.empty()) g_mime_part_set_filename(leaf, part.name.c_str());
  if (!part.cid.empty()) g_mime_part_set_content_id(leaf, part.cid.c_str());
  if (!part.location.empty()) g_mime_part_set_content_location(leaf, part.location.c_str());
  if (!part.language.empty()) g_mime_object_append_header(GMIME_OBJECT(leaf), "Content-Language", part.language.c_str(), nullptr);
  for (const auto& f : part.fields) append_field(GMIME_OBJECT(leaf), f);
  return GMIME_OBJECT(leaf);
}

std::string angle_list(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) {
    check_line(id, "a message id");
    if (id.empty() || id.find_first_of("<> \t") != std::string::npos) throw std::invalid_argument("message id " + id + " is not local@domain");
    out += (out.empty() ? "<" : " <") + id + ">";
  }
  return out;
}

GMimeAddressType address_type(const std::string& field) {
  if (field == "From") return GMIME_ADDRESS_TYPE_FROM;
  if (field == "Sender") return GMIME_ADDRESS_TYPE_SENDER;
  if (field == "Reply-To") return GMIME_ADDRESS_TYPE_REPLY_TO;
  if (field == "To") return GMIME_ADDRESS_TYPE_TO;
  if (field == "Cc") return GMIME_ADDRESS_TYPE_CC;
  if (field == "Bcc") return GMIME_ADDRESS_TYPE_BCC;
  throw std::invalid_argument(field + " is not an address field");
}

}  // namespace

std::string compose_message(const ComposedMessage& m) {
  ensure_gmime_initialized();
  GRef<GMimeMessage> message(g_mime_message_new(TRUE));
  auto* object = GMIME_OBJECT(message.get());
  // GMime writes a MIME-Version and a Date it makes up; the fields below replace them.
  for (const auto& [field, list] : m.addresses)
    for (const auto& a : list) {
      check_line(a.name, "an address's name");
      check_line(a.email, "an address");
      if (a.email.find('@') == std::string::npos || a.email.find_first_of(" <>,;\"") != std::string::npos)
        throw std::invalid_argument(a.email + " is not an address");
      g_mime_message_add_mailbox(message.get(), address_type(field), a.name.empty() ? nullptr : a.name.c_str(), a.email.c_str());
    }
  if (m.subject) {
    check_line(*m.subject, "the subject");
    g_mime_message_set_subject(message.get(), m.subject->c_str(), "utf-8");
  }
  if (m.date) {
    GDateTime* date = g_date_time_new_from_unix_utc(*m.date);
    if (!date) throw std::invalid_argument("the date is out of range");
    g_mime_message_set_date(message.get(), date);
    g_date_time_unref(date);
  }
  if (!m.message_id.empty()) {
    angle_list({m.message_id.front()});
    g_mime_message_set_message_id(message.get(), m.message_id.front().c_str());
  }
  if (!m.in_reply_to.empty()) g_mime_object_set_header(object, "In-Reply-To", angle_list(m.in_reply_to).c_str(), nullptr);
  if (!m.references.empty()) g_mime_object_set_header(object, "References", angle_list(m.references).c_str(), nullptr);
  for (const auto& f : m.fields) append_field(object, f);
  GMimeObject* body = build(m.body, 0);
  g_mime_message_set_mime_part(message.get(), body);
  g_object_unref(body);
  GMimeFormatOptions* options = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(options, GMIME_NEWLINE_FORMAT_DOS);
  char* text = g_mime_object_to_string(object, options);
  g_mime_format_options_free(options);
  std::string out = text ? text : "";
  g_free(text);
  return out;
}

}  // namespace coop::mail
