// IMAP SEARCH (RFC 9051 6.4.4), SORT and THREAD (RFC 5256): the criteria parsed by
// imap_search.cpp, evaluated here against the selected mailbox.
#include "workers/mail/imap_server.h"

#include <iterator>
#include "workers/mail/mime_summary.h"

namespace coop::mail::imap_server {

bool Session::header_contains(std::string_view header, std::string_view name, std::string_view needle) {
  bool in_field = false;
  std::string body;
  auto matches = [&] { return in_field && ascii_lower(body).find(needle) != std::string::npos; };
  for (std::size_t at = 0; at < header.size();) {
    auto eol = header.find('\n', at);
    if (eol == std::string_view::npos) eol = header.size();
    auto line = header.substr(at, eol - at);
    at = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      if (in_field) body += line;
      continue;
    }
    if (matches()) return true;
    const auto colon = line.find(':');
    in_field = colon == name.size() && ascii_lower(std::string(line.substr(0, colon))) == name;
    body = in_field ? std::string(line.substr(colon + 1)) : std::string();
  }
  return matches();
}

auto Session::criterion(Words& w, bool uid_mode) -> std::optional<Test> {
  const auto key = imap::parse_search_key(w);
  if (!key) return std::nullopt;
  return compile(*key);
}

auto Session::compile(const imap::SearchKey& k) -> std::optional<Test> {
  using Kind = imap::SearchKey::Kind;
  auto set_test = [this](const std::string& text, bool uid) -> std::optional<Test> {
    const auto chosen = resolve(text, uid);
    if (!chosen) return std::nullopt;
    std::set<std::size_t> in(chosen->begin(), chosen->end());
    return Test([in](const Probe& p) { return in.count(p.index) > 0; });
  };
  std::vector<Test> children;
  for (const auto& child : k.children) {
    auto t = compile(child);
    if (!t) return std::nullopt;
    children.push_back(std::move(*t));
  }
  switch (k.kind) {
    case Kind::all: return Test([](const Probe&) { return true; });
    case Kind::none: return Test([](const Probe&) { return false; });
    case Kind::and_:
      return Test([all = std::move(children)](const Probe& p) {
        return std::all_of(all.begin(), all.end(), [&](const Test& t) { return t(p); });
      });
    case Kind::not_: return Test([t = children.at(0)](const Probe& p) { return !t(p); });
    case Kind::or_: return Test([a = children.at(0), b = children.at(1)](const Probe& p) { return a(p) || b(p); });
    case Kind::flag:
      if (k.flag == imap::kRecent) return Test([this, set = k.set](const Probe& p) { return (recent_.count(p.m.uid) > 0) == set; });
      return Test([bit = k.flag, set = k.set](const Probe& p) { return ((p.m.flags & bit) != 0) == set; });
    case Kind::keyword:
      // The keywords this session has shown, as flag criteria test the flags it has shown.
      return Test([this, word = k.text, set = k.set](const Probe& p) { return has_keyword(keywords_of(p.m.uid), word) == set; });
    case Kind::modseq:
      condstore_ = true;
      searched_modseq_ = true;
      return Test([n = k.number](const Probe& p) { return p.m.modseq >= n; });
    case Kind::larger: return Test([n = k.number](const Probe& p) { return p.m.size > n; });
    case Kind::smaller: return Test([n = k.number](const Probe& p) { return p.m.size < n; });
    case Kind::since: return Test([d = k.number](const Probe& p) { return p.m.internal_date >= d; });
    case Kind::before: return Test([d = k.number](const Probe& p) { return p.m.internal_date < d; });
    case Kind::on:
      return Test([d = k.number](const Probe& p) { return p.m.internal_date >= d && p.m.internal_date < d + 86400; });
    case Kind::saved_since:
    case Kind::saved_before:
    case Kind::saved_on:
      search_needs_row_ = true;
      return Test([kind = k.kind, d = k.number](const Probe& p) {
        if (!p.row) return false;
        const int64_t t = p.row->saved_at;
        return kind == Kind::saved_since ? t >= d : kind == Kind::saved_before ? t < d : (t >= d && t < d + 86400);
      });
    case Kind::older:
    case Kind::younger: {
      // RFC 5032 3: OLDER n, an internal date at least n seconds ago; YOUNGER n, less.
      const int64_t edge = static_cast<int64_t>(::time(nullptr)) - k.number;
      if (k.kind == Kind::older) return Test([edge](const Probe& p) { return p.m.internal_date <= edge; });
      return Test([edge](const Probe& p) { return p.m.internal_date > edge; });
    }
    case Kind::sent_since:
    case Kind::sent_before:
    case Kind::sent_on:
      // The Date: header's day, from the header section the index keeps; a message without
      // a readable one matches none of the three.
      search_needs_row_ = search_needs_header_ = true;
      return Test([kind = k.kind, d = k.number](const Probe& p) {
        if (!p.row) return false;
        const auto day = imap::sent_day(header_field(p.header(), "date"));
        if (!day) return false;
        return kind == Kind::sent_since ? *day >= d : kind == Kind::sent_before ? *day < d : *day == d;
      });
    case Kind::uid_set: return set_test(k.text, true);
    case Kind::sequence_set: return set_test(k.text, false);
    case Kind::subject:
      // The decoded subject is in the index: no message needs reading.
      search_needs_row_ = true;
      return Test([needle = k.text](const Probe& p) {
        return p.row && ascii_lower(p.row->subject).find(needle) != std::string::npos;
      });
    case Kind::body:
    case Kind::text:
      // Matching reads the message's bytes (RFC 9051 6.4.4: case-insensitive substrings).
      search_needs_row_ = true;
      return Test([needle = k.text, body_only = k.kind == Kind::body](const Probe& p) {
        const auto& bytes = p.bytes();
        const auto split_at = body_only ? bytes.find("\r\n\r\n") : 0;
        return split_at != std::string::npos &&
               ascii_lower(std::string_view(bytes).substr(split_at)).find(needle) != std::string::npos;
      });
    case Kind::header:
      // The header sections are kept apart in the index for these.
      search_needs_row_ = search_needs_header_ = true;
      // FROM, TO, CC and BCC also match the addresses as parsed, so "carol@example.org" finds
      // "carol (Carol) @ example.org" (RFC 5322 4.4 obsolete syntax) and decoded names.
      return Test([field = k.field, needle = k.text](const Probe& p) {
        if (!p.row) return false;
        if (header_contains(p.header(), field, needle)) return true;
        if (field != "from" && field != "to" && field != "cc" && field != "bcc") return false;
        const auto value = header_field(p.header(), field);
        return !value.empty() && address_search_text(value).find(needle) != std::string::npos;
      });
  }
  return std::nullopt;
}

