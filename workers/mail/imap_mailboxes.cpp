// IMAP mailbox commands: LIST and LSUB (RFC 9051 6.3.9), STATUS (6.3.11), SELECT and EXAMINE
// (6.3.2-3), CREATE, DELETE, RENAME, SUBSCRIBE (6.3.4-8), GETQUOTA/GETQUOTAROOT (RFC 9208).
#include "workers/mail/imap_server.h"

namespace coop::mail::imap_server {

std::string Session::from_client(const std::string& name) const {
  // 8-bit bytes are UTF-8 whatever was enabled; text that is not modified UTF-7 is taken
  // as it is, and listed back in modified UTF-7 ("A&B" as "A&-B").
  if (utf8_names_ || std::any_of(name.begin(), name.end(), [](unsigned char ch) { return ch >= 0x80; })) return name;
  return imap::from_modified_utf7(name).value_or(name);
}

std::optional<std::string> Session::mailbox_arg(Cursor& c) const {
  auto name = c.mailbox();
  if (name) name = imap::normalize_mailbox(from_client(*name));
  return name;
}

std::optional<std::vector<std::string>> Session::status_items(Cursor& c) {
  std::vector<std::string> items;
  if (!c.take('(')) return std::nullopt;
  for (;;) {
    auto item = c.atom();
    if (!item) return std::nullopt;
    const std::string what = upper(*item);
    static const std::set<std::string> kKnown = {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "RECENT", "SIZE", "HIGHESTMODSEQ"};
    if (!kKnown.count(what)) return std::nullopt;
    items.push_back(what);
    if (c.take(')')) return items;
    if (!c.space()) return std::nullopt;
  }
}

std::string Session::status_line(const MailboxInfo& box, const std::vector<std::string>& items) const {
  std::string out;
  for (const auto& what : items) {
    int64_t value = 0;
    if (what == "MESSAGES") value = box.messages;
    else if (what == "UIDNEXT") value = box.uidnext;
    else if (what == "UIDVALIDITY") value = box.uidvalidity;
    else if (what == "UNSEEN") value = box.unseen;
    else if (what == "SIZE") value = box.bytes;
    else if (what == "RECENT") value = box.recent;
    else if (what == "HIGHESTMODSEQ") value = box.highest_modseq;
    out += (out.empty() ? "" : " ") + what + " " + std::to_string(value);
  }
  return "* STATUS " + mailbox_text(box.name) + " (" + out + ")\r\n";
}

void Session::list(Cursor& c, bool lsub) {
  const std::string word = lsub ? "LSUB" : "LIST";
  if (!c.space()) return bad(word + " reference pattern");
  // RFC 5258 LIST-EXTENDED: selection options before the reference, return options after.
  bool only_subscribed = false, only_special = false, recursive = false, return_subscribed = false;
  std::optional<std::vector<std::string>> return_status;
  if (!lsub && c.take('(')) {
    while (!c.take(')')) {
      c.take(' ');
      auto option = c.atom();
      if (!option) return bad("LIST selection options");
      const std::string o = upper(*option);
      if (o == "SUBSCRIBED") only_subscribed = return_subscribed = true;
      else if (o == "SPECIAL-USE") only_special = true;  // RFC 6154 5.1
      else if (o == "RECURSIVEMATCH") recursive = true;
      else if (o != "REMOTE") return bad("unknown LIST selection option " + o);
    }
    // RFC 5258 3: RECURSIVEMATCH alone (or with REMOTE only) is BAD.
    if (recursive && !only_subscribed && !only_special) return bad("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE");
    if (!c.space()) return bad("LIST reference");
  }
  std::optional<std::string> reference;
  if (!(reference = c.astring())) return bad(word + " reference pattern");
  reference = from_client(*reference);
  if (!c.space()) return bad(word + " reference pattern");
  std::vector<std::string> patterns;
  if (!lsub && c.take('(')) {
    while (!c.take(')')) {
      c.take(' ');
      auto pattern = c.list_mailbox();
      if (!pattern) return bad("LIST patterns");
      patterns.push_back(from_client(*pattern));
    }
  } else if (auto pattern = c.list_mailbox()) {
    patterns.push_back(from_client(*pattern));
  } else {
    return bad(word + " reference pattern");
  }
  if (!lsub && c.space()) {
    auto keyword = c.atom();
    if (!keyword || upper(*keyword) != "RETURN" || !c.space() || !c.take('(')) return bad("LIST ... RETURN (options)");
    while (!c.take(')')) {
      c.take(' ');
      auto option = c.atom();
      if (!option) return bad("LIST return options");
      const std::string o = upper(*option);
      if (o == "SUBSCRIBED") return_subscribed = true;
      else if (o == "STATUS") {
        if (!c.space() || !(return_status = status_items(c))) return bad("RETURN (STATUS (items))");
      } else if (o != "CHILDREN" && o != "SPECIAL-USE") {
        return bad("unknown LIST return option " + o);
      }
    }
  }
  if (!c.at_end()) return bad(word + " reference pattern");
  if (patterns.size() == 1 && patterns.front().empty()) {
    out_ += "* " + word + " (\\Noselect) \"/\" \"\"\r\n";
    return tagged("OK " + word + " completed");
  }
  auto matches = [&](const std::string& name) {
    for (const auto& pattern : patterns) {
      const std::string full = *reference + pattern;
      if (wildcard_match(full, name) || (name == "INBOX" && wildcard_match(upper(full), "INBOX"))) return true;
    }
    return false;
  };
  auto ancestors = [](const std::string& name) {
    std::vector<std::string> out;
    for (auto slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) out.push_back(name.substr(0, slash));
    return out;
  };
  const auto boxes = service().mailboxes().mailboxes(handle_);
  const auto subscribed_names = service().mailboxes().subscriptions(handle_);
  const std::set<std::string> subscribed(subscribed_names.begin(), subscribed_names.end());
  std::map<std::string, const MailboxInfo*> existing;
  for (const auto& b : boxes) existing.emplace(b.name, &b);
  auto has_children = [&](const std::string& name) {
    const auto at = existing.lower_bound(name + "/");  // names below sort together from here
    return at != existing.end() && at->first.rfind(name + "/", 0) == 0;
  };
  // What the selection options select: subscribed names (existing or not), special-use
  // mailboxes, or (no option) every mailbox and the parents that mailboxes imply.
  auto selected = [&](const std::string& name) {
    const auto box = existing.find(name);
    if (only_special && (box == existing.end() || box->second->special_use.empty())) return false;
    if ((only_subscribed || lsub) && !subscribed.count(name)) return false;
    return true;
  };
  std::vector<std::string> order;  // existing mailboxes first, as created; then other names
  std::set<std::string> seen;
  auto consider = [&](const std::string& name) {
    if (seen.insert(name).second) order.push_back(name);
  };
  for (const auto& b : boxes) consider(b.name);
  std::vector<std::string> others;
  for (const auto& b : boxes)
    for (const auto& a : ancestors(b.name)) others.push_back(a);
  for (const auto& s : subscribed_names) {
    others.push_back(s);
    for (const auto& a : ancestors(s)) others.push_back(a);
  }
  std::sort(others.begin(), others.end());
  for (const auto& name : others) consider(name);
  const bool extended_selection = only_subscribed || only_special;
  for (const auto& name : order) {
    if (!matches(name)) continue;
    const auto box = existing.find(name);
    const bool exists = box != existing.end();
    const bool children = has_children(name);
    // Descendants that the selection selects, for RECURSIVEMATCH's CHILDINFO (RFC 5258 3.5)
    // and LSUB's \Noselect parents of subscribed children (RFC 3501 6.3.9).
    bool selected_below = false;
    if (recursive || lsub)
      for (auto it = seen.lower_bound(name + "/"); it != seen.end() && it->rfind(name + "/", 0) == 0 && !selected_below; ++it)
        selected_below = selected(*it);
    std::string attributes;
    auto add = [&attributes](const std::string& a) { attributes += (attributes.empty() ? "" : " ") + a; };
    std::string extra;
    if (lsub) {
      if (selected(name)) {
        if (exists) add(children ? "\\HasChildren" : "\\HasNoChildren");
      } else if (selected_below && patterns.front().find('%') != std::string::npos) {
        add("\\Noselect");  // not subscribed itself: a subscribed child lies below
      } else {
        continue;
      }
    } else if (extended_selection) {
      const bool chosen = selected(name);
      if (!chosen && !(recursive && selected_below)) continue;
      if (!exists) add("\\NonExistent");
      if (children || exists) add(children ? "\\HasChildren" : "\\HasNoChildren");
      if (recursive && selected_below) extra = std::string(" (\"CHILDINFO\" (") + (only_subscribed ? "\"SUBSCRIBED\"" : "") +
                                               (only_subscribed && only_special ? " " : "") + (only_special ? "\"SPECIAL-USE\"" : "") + "))";
    } else {
      // Plain LIST: existing mailboxes, and the parents they imply (RFC 9051 6.3.9:
      // \NonExistent, which IMAP4rev1 clients know as \Noselect).
      if (!exists && !children) continue;
      if (!exists) add(rev2_ ? "\\NonExistent" : "\\Noselect");
      add(children ? "\\HasChildren" : "\\HasNoChildren");
    }
    if (exists && !box->second->special_use.empty()) add(box->second->special_use);
    if (return_subscribed && subscribed.count(name)) add("\\Subscribed");
    out_ += "* " + word + " (" + attributes + ") \"/\" " + mailbox_text(name) + extra + "\r\n";
    if (return_status && exists) out_ += status_line(*box->second, *return_status);
  }
  tagged("OK " + word + " completed");
}

void Session::status(Cursor& c) {
  std::optional<std::string> mailbox;
  if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.space()) return bad("STATUS mailbox (items)");
  const auto items = status_items(c);
  if (!items || !c.at_end()) return bad("STATUS mailbox (items)");
  const auto boxes = service().mailboxes().mailboxes(handle_);
  const auto box = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.name == *mailbox; });
  if (box == boxes.end()) return tagged("NO [NONEXISTENT] no such mailbox");
  // RFC 7162 3.1: STATUS (HIGHESTMODSEQ) is a CONDSTORE-enabling command.
  if (std::find(items->begin(), items->end(), "HIGHESTMODSEQ") != items->end()) condstore_ = true;
  out_ += status_line(*box, *items);
  tagged("OK STATUS completed");
}