void Session::search(Cursor& c, bool uid) {
  if (!c.space()) return bad("SEARCH criteria");
  const std::string text = c.rest_with_literals();  // kept by an updating search, RETURN and all
  Words w = imap::search_words(text);
  std::vector<std::string> returns;
  bool extended = false, update = false;
  std::optional<std::pair<int64_t, int64_t>> partial;
  if (!w.done() && upper(w.items[w.at]) == "RETURN") {
    // RFC 4731 / RFC 9051 ESEARCH: RETURN (MIN MAX COUNT ALL); RFC 5267 adds UPDATE, CONTEXT
    // (a hint, taken as such) and PARTIAL low:high.
    extended = true;
    w.next();
    if (w.next() != "(") return bad("RETURN (options)");
    while (!w.done() && w.items[w.at] != ")") {
      const auto r = upper(w.next());
      if (r == "UPDATE") {
        update = true;
      } else if (r == "CONTEXT") {
      } else if (r == "PARTIAL") {
        const auto range = w.done() ? std::string() : w.next();
        const auto colon = range.find(':');
        int64_t low = 0, high = 0;
        if (partial || colon == std::string::npos || !parse_nz(range.substr(0, colon), low) || !parse_nz(range.substr(colon + 1), high))
          return bad("PARTIAL low:high, once");
        partial.emplace(std::min(low, high), std::max(low, high));
      } else if (r != "MIN" && r != "MAX" && r != "COUNT" && r != "ALL" && r != "SAVE") {
        return bad("unknown RETURN option " + reply_text(r));
      } else {
        returns.push_back(r);
      }
    }
    w.next();
    // RFC 5267 4.4: PARTIAL and ALL do not go together.
    if (partial && std::find(returns.begin(), returns.end(), "ALL") != returns.end()) return bad("PARTIAL conflicts with ALL");
    if (returns.empty() && !partial && !update) returns.push_back("ALL");
    // RFC 5267 4.3: a tag already naming an updating search is refused.
    if (update && !found_only_ &&
        std::any_of(contexts_.begin(), contexts_.end(), [&](const SearchContext& x) { return x.tag == current_tag_; }))
      return bad("tag reuse: " + reply_text(current_tag_) + " already has an updating search");
  }
  // RFC 5182 SEARCHRES: RETURN (SAVE) keeps the result for "$"; alone, it answers nothing.
  const bool save = std::find(returns.begin(), returns.end(), "SAVE") != returns.end();
  if (save) returns.erase(std::remove(returns.begin(), returns.end(), "SAVE"), returns.end());
  if (!w.done() && upper(w.items[w.at]) == "CHARSET") {
    w.next();
    const std::string charset = upper(w.next());
    if (charset != "UTF-8" && charset != "US-ASCII") return tagged("NO [BADCHARSET (UTF-8)] UTF-8 only");
  }
  std::vector<Test> tests;
  searched_modseq_ = search_needs_row_ = search_needs_header_ = false;
  while (!w.done()) {
    auto t = criterion(w, uid);
    if (!t) return bad("SEARCH criteria");
    tests.push_back(*t);
  }
  if (tests.empty()) return bad("SEARCH criteria");
  std::vector<int64_t> found;
  // In batches: one lock for the store's rows and one query for the header sections.
  std::vector<const CachedMessage*> rows;
  std::vector<CachedMessage> copies;
  std::vector<std::pair<int64_t, std::string>> headers;
  for (std::size_t first = 0; first < messages_.size(); first += kFetchBatch) {
    const std::size_t end = std::min(first + kFetchBatch, messages_.size());
    rows.assign(end - first, nullptr);
    copies.clear();
    if (search_needs_row_) {
      copies.reserve(end - first);
      service().mailboxes().with_cache(handle_, held_->key, [&](const MailboxCache& cache) {
        for (std::size_t i = first; i < end; ++i)
          if (const auto* row = cache.find(messages_[i].uid)) {
            copies.push_back(*row);
            rows[i - first] = &copies.back();
          }
      });
    }
    if (search_needs_header_) headers = service().mailboxes().headers(handle_, held_->key, messages_[first].uid, messages_[end - 1].uid);
    auto header = headers.cbegin();
    for (std::size_t i = first; i < end; ++i) {
      std::optional<std::string_view> kept;
      if (search_needs_header_) {
        while (header != headers.cend() && header->first < messages_[i].uid) ++header;
        if (header != headers.cend() && header->first == messages_[i].uid) kept = header->second;
      }
      const Probe probe(i, messages_[i], rows[i - first], kept, service().blobs());
      if (std::all_of(tests.begin(), tests.end(), [&](const Test& t) { return t(probe); }))
        found.push_back(uid ? messages_[i].uid : static_cast<int64_t>(i + 1));
    }
  }
  if (found_only_) {
    *found_only_ = std::move(found);
    return;
  }
  if (save) {
    saved_.clear();
    for (const auto n : found) saved_.push_back(uid ? n : messages_[static_cast<std::size_t>(n - 1)].uid);
    std::sort(saved_.begin(), saved_.end());
    if (returns.empty()) return tagged("OK SEARCH completed, result saved");
  }
  if (extended) {
    std::string line = esearch_head(current_tag_, uid);
    for (const auto& r : returns) {
      if (r == "MIN" && !found.empty()) line += " MIN " + std::to_string(found.front());
      if (r == "MAX" && !found.empty()) line += " MAX " + std::to_string(found.back());
      if (r == "COUNT") line += " COUNT " + std::to_string(found.size());
      if (r == "ALL" && !found.empty()) line += " ALL " + uid_set(found);
    }
    if (partial) {
      // RFC 5267 4.4: the results at positions low..high (1-based), NIL when there are none.
      std::vector<int64_t> slice;
      for (int64_t n = partial->first; n <= partial->second && n <= static_cast<int64_t>(found.size()); ++n)
        slice.push_back(found[static_cast<std::size_t>(n - 1)]);
      line += " PARTIAL (" + std::to_string(partial->first) + ":" + std::to_string(partial->second) + " " +
              (slice.empty() ? std::string("NIL") : uid_set(slice)) + ")";
    }
    if (update) {
      // RFC 5267 4.3: the search stays live; at most kMaxSearchContexts, beyond which
      // NOUPDATE says so and the rest of the answer stands.
      if (contexts_.size() >= kMaxSearchContexts) {
        out_ += "* NO [NOUPDATE " + imap::quote(current_tag_) + "] at most " + std::to_string(kMaxSearchContexts) +
                " updating searches at once\r\n";
      } else {
        SearchContext context{current_tag_, text, uid, {}};
        for (const auto n : found) context.uids.push_back(uid ? n : messages_[static_cast<std::size_t>(n - 1)].uid);
        std::sort(context.uids.begin(), context.uids.end());
        contexts_.push_back(std::move(context));
      }
    }
    out_ += line + "\r\n";
  } else {
    std::string line = "* SEARCH";
    int64_t highest = 0;
    for (std::size_t i = 0; i < messages_.size(); ++i) {
      const int64_t key = uid ? messages_[i].uid : static_cast<int64_t>(i + 1);
      if (std::binary_search(found.begin(), found.end(), key)) highest = std::max(highest, messages_[i].modseq);
    }
    for (auto n : found) line += " " + std::to_string(n);
    // RFC 7162 3.1.5: a search by MODSEQ tells the highest one among the results.
    if (searched_modseq_ && !found.empty()) line += " (MODSEQ " + std::to_string(highest) + ")";
    out_ += line + "\r\n";
  }
  tagged("OK SEARCH completed");
}