void Session::select(Cursor& c, bool examine) {
  std::optional<std::string> mailbox;
  if (!c.space() || !(mailbox = mailbox_arg(c))) return bad("SELECT mailbox");
  // RFC 7162 3.1.8: SELECT mailbox (CONDSTORE) enables it.
  std::optional<std::tuple<int64_t, int64_t, std::string>> resync;  // uidvalidity, modseq, known UIDs
  if (c.space()) {
    const std::string parameters = upper(c.rest_of_line());
    if (parameters == "(CONDSTORE)") {
      condstore_ = true;
    } else if (parameters.rfind("(QRESYNC (", 0) == 0 && parameters.size() > 12 && parameters.compare(parameters.size() - 2, 2, "))") == 0) {
      // RFC 7162 3.2.5: (QRESYNC (uidvalidity modseq [known-uids])), after ENABLE QRESYNC.
      if (!qresync_) return bad("ENABLE QRESYNC first");
      const std::string inside = parameters.substr(10, parameters.size() - 12);
      std::vector<std::string> parts;
      for (std::size_t at = 0; at <= inside.size();) {
        const auto end = std::min(inside.find(' ', at), inside.size());
        if (end > at) parts.push_back(inside.substr(at, end - at));
        at = end + 1;
      }
      const bool numbers = parts.size() >= 2 && parts.size() <= 3 && parts[0].size() <= 18 && parts[1].size() <= 18 &&
                           parts[0].find_first_not_of("0123456789") == std::string::npos &&
                           parts[1].find_first_not_of("0123456789") == std::string::npos;
      if (!numbers || parts[0].empty() || parts[1].empty()) return bad("QRESYNC (uidvalidity modseq [known-uids])");
      resync.emplace(std::stoll(parts[0]), std::stoll(parts[1]), parts.size() == 3 ? parts[2] : std::string());
    } else {
      return bad("SELECT parameters: (CONDSTORE) or (QRESYNC (...))");
    }
  }
  state_ = State::authenticated;  // RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected
  // Held before the last one is let go: SELECT of the same mailbox keeps its cache.
  // The store tells of every change to the mailbox; an IDLE session answers at once.
  auto changed = [weak = weak_from_this(), executor = conn_->executor()] {
    asio::post(executor, [weak] {
      if (auto self = weak.lock()) self->changed_elsewhere();
    });
  };
  const auto held = service().mailboxes().hold(handle_, *mailbox, std::move(changed));
  unselect();
  held_ = held;
  if (!held_) return tagged("NO [NONEXISTENT] no such mailbox");
  mailbox_ = *mailbox;
  read_only_ = examine;
  int64_t uidvalidity = 0;
  keywords_.clear();
  announced_.clear();
  service().mailboxes().with_cache(handle_, held_->key, [&](const MailboxCache& cache) {
    messages_.reserve(cache.messages.size());
    for (const auto& m : cache.messages) {
      messages_.push_back(session_row(m));
      if (!m.keywords.empty()) keywords_.emplace(m.uid, m.keywords);
    }
    uidvalidity = cache.uidvalidity;
    state_uidnext_ = cache.uidnext;
    state_modseq_ = cache.highest_modseq;
  });
  for (const auto& [uid, words] : keywords_) learn_keywords(words);
  out_ += "* FLAGS (" + flag_list() + ")\r\n";
  // RFC 9051 7.1: \\* says clients may make new keywords.
  out_ += examine ? "* OK [PERMANENTFLAGS ()] read-only\r\n" : "* OK [PERMANENTFLAGS (" + flag_list() + " \\*)] flags\r\n";
  recent_.clear();
  claim_recent(0);
  out_ += "* " + std::to_string(messages_.size()) + " EXISTS\r\n" + recent_response();
  for (std::size_t i = 0; i < messages_.size(); ++i)
    if (!(messages_[i].flags & kSeen)) {
      out_ += "* OK [UNSEEN " + std::to_string(i + 1) + "] first unseen\r\n";
      break;
    }
  out_ += "* OK [UIDVALIDITY " + std::to_string(uidvalidity) + "] UIDs valid\r\n";
  out_ += "* OK [UIDNEXT " + std::to_string(state_uidnext_) + "] predicted next UID\r\n";
  out_ += "* OK [HIGHESTMODSEQ " + std::to_string(state_modseq_) + "] modseq\r\n";
  // RFC 9051 6.3.2: an IMAP4rev2 client also gets the mailbox's LIST.
  if (rev2_) out_ += "* LIST () \"/\" " + mailbox_text(mailbox_) + "\r\n";
  // RFC 7162 3.2.5.2: what went and what changed since the client's last look.
  if (resync && std::get<0>(*resync) == uidvalidity) {
    auto vanished = service().mailboxes().expunged_since(handle_, held_->key, std::get<1>(*resync));
    if (!std::get<2>(*resync).empty()) {
      const auto known = imap::parse_sequence_set(std::get<2>(*resync), static_cast<uint32_t>(std::max<int64_t>(state_uidnext_, 1)));
      if (known)
        vanished.erase(std::remove_if(vanished.begin(), vanished.end(), [&](int64_t u) { return !known->contains(static_cast<uint32_t>(u)); }),
                       vanished.end());
    }
    if (!vanished.empty()) out_ += "* VANISHED (EARLIER) " + uid_set(vanished) + "\r\n";
    for (std::size_t i = 0; i < messages_.size(); ++i)
      if (messages_[i].modseq > std::get<1>(*resync))
        out_ += "* " + std::to_string(i + 1) + " FETCH (UID " + std::to_string(messages_[i].uid) + " FLAGS " +
                flags_of(messages_[i]) + " MODSEQ (" + std::to_string(messages_[i].modseq) + "))\r\n";
  }
  state_ = State::selected;
  tagged(std::string(examine ? "OK [READ-ONLY]" : "OK [READ-WRITE]") + " " + (examine ? "EXAMINE" : "SELECT") + " completed");
}

void Session::create(Cursor& c) {
  std::optional<std::string> mailbox;
  if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.at_end()) return bad("CREATE mailbox");
  if (!mailbox->empty() && mailbox->back() == '/') mailbox->pop_back();
  for (const auto& b : service().mailboxes().mailboxes(handle_))
    if (b.name == *mailbox) return tagged("NO [ALREADYEXISTS] it exists");
  try {
    service().mailboxes().ensure_mailbox(handle_, *mailbox);
  } catch (const Error& e) {
    return refused(e);
  }
  tagged("OK CREATE completed");
}

void Session::mailbox_command(Cursor& c, const std::string& name) {
  std::optional<std::string> mailbox;
  if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.at_end()) return bad(name + " mailbox");
  try {
    if (name == "DELETE") {
      if (state_ == State::selected && mailbox_ == *mailbox) return tagged("NO [INUSE] close it first");
      service().mailboxes().delete_mailbox(handle_, *mailbox);
    } else {
      service().mailboxes().set_subscribed(handle_, *mailbox, name == "SUBSCRIBE");
    }
  } catch (const Error& e) {
    return refused(e);
  }
  tagged("OK " + name + " completed");
}

namespace {

// RFC 5464 3.2: "/private/..." or "/shared/...", 7-bit printable, no "*", "%", "//" or
// trailing "/". Names compare case-insensitively: kept in lower case.
std::optional<std::string> metadata_entry(const std::string& text) {
  const std::string entry = ascii_lower(text);
  if (entry.size() > 1024 || (entry.rfind("/private/", 0) != 0 && entry.rfind("/shared/", 0) != 0)) return std::nullopt;
  if (entry.back() == '/' || entry.find("//") != std::string::npos) return std::nullopt;
  for (unsigned char c : entry)
    if (c < 0x21 || c > 0x7e || c == '*' || c == '%') return std::nullopt;
  return entry;
}

constexpr std::size_t kMaxMetadataValue = 64 << 10;  // RFC 5464 4.3 MAXSIZE
constexpr std::size_t kMaxMetadataEntries = 200;     // per mailbox, and for the server

}  // namespace