imap::SortKeys Session::keys_of(std::size_t i) {
  imap::SortKeys k;
  const auto envelope = nlohmann::json::parse(service().mailboxes().summaries(handle_, held_->key, messages_[i].uid).first, nullptr, false);
  auto first_mailbox = [&](const char* field) {
    if (!envelope.is_object() || !envelope.contains(field) || !envelope[field].is_array() || envelope[field].empty()) return std::string();
    const auto& a = envelope[field][0];
    return ascii_lower(a.value("mailbox", nlohmann::json()).is_string() ? a["mailbox"].get<std::string>() : std::string());
  };
  const std::string subject = envelope.is_object() && envelope.value("subject", nlohmann::json()).is_string() ? envelope["subject"].get<std::string>() : "";
  k.subject = imap::base_subject(subject, &k.reply);
  const std::string date = envelope.is_object() && envelope.value("date", nlohmann::json()).is_string() ? envelope["date"].get<std::string>() : "";
  k.date = imap::sent_date(date).value_or(messages_[i].internal_date);
  k.from = first_mailbox("from");
  k.to = first_mailbox("to");
  k.cc = first_mailbox("cc");
  return k;
}

bool Session::parse_nz(const std::string& text, int64_t& out) {
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::stoll(text);
  return out > 0;
}