void Session::setmetadata(Cursor& c) {
  // RFC 5464 4.3: SETMETADATA mailbox (entry value ...); "" is the server; NIL removes.
  std::optional<std::string> mailbox;
  if (!c.space() || !(mailbox = c.peek('"') || c.peek('{') ? c.string() : mailbox_arg(c)) || !c.space() || !c.take('('))
    return bad("SETMETADATA mailbox (entry value ...)");
  if (!mailbox->empty()) mailbox = imap::normalize_mailbox(from_client(*mailbox));
  std::vector<std::pair<std::string, std::optional<std::string>>> entries;
  while (!c.take(')')) {
    if (!entries.empty() && !c.space()) return bad("SETMETADATA entries are separated by one space");
    const auto name = c.astring();
    const auto entry = name ? metadata_entry(*name) : std::nullopt;
    if (!entry || !c.space()) return bad("SETMETADATA: an entry is /private/... or /shared/...");
    const bool nil = c.peek('N') || c.peek('n');
    std::optional<std::string> value;
    if (nil) {
      const auto word = c.atom();
      if (!word || upper(*word) != "NIL") return bad("SETMETADATA value: a string, a literal or NIL");
    } else {
      value = c.string();  // quoted, literal or literal8
      if (!value) return bad("SETMETADATA value: a string, a literal or NIL");
      if (value->size() > kMaxMetadataValue) return tagged("NO [METADATA MAXSIZE " + std::to_string(kMaxMetadataValue) + "] value too large");
    }
    entries.emplace_back(*entry, std::move(value));
  }
  if (!c.at_end()) return bad("SETMETADATA mailbox (entry value ...)");
  try {
    service().mailboxes().set_metadata(handle_, *mailbox, entries, kMaxMetadataEntries);
  } catch (const Error& e) {
    if (e.code() == errc::kTooLarge) return tagged("NO [METADATA TOOMANY] at most " + std::to_string(kMaxMetadataEntries) + " annotations");
    return refused(e);
  }
  tagged("OK SETMETADATA completed");
}

void Session::getmetadata(Cursor& c) {
  // RFC 5464 4.2: GETMETADATA [(MAXSIZE n DEPTH 0|1|infinity)] mailbox (entry ...) | entry.
  if (!c.space()) return bad("GETMETADATA [options] mailbox entries");
  std::optional<std::size_t> max_size;
  int depth = 0;  // -1: infinity
  if (c.take('(')) {
    while (!c.take(')')) {
      c.take(' ');
      const auto option = c.atom();
      if (!option || !c.space()) return bad("GETMETADATA options: MAXSIZE n, DEPTH 0|1|infinity");
      const auto value = c.atom();
      if (!value) return bad("GETMETADATA options: MAXSIZE n, DEPTH 0|1|infinity");
      if (upper(*option) == "MAXSIZE" && !value->empty() && value->size() < 10 && value->find_first_not_of("0123456789") == std::string::npos)
        max_size = std::stoul(*value);
      else if (upper(*option) == "DEPTH" && (*value == "0" || *value == "1" || upper(*value) == "INFINITY"))
        depth = *value == "0" ? 0 : *value == "1" ? 1 : -1;
      else
        return bad("GETMETADATA options: MAXSIZE n, DEPTH 0|1|infinity");
    }
    if (!c.space()) return bad("GETMETADATA [options] mailbox entries");
  }
  std::optional<std::string> mailbox = c.peek('"') || c.peek('{') ? c.string() : mailbox_arg(c);
  if (!mailbox || !c.space()) return bad("GETMETADATA [options] mailbox entries");
  if (!mailbox->empty()) mailbox = imap::normalize_mailbox(from_client(*mailbox));
  std::vector<std::string> wanted;
  const bool listed = c.take('(');
  do {
    if (listed && !wanted.empty() && !c.space()) return bad("GETMETADATA entries are separated by one space");
    const auto name = c.astring();
    const auto entry = name ? metadata_entry(*name) : std::nullopt;
    if (!entry) return bad("GETMETADATA: an entry is /private/... or /shared/...");
    wanted.push_back(*entry);
  } while (listed && !c.take(')'));
  if (!c.at_end()) return bad("GETMETADATA [options] mailbox entries");
  std::vector<std::pair<std::string, std::string>> stored;
  try {
    stored = service().mailboxes().metadata(handle_, *mailbox);
  } catch (const Error& e) {
    return refused(e);
  }
  std::string items;
  std::size_t longest = 0;
  auto add = [&](const std::string& entry, const std::string* value) {
    if (value && max_size && value->size() > *max_size) {
      longest = std::max(longest, value->size());
      return;
    }
    // Entry names go as atoms, as RFC 5464's examples write them, when nothing in them needs quoting.
    const bool atom = entry.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789/._-") == std::string::npos;
    items += (items.empty() ? "" : " ") + (atom ? entry : imap::quote(entry)) + " ";
    if (!value) items += "NIL";
    else if (value->find('\0') != std::string::npos) items += "~{" + std::to_string(value->size()) + "}\r\n" + *value;
    else items += imap::quote(*value);
  };
  for (const auto& want : wanted) {
    bool found = false;
    for (const auto& [entry, value] : stored) {
      const bool below = entry.size() > want.size() + 1 && entry.compare(0, want.size() + 1, want + "/") == 0;
      const bool deep_enough = depth == -1 || (depth == 1 && entry.find('/', want.size() + 1) == std::string::npos);
      if (entry == want || (below && depth != 0 && deep_enough)) {
        add(entry, &value);
        found = found || entry == want;
      }
    }
    if (!found && depth == 0) add(want, nullptr);  // asked by name and not there: NIL
  }
  if (!items.empty()) out_ += "* METADATA " + (mailbox->empty() ? std::string("\"\"") : mailbox_text(*mailbox)) + " (" + items + ")\r\n";
  tagged(longest ? "OK [METADATA LONGENTRIES " + std::to_string(longest) + "] GETMETADATA completed" : "OK GETMETADATA completed");
}