// RFC 5267 4.3.2-4.3.4: what changed in each updating search's results, after the session
// learnt of new messages and changed flags (sync) or changed them itself (STORE). Its
// results are UIDs; a search by sequence numbers is told in the numbers the client knows now.
void Session::report_search_updates() {
  for (auto& context : contexts_) {
    RawCommand command{{" " + context.criteria}, {}};
    Cursor c(command);
    const std::size_t before = out_.size();
    const std::string tag = current_tag_;
    auto found = matching(c, true);
    current_tag_ = tag;
    if (!found) {
      out_.resize(before);
      continue;
    }
    std::sort(found->begin(), found->end());
    std::vector<int64_t> added, removed;
    std::set_difference(found->begin(), found->end(), context.uids.begin(), context.uids.end(), std::back_inserter(added));
    std::set_difference(context.uids.begin(), context.uids.end(), found->begin(), found->end(), std::back_inserter(removed));
    if (added.empty() && removed.empty()) continue;
    context.uids = std::move(*found);
    const auto told = [&](const std::vector<int64_t>& uids) { return uid_set(context.uid ? uids : sequence_numbers(uids)); };
    std::string line = esearch_head(context.tag, context.uid);
    if (!removed.empty()) line += " REMOVEFROM (0 " + told(removed) + ")";
    if (!added.empty()) line += " ADDTO (0 " + told(added) + ")";
    out_ += line + "\r\n";
  }
}

// RFC 5267 4.3.4: messages about to be expunged leave the results first, told while their
// sequence numbers still mean them.
void Session::remove_from_searches(const std::vector<int64_t>& expunged) {
  for (auto& context : contexts_) {
    std::vector<int64_t> removed;
    std::set_intersection(context.uids.begin(), context.uids.end(), expunged.begin(), expunged.end(), std::back_inserter(removed));
    if (removed.empty()) continue;
    std::vector<int64_t> kept;
    std::set_difference(context.uids.begin(), context.uids.end(), removed.begin(), removed.end(), std::back_inserter(kept));
    context.uids = std::move(kept);
    out_ += esearch_head(context.tag, context.uid) + " REMOVEFROM (0 " +
            uid_set(context.uid ? removed : sequence_numbers(removed)) + ")\r\n";
  }
}

std::vector<int64_t> Session::sequence_numbers(const std::vector<int64_t>& uids) {
  std::vector<int64_t> out;
  for (std::size_t i = 0; i < messages_.size(); ++i)
    if (std::binary_search(uids.begin(), uids.end(), messages_[i].uid)) out.push_back(static_cast<int64_t>(i + 1));
  return out;
}

// RFC 5267 4.3.5 CANCELUPDATE "tag" ...: those searches stop updating.
void Session::cancel_update(Cursor& c) {
  std::vector<std::string> tags;
  while (c.space()) {
    if (!c.peek('"')) return bad("CANCELUPDATE \"tag\" ...");
    auto tag = c.string();
    if (!tag) return bad("CANCELUPDATE \"tag\" ...");
    tags.push_back(std::move(*tag));
  }
  if (tags.empty() || !c.at_end()) return bad("CANCELUPDATE \"tag\" ...");
  for (const auto& tag : tags) {
    const auto it = std::find_if(contexts_.begin(), contexts_.end(), [&](const SearchContext& x) { return x.tag == tag; });
    if (it == contexts_.end()) return tagged("NO no updating search has the tag " + reply_text(tag));
    contexts_.erase(it);
  }
  tagged("OK no further updates");
}

std::optional<std::vector<int64_t>> Session::matching(Cursor& c, bool uid) {
  std::vector<int64_t> found;
  found_only_ = &found;
  const std::size_t before = out_.size();
  search(c, uid);
  found_only_ = nullptr;
  if (out_.size() != before) return std::nullopt;  // search() answered BAD or NO
  return found;
}