void Session::quota(Cursor& c, const std::string& name) {
  std::optional<std::string> argument;
  if (!c.space() || !(argument = c.astring()) || !c.at_end()) return bad(name + " argument");
  const int64_t limit = service().quota_of(handle_);
  const int64_t used = service().mailboxes().usage(handle_);
  const std::string line = "* QUOTA \"\" (STORAGE " + std::to_string((used + 1023) / 1024) + " " + std::to_string(limit / 1024) + ")\r\n";
  if (name == "GETQUOTA") {
    if (!argument->empty() || limit == 0) return tagged("NO [NONEXISTENT] no such quota root");
    out_ += line;
    return tagged("OK GETQUOTA completed");
  }
  const std::string mailbox = imap::normalize_mailbox(from_client(*argument));
  out_ += "* QUOTAROOT " + mailbox_text(mailbox) + (limit > 0 ? " \"\"" : "") + "\r\n";
  if (limit > 0) out_ += line;
  tagged("OK GETQUOTAROOT completed");
}

void Session::rename(Cursor& c) {
  std::optional<std::string> from, to;
  if (!c.space() || !(from = mailbox_arg(c)) || !c.space() || !(to = mailbox_arg(c)) || !c.at_end()) return bad("RENAME from to");
  try {
    service().mailboxes().rename_mailbox(handle_, *from, *to);
  } catch (const Error& e) {
    return refused(e);
  }
  // The selected mailbox may be the one renamed or below it (INBOX stays where it is).
  if (state_ == State::selected && *from != "INBOX" && (mailbox_ == *from || mailbox_.rfind(*from + "/", 0) == 0))
    mailbox_ = *to + mailbox_.substr(from->size());
  tagged("OK RENAME completed");
}

}  // namespace coop::mail::imap_server