void Session::sort_keys(const std::vector<int64_t>& found, bool uid, std::vector<std::size_t>& chosen,
                        std::vector<imap::SortKeys>& keys, bool subjects) {
  for (std::size_t i = 0; i < messages_.size(); ++i)
    if (std::binary_search(found.begin(), found.end(), uid ? messages_[i].uid : static_cast<int64_t>(i + 1))) chosen.push_back(i);
  if (chosen.empty()) return;
  // One query for the keys kept at delivery and one lock for the subjects; messages from
  // before the keys were kept parse their envelope.
  const auto rows = service().mailboxes().sort_rows(handle_, held_->key, messages_[chosen.front()].uid, messages_[chosen.back()].uid);
  std::unordered_map<int64_t, std::string> subject_of;
  if (subjects)
    service().mailboxes().with_cache(handle_, held_->key, [&](const MailboxCache& cache) {
      for (const auto i : chosen)
        if (const auto* row = cache.find(messages_[i].uid)) subject_of.emplace(row->uid, row->subject);
    });
  auto row = rows.begin();
  keys.resize(chosen.size());
  for (std::size_t n = 0; n < chosen.size(); ++n) {
    const auto i = chosen[n];
    const int64_t id = messages_[i].uid;
    while (row != rows.end() && row->uid < id) ++row;
    const auto subject = subject_of.find(id);
    if (row == rows.end() || row->uid != id || (subjects && subject == subject_of.end())) {
      keys[n] = keys_of(i);
      continue;
    }
    auto& k = keys[n];
    if (subjects) k.subject = imap::base_subject(subject->second, &k.reply);
    k.date = row->sent_date != 0 ? row->sent_date : messages_[i].internal_date;  // RFC 5256 2.2
    k.from = row->from_mailbox;
    k.to = row->to_mailbox;
    k.cc = row->cc_mailbox;
  }
}

void Session::sort(Cursor& c, bool uid) {
  if (!c.space()) return bad("SORT (criteria) charset search");
  esort_returns_.reset();
  if (!c.peek('(')) {
    // RFC 5267 ESORT: SORT RETURN (options) (criteria) charset search.
    const auto word = c.atom();
    if (!word || upper(*word) != "RETURN" || !c.space() || !c.take('(')) return bad("SORT [RETURN (options)] (criteria) charset search");
    std::vector<std::string> returns;
    while (!c.take(')')) {
      c.take(' ');
      const auto option = c.atom();
      if (!option) return bad("SORT RETURN options");
      const auto o = upper(*option);
      if (o != "MIN" && o != "MAX" && o != "COUNT" && o != "ALL") return bad("unknown SORT RETURN option " + reply_text(o));
      returns.push_back(o);
    }
    if (returns.empty()) returns.push_back("ALL");
    esort_returns_ = std::move(returns);
    if (!c.space()) return bad("SORT RETURN (options) (criteria)");
  }
  if (!c.take('(')) return bad("SORT (criteria) charset search");
  enum class By { arrival, cc, date, from, size, subject, to, display_from, display_to };
  static const std::map<std::string, By> kKeys = {{"ARRIVAL", By::arrival}, {"CC", By::cc},     {"DATE", By::date},
                                                  {"FROM", By::from},       {"SIZE", By::size}, {"SUBJECT", By::subject},
                                                  {"TO", By::to}, {"DISPLAYFROM", By::display_from}, {"DISPLAYTO", By::display_to}};
  std::vector<std::pair<By, bool>> criteria;  // key, reversed
  bool reverse = false;
  while (!c.take(')')) {
    c.take(' ');
    auto key = c.atom();
    if (!key) return bad("SORT criteria");
    const std::string k = upper(*key);
    if (k == "REVERSE") {
      reverse = true;
      continue;
    }
    const auto by = kKeys.find(k);
    if (by == kKeys.end()) return bad("unknown SORT key " + k);
    criteria.emplace_back(by->second, reverse);
    reverse = false;
  }
  std::optional<std::string> charset;
  if (!c.space() || !(charset = c.astring())) return bad("SORT charset");
  if (upper(*charset) != "UTF-8" && upper(*charset) != "US-ASCII") return tagged("NO [BADCHARSET (UTF-8)] UTF-8 only");
  auto found = matching(c, uid);
  if (!found) return;
  std::vector<std::size_t> chosen;
  std::vector<imap::SortKeys> keys;  // keys[n] for chosen[n]
  sort_keys(*found, uid, chosen, keys,
            std::any_of(criteria.begin(), criteria.end(), [](const auto& c) { return c.first == By::subject; }));
  // RFC 5957 SORT=DISPLAY: the first address's display name, else its addr-spec.
  std::vector<std::pair<std::string, std::string>> display;  // (from, to) for chosen[n]
  if (std::any_of(criteria.begin(), criteria.end(), [](const auto& c) { return c.first == By::display_from || c.first == By::display_to; })) {
    display.resize(chosen.size());
    for (std::size_t n = 0; n < chosen.size(); ++n) {
      const auto envelope = nlohmann::json::parse(service().mailboxes().summaries(handle_, held_->key, messages_[chosen[n]].uid).first, nullptr, false);
      auto shown = [&](const char* field) {
        if (!envelope.is_object() || !envelope.contains(field) || !envelope[field].is_array()) return std::string();
        for (const auto& a : envelope[field]) {
          if (!a.is_object() || a.contains("group")) continue;
          if (a.value("name", nlohmann::json()).is_string() && !a["name"].get<std::string>().empty()) return a["name"].get<std::string>();
          const auto mailbox = a.value("mailbox", nlohmann::json()), host = a.value("host", nlohmann::json());
          return (mailbox.is_string() ? mailbox.get<std::string>() : "") + (host.is_string() ? "@" + host.get<std::string>() : "");
        }
        return std::string();
      };
      display[n] = {shown("from"), shown("to")};
    }
  }
  std::vector<std::size_t> order(chosen.size());
  for (std::size_t n = 0; n < order.size(); ++n) order[n] = n;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto& ka = keys[a];
    const auto& kb = keys[b];
    const auto& ma = messages_[chosen[a]];
    const auto& mb = messages_[chosen[b]];
    for (const auto& [key, reversed] : criteria) {
      auto compare = [](const auto& x, const auto& y) { return x < y ? -1 : (y < x ? 1 : 0); };
      int by = 0;
      switch (key) {
        case By::arrival: by = compare(ma.internal_date, mb.internal_date); break;
        case By::cc: by = imap::casemap_compare(ka.cc, kb.cc); break;
        case By::date: by = compare(ka.date, kb.date); break;
        case By::from: by = imap::casemap_compare(ka.from, kb.from); break;
        case By::size: by = compare(ma.size, mb.size); break;
        case By::subject: by = imap::casemap_compare(ka.subject, kb.subject); break;
        case By::to: by = imap::casemap_compare(ka.to, kb.to); break;
        case By::display_from: by = imap::casemap_compare(display[a].first, display[b].first); break;
        case By::display_to: by = imap::casemap_compare(display[a].second, display[b].second); break;
      }
      if (by != 0) return reversed ? by > 0 : by < 0;
    }
    return a < b;  // RFC 5256 3: ties go by sequence number (chosen is ascending)
  });
  std::vector<int64_t> sorted;
  for (const auto n : order) sorted.push_back(uid ? messages_[chosen[n]].uid : static_cast<int64_t>(chosen[n] + 1));
  if (esort_returns_) {
    // RFC 5267 3.1: MIN and MAX are the first and last in sort order; ALL keeps that order
    // (no ranges: a range has no order of its own).
    std::string line = esearch_head(current_tag_, uid);
    const auto& returns = *esort_returns_;
    auto has = [&](const char* r) { return std::find(returns.begin(), returns.end(), r) != returns.end(); };
    if (has("MIN") && !sorted.empty()) line += " MIN " + std::to_string(sorted.front());
    if (has("MAX") && !sorted.empty()) line += " MAX " + std::to_string(sorted.back());
    if (has("COUNT")) line += " COUNT " + std::to_string(sorted.size());
    if (has("ALL") && !sorted.empty()) {
      line += " ALL ";
      for (std::size_t n = 0; n < sorted.size(); ++n) line += (n ? "," : "") + std::to_string(sorted[n]);
    }
    out_ += line + "\r\n";
    return tagged("OK SORT completed");
  }
  std::string line = "* SORT";
  for (const auto n : sorted) line += " " + std::to_string(n);
  out_ += line + "\r\n";
  tagged("OK SORT completed");
}

void Session::thread(Cursor& c, bool uid) {
  std::optional<std::string> algorithm, charset;
  if (!c.space() || !(algorithm = c.atom()) || !c.space() || !(charset = c.astring())) return bad("THREAD algorithm charset search");
  const std::string method = upper(*algorithm);
  if (method != "ORDEREDSUBJECT" && method != "REFERENCES") return tagged("NO [CANNOT] ORDEREDSUBJECT or REFERENCES");
  if (upper(*charset) != "UTF-8" && upper(*charset) != "US-ASCII") return tagged("NO [BADCHARSET (UTF-8)] UTF-8 only");
  auto found = matching(c, uid);
  if (!found) return;
  std::vector<std::size_t> chosen;
  std::vector<imap::SortKeys> keys;  // keys[n] for chosen[n]
  sort_keys(*found, uid, chosen, keys, true);
  // REFERENCES reads Message-ID, References and In-Reply-To: the header sections in one query.
  std::unordered_map<int64_t, std::string> headers;
  if (method == "REFERENCES" && !chosen.empty())
    for (auto& [id, header] : service().mailboxes().headers(handle_, held_->key, messages_[chosen.front()].uid, messages_[chosen.back()].uid))
      headers.emplace(id, std::move(header));
  std::vector<imap::SortKeys> listed;
  for (std::size_t n = 0; n < chosen.size(); ++n) {
    const auto i = chosen[n];
    auto k = std::move(keys[n]);
    if (method == "REFERENCES") {
      const auto kept = headers.find(messages_[i].uid);
      std::string read;  // a message stored before headers were kept: from its file
      if (kept == headers.end()) read = header_of(i);
      const std::string_view header = kept != headers.end() ? std::string_view(kept->second) : std::string_view(read);
      const auto own = imap::message_ids(header_field(header, "message-id"));
      if (!own.empty()) k.message_id = own.front();
      k.references = imap::message_ids(header_field(header, "references"));
      if (const auto reply_to = imap::message_ids(header_field(header, "in-reply-to")); k.references.empty() && !reply_to.empty())
        k.references.push_back(reply_to.front());
    }
    listed.push_back(std::move(k));
  }
  auto name = [&](std::size_t k) { return std::to_string(uid ? messages_[chosen[k]].uid : static_cast<int64_t>(chosen[k] + 1)); };
  out_ += "* THREAD " + (method == "REFERENCES" ? imap::thread_references(listed, name) : imap::thread_ordered_subject(listed, name)) +
          "\r\n";
  tagged("OK THREAD completed");
}

std::string Session::header_of(std::size_t i) {
  const int64_t uid = messages_[i].uid;
  auto kept = service().mailboxes().headers(handle_, held_->key, uid, uid);
  if (!kept.empty()) return std::move(kept.front().second);
  std::string blob;
  service().mailboxes().with_cache(handle_, held_->key, [&](const MailboxCache& cache) {
    if (const auto* row = cache.find(uid)) blob = row->blob;
  });
  if (blob.empty()) return {};
  std::string header = service().blobs().read(blob);
  header.resize(imap::header_end(header));
  return header;
}

std::string Session::header_field(std::string_view header, std::string_view name) {
  // One pass, no copy of a line: SEARCH and THREAD call this for every message.
  std::string value;
  bool in_field = false;
  for (std::size_t at = 0; at < header.size();) {
    auto eol = header.find('\n', at);
    if (eol == std::string_view::npos) eol = header.size();
    auto line = header.substr(at, eol - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    at = eol + 1;
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (in_field) value += line;
      continue;
    }
    const auto colon = line.find(':');
    in_field = colon != std::string_view::npos && ascii_iequals(line.substr(0, colon), name);
    if (in_field) value.assign(line.substr(colon + 1));
  }
  return value;
}

}  // namespace coop::mail::imap_server
