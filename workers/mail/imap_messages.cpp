// IMAP message commands and the session's view of the selected mailbox: FETCH (RFC 9051
// 6.4.5), STORE (6.4.6), COPY and MOVE (6.4.7, RFC 6851), EXPUNGE (6.4.3), APPEND (6.3.12) with
// MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469).
#include "workers/mail/imap_server.h"
#include "workers/mail/imap_url.h"
#include "workers/mail/mime_summary.h"
#include "workers/mail/spam/filter.h"

namespace coop::mail::imap_server {

const std::string& Session::keywords_of(int64_t uid) const {
  static const std::string none;
  const auto it = keywords_.find(uid);
  return it == keywords_.end() ? none : it->second;
}

void Session::set_keywords(int64_t uid, std::string words) {
  if (words.empty()) keywords_.erase(uid);
  else keywords_[uid] = std::move(words);
}

std::string Session::flag_list() const {
  return "\\Answered \\Flagged \\Deleted \\Seen \\Draft" + (announced_.empty() ? std::string() : " " + announced_);
}

bool Session::learn_keywords(std::string_view words) {
  bool learned = false;
  for (std::size_t at = 0; at < words.size();) {
    const auto end = std::min(words.find(' ', at), words.size());
    const auto word = words.substr(at, end - at);
    if (!word.empty() && !has_keyword(announced_, word)) {
      announced_ += (announced_.empty() ? "" : " ") + std::string(word);
      learned = true;
    }
    at = end + 1;
  }
  return learned;
}

void Session::announce_keywords(std::string_view words) {
  if (learn_keywords(words)) out_ += "* FLAGS (" + flag_list() + ")\r\n";
}

std::optional<std::vector<std::size_t>> Session::resolve(const std::string& text, bool uid) {
  if (text == "$") {  // RFC 5182: the saved search result, whichever numbers the command uses
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < messages_.size(); ++i)
      if (std::binary_search(saved_.begin(), saved_.end(), messages_[i].uid)) out.push_back(i);
    return out;
  }
  if (messages_.empty() && !uid) {
    auto empty = imap::parse_sequence_set(text, 1);
    if (!empty) return std::nullopt;
    return std::vector<std::size_t>{};
  }
  const uint32_t max = uid ? static_cast<uint32_t>(messages_.empty() ? 0 : messages_.back().uid)
                           : static_cast<uint32_t>(messages_.size());
  auto set = imap::parse_sequence_set(text, std::max<uint32_t>(max, 1));
  if (!set) return std::nullopt;
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < messages_.size(); ++i) {
    const uint32_t key = uid ? static_cast<uint32_t>(messages_[i].uid) : static_cast<uint32_t>(i + 1);
    // RFC 9051 6.4.8: "n:*" with n above the largest UID still names the last message.
    if (set->contains(key) || (uid && key == max && std::any_of(set->ranges.begin(), set->ranges.end(), [&](auto& r) {
                                 return r.first > max && r.second == std::max<uint32_t>(max, 1);
                               })))
      out.push_back(i);
  }
  return out;
}

void Session::forget(const std::vector<int64_t>& uids) {
  if (!contexts_.empty()) {
    std::vector<int64_t> sorted = uids;
    std::sort(sorted.begin(), sorted.end());
    remove_from_searches(sorted);
  }
  std::vector<int64_t> gone;
  for (std::size_t i = messages_.size(); i-- > 0;)
    if (std::binary_search(uids.begin(), uids.end(), messages_[i].uid)) {
      if (!qresync_) out_ += "* " + std::to_string(i + 1) + " EXPUNGE\r\n";
      gone.push_back(messages_[i].uid);
      recent_.erase(messages_[i].uid);
      messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  if (qresync_ && !gone.empty()) {
    std::sort(gone.begin(), gone.end());
    out_ += "* VANISHED " + uid_set(gone) + "\r\n";
  }
}

void Session::sync() {
  std::vector<int64_t> gone;
  std::vector<Message> now;  // this session's list with the store's flags, gone ones left out
  std::vector<std::pair<int64_t, std::string>> keywords;  // of messages whose keywords changed
  bool changed = false;
  const bool there = service().mailboxes().with_cache(handle_, held_->key, [&](const MailboxCache& cache) {
    if (cache.uidnext == state_uidnext_ && cache.highest_modseq == state_modseq_) return;
    changed = true;
    state_uidnext_ = cache.uidnext;
    state_modseq_ = cache.highest_modseq;
    now.reserve(cache.messages.size());
    auto fresh = cache.messages.begin();
    for (const auto& mine : messages_) {
      while (fresh != cache.messages.end() && fresh->uid < mine.uid) ++fresh;
      if (fresh == cache.messages.end() || fresh->uid != mine.uid) {
        gone.push_back(mine.uid);
        continue;
      }
      now.push_back(session_row(*fresh));
      if (fresh->keywords != keywords_of(mine.uid)) keywords.emplace_back(mine.uid, fresh->keywords);
    }
    const int64_t last = messages_.empty() ? 0 : messages_.back().uid;
    for (const auto& m : cache.messages)
      if (m.uid > last) {
        now.push_back(session_row(m));
        if (!m.keywords.empty()) keywords.emplace_back(m.uid, m.keywords);
      }
  });
  if (!there) {
    // Another session deleted the selected mailbox: nothing this one could say of it is
    // true any more (as Dovecot, BYE; flush() sends it and ends the session).
    revoked_ = "the selected mailbox was deleted";
    return;
  }
  // Another session may have renamed it: the session follows it (it reads it by key).
  if (auto name = service().mailboxes().name_of(handle_, held_->key)) mailbox_ = std::move(*name);
  if (!changed) return;
  forget(gone);  // EXPUNGE (or VANISHED) first, with the sequence numbers the client knows
  std::set<int64_t> rekeyed;
  for (auto& [uid, words] : keywords) {
    announce_keywords(words);
    set_keywords(uid, std::move(words));
    rekeyed.insert(uid);
  }
  for (std::size_t i = 0; i < messages_.size(); ++i) {
    const auto& fresh = now[i];
    if (fresh.flags != messages_[i].flags || rekeyed.count(fresh.uid))
      out_ += "* " + std::to_string(i + 1) + " FETCH (UID " + std::to_string(fresh.uid) + " FLAGS " +
              flags_of(fresh) +
              (condstore_ ? " MODSEQ (" + std::to_string(fresh.modseq) + ")" : std::string()) + ")\r\n";
  }
  const bool grew = now.size() > messages_.size();
  const int64_t known = messages_.empty() ? 0 : messages_.back().uid;
  messages_ = std::move(now);
  if (grew) {
    claim_recent(known);
    out_ += "* " + std::to_string(messages_.size()) + " EXISTS\r\n" + recent_response();
  }
  // RFC 5267 4.3.3: after EXISTS and FETCH, what the updating searches gained or lost.
  if (!contexts_.empty()) report_search_updates();
}

void Session::claim_recent(int64_t after) {
  if (messages_.empty() || messages_.back().uid <= after) return;
  const int64_t last = messages_.back().uid;
  // EXAMINE asks without claiming: up_to 0 moves nothing.
  const int64_t first = service().mailboxes().claim_recent(handle_, held_->key, read_only_ ? 0 : last);
  for (auto it = messages_.rbegin(); it != messages_.rend() && it->uid > std::max(after, first); ++it) recent_.insert(it->uid);
}

void Session::fetch(Cursor& c, bool uid) {
  std::optional<std::string> set_text;
  if (!c.space() || !(set_text = c.sequence_set()) || !c.space()) return bad("FETCH sequence-set items");
  std::string item_text = c.rest_of_line();
  // RFC 7162 3.1.4.1: FETCH ... (CHANGEDSINCE modseq) after the items.
  std::optional<int64_t> changed_since;
  bool vanished = false;
  if (const auto modifier = upper(item_text).rfind(" (CHANGEDSINCE "); modifier != std::string::npos && item_text.back() == ')') {
    std::string inside = upper(item_text.substr(modifier + 15, item_text.size() - modifier - 16));
    // RFC 7162 3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) also reports what went.
    if (const auto space = inside.find(' '); space != std::string::npos) {
      if (inside.substr(space + 1) != "VANISHED" || !uid || !qresync_) return bad("(CHANGEDSINCE n VANISHED) needs UID FETCH and QRESYNC");
      vanished = true;
      inside.resize(space);
    }
    if (inside.empty() || inside.size() > 18 || inside.find_first_not_of("0123456789") != std::string::npos)
      return bad("CHANGEDSINCE takes a number");
    changed_since = std::stoll(inside);
    item_text.resize(modifier);
    condstore_ = true;
  }
  auto items = imap::parse_fetch_items(item_text);
  if (!items) return bad("FETCH items");
  // An item asked twice is answered once.
  for (std::size_t k = 0; k < items->size(); ++k)
    for (std::size_t j = k + 1; j < items->size();)
      if ((*items)[j].response_name() == (*items)[k].response_name() && (*items)[j].peek == (*items)[k].peek)
        items->erase(items->begin() + static_cast<std::ptrdiff_t>(j));
      else
        ++j;
  // RFC 7162 3.1: FETCH with MODSEQ is a CONDSTORE-enabling command.
  if (std::any_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::modseq; }))
    condstore_ = true;
  auto chosen = resolve(*set_text, uid);
  if (!chosen) return bad("not a sequence set");
  if (vanished) {
    const auto range = imap::parse_sequence_set(*set_text, static_cast<uint32_t>(state_uidnext_ > 0 ? state_uidnext_ : 1));
    auto gone = service().mailboxes().expunged_since(handle_, held_->key, *changed_since);
    gone.erase(std::remove_if(gone.begin(), gone.end(), [&](int64_t u) { return !range || !range->contains(static_cast<uint32_t>(u)); }),
               gone.end());
    if (!gone.empty()) out_ += "* VANISHED (EARLIER) " + uid_set(gone) + "\r\n";
  }
  if (changed_since)
    chosen->erase(std::remove_if(chosen->begin(), chosen->end(), [&](std::size_t i) { return messages_[i].modseq <= *changed_since; }),
                  chosen->end());
  // RFC 7162 3.1.4.1: with CONDSTORE on, FLAGS come with their MODSEQ.
  const bool has_flags = std::any_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::flags; });
  if ((changed_since || (condstore_ && has_flags)) &&
      std::none_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::modseq; })) {
    imap::FetchItem modseq_item;
    modseq_item.kind = imap::FetchItem::Kind::modseq;
    items->push_back(modseq_item);
  }
  bool needs_bytes = false, sets_seen = false;
  for (const auto& item : *items) {
    needs_bytes = needs_bytes || item.kind == imap::FetchItem::Kind::section || item.kind == imap::FetchItem::Kind::rfc822 ||
                  item.kind == imap::FetchItem::Kind::preview ||
                  item.kind == imap::FetchItem::Kind::rfc822_header || item.kind == imap::FetchItem::Kind::rfc822_text;
    sets_seen = sets_seen || (item.kind == imap::FetchItem::Kind::section && !item.peek) ||
                item.kind == imap::FetchItem::Kind::rfc822 || item.kind == imap::FetchItem::Kind::rfc822_text;
  }
  if (uid && std::none_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::uid; })) {
    imap::FetchItem uid_item;
    uid_item.kind = imap::FetchItem::Kind::uid;
    items->insert(items->begin(), uid_item);
  }
  // RFC 9051 6.4.5: BODY[] (not PEEK) sets \Seen, and the response shows the new flags.
  if (sets_seen && !read_only_) {
    std::vector<int64_t> uids;
    for (auto i : *chosen)
      if (!(messages_[i].flags & kSeen)) uids.push_back(messages_[i].uid);
    if (!uids.empty()) {
      for (const auto& m : service().mailboxes().change_flags(handle_, held_->key, uids, MailboxStore::FlagChange::add, kSeen))
        for (auto& mine : messages_)
          if (mine.uid == m.uid) {
            mine.flags = m.meta.flags;
            mine.modseq = m.modseq;
          }
      if (std::none_of(items->begin(), items->end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::flags; }))
        {
        imap::FetchItem flags_item;
        flags_item.kind = imap::FetchItem::Kind::flags;
        items->push_back(flags_item);
      }
    }
  }
  auto job = std::make_shared<FetchJob>();
  job->uid = uid;
  job->chosen = std::move(*chosen);
  job->items = std::move(*items);
  job->needs_bytes = needs_bytes;
  job->needs_envelope = std::any_of(job->items.begin(), job->items.end(), [](const auto& i) { return i.kind == imap::FetchItem::Kind::envelope; });
  job->needs_structure = std::any_of(job->items.begin(), job->items.end(), [](const imap::FetchItem& item) {
    return item.kind == imap::FetchItem::Kind::body || item.kind == imap::FetchItem::Kind::bodystructure || item.binary ||
           (item.kind == imap::FetchItem::Kind::section && !item.spec.empty() && std::isdigit(static_cast<unsigned char>(item.spec[0])));
  });
  fetch_step(job);
}

void Session::prepare_fetch(FetchJob& job) {
  const std::size_t end = std::min(job.next + kFetchBatch, job.chosen.size());
  std::vector<int64_t> uids;
  for (std::size_t k = job.next; k < end; ++k) uids.push_back(messages_[job.chosen[k]].uid);
  std::sort(uids.begin(), uids.end());
  job.blobs.clear();
  job.envelopes.clear();
  job.saved.clear();
  // Always asked, as it tells which messages still exist (another session may have expunged
  // some that this one has not yet been told of).
  service().mailboxes().with_cache(handle_, held_->key, [&](const MailboxCache& cache) {
    for (const auto uid : uids)
      if (const auto* row = cache.find(uid)) {
        job.blobs.emplace(uid, row->blob);
        job.saved.emplace(uid, row->saved_at);
      }
  });
  if (job.needs_envelope)
    for (auto& e : service().mailboxes().envelopes(handle_, held_->key, uids))
      job.envelopes.emplace(e.uid, e.imap.empty() ? imap::envelope_text(e.json) : std::move(e.imap));
  job.prepared = end;
}

void Session::fetch_step(const std::shared_ptr<FetchJob>& job) {
  const auto& items = job->items;
  const bool needs_bytes = job->needs_bytes;
  while (job->next < job->chosen.size() && out_.size() < kFetchChunk) {
    if (job->next >= job->prepared) prepare_fetch(*job);
    const std::size_t i = job->chosen[job->next++];
    const auto& m = messages_[i];
    std::string bytes, structure_json, envelope_json;
    const auto blob = job->blobs.find(m.uid);
    const auto envelope = job->envelopes.find(m.uid);
    // RFC 9051 7.5.1, RFC 2180 4.1.3: a message another session expunged meanwhile is left
    // out and the command says so (EXPUNGEISSUED, RFC 5530); nothing is made up for it.
    if (blob == job->blobs.end() || (job->needs_envelope && envelope == job->envelopes.end())) {
      job->expunged = true;
      continue;
    }
    if (needs_bytes) {
      try {
        bytes = service().blobs().read(blob->second);
      } catch (const Error&) {  // its blob went with the expunge between the two reads
        job->expunged = true;
        continue;
      }
    }
    const auto read_structure = [&] {
      if (structure_json.empty()) std::tie(envelope_json, structure_json) = service().mailboxes().summaries(handle_, held_->key, m.uid);
      if (structure_json == "{}") {
        // Stored before summaries were kept: made from the message itself, not made up.
        try {
          if (bytes.empty()) bytes = service().blobs().read(blob->second);
        } catch (const Error&) {
          return false;  // gone with an expunge meanwhile
        }
        structure_json = summarize_message(bytes).body_structure.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
      return !structure_json.empty();
    };
    if (job->needs_structure && !read_structure()) {
      job->expunged = true;
      continue;
    }
    std::string line = "* " + std::to_string(i + 1) + " FETCH (";
    bool first = true;
    for (const auto& item : items) {
      line += first ? "" : " ";
      first = false;
      using K = imap::FetchItem::Kind;
      switch (item.kind) {
        case K::uid: line += "UID " + std::to_string(m.uid); break;
        case K::flags: line += "FLAGS " + flags_of(m); break;
        case K::internaldate: line += "INTERNALDATE " + imap::internal_date_text(m.internal_date); break;
        case K::size: line += "RFC822.SIZE " + std::to_string(m.size); break;
        case K::modseq: line += "MODSEQ (" + std::to_string(m.modseq) + ")"; break;
        case K::envelope: line += "ENVELOPE " + envelope->second; break;
        case K::body: line += "BODY " + imap::bodystructure_text(structure_json, false); break;
        case K::savedate: {
          const auto saved = job->saved.find(m.uid);
          line += "SAVEDATE " + (saved != job->saved.end() ? imap::internal_date_text(saved->second) : std::string("NIL"));
          break;
        }
        case K::preview: {
          const auto preview = message_preview(bytes);
          line += "PREVIEW " + (preview.empty() ? std::string("NIL") : imap::quote(preview));
          break;
        }
        case K::bodystructure: line += "BODYSTRUCTURE " + imap::bodystructure_text(structure_json, true); break;
        default: {
          const auto section = item.binary ? imap::binary_section(bytes, item, structure_json)
                                           : imap::message_section(bytes, item, structure_json);
          if (item.binary_size) {
            line += item.response_name() + " " + (section ? std::to_string(section->size()) : std::string("0"));
          } else if (item.binary && section) {
            // RFC 3516 4.2: literal8 when the bytes hold a NUL.
            line += item.response_name() + " " + (section->find('\0') != std::string::npos ? "~{" : "{") +
                    std::to_string(section->size()) + "}\r\n";
            line += *section;
          } else {
            line += item.response_name() + " ";
            if (section) {
              line += "{" + std::to_string(section->size()) + "}\r\n";
              line += *section;  // appended, not concatenated: message bytes are copied once here
            } else {
              line += "NIL";
            }
          }
        }
      }
    }
    out_ += line;
    out_ += ")\r\n";
  }
  if (job->next < job->chosen.size()) {
    more_ = [this, job] { fetch_step(job); };
    return;
  }
  if (job->expunged)
    tagged(job->uid ? "OK [EXPUNGEISSUED] some messages were expunged meanwhile" : "NO [EXPUNGEISSUED] some of the requested messages no longer exist");
  else
    tagged("OK FETCH completed");
}

void Session::store(Cursor& c, bool uid) {
  std::optional<std::string> set_text, what;
  if (!c.space() || !(set_text = c.sequence_set()) || !c.space()) return bad("STORE sequence-set item flags");
  // RFC 7162 3.1.3: STORE set (UNCHANGEDSINCE modseq) item flags.
  std::optional<int64_t> unchanged_since;
  if (c.take('(')) {
    const auto word = c.atom();
    if (!word || upper(*word) != "UNCHANGEDSINCE" || !c.space()) return bad("STORE (UNCHANGEDSINCE modseq)");
    const std::string digits = c.sequence_set().value_or("");
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos || !c.take(')') ||
        !c.space())
      return bad("STORE (UNCHANGEDSINCE modseq)");
    unchanged_since = std::stoll(digits);
    condstore_ = true;
  }
  // "+FLAGS.SILENT" holds no atom-special, so one atom.
  if (!(what = c.atom()) || !c.space()) return bad("STORE item");
  const std::string item = upper(*what);
  MailboxStore::FlagChange change;
  if (item.rfind("+FLAGS", 0) == 0) change = MailboxStore::FlagChange::add;
  else if (item.rfind("-FLAGS", 0) == 0) change = MailboxStore::FlagChange::remove;
  else if (item.rfind("FLAGS", 0) == 0) change = MailboxStore::FlagChange::replace;
  else return bad("STORE +FLAGS, -FLAGS or FLAGS");
  const bool silent = item.find(".SILENT") != std::string::npos;
  if (read_only_) return tagged("NO [READ-ONLY] the mailbox was opened with EXAMINE");
  auto list = imap::parse_flag_list(c.rest_of_line());
  if (!list.ok) return bad("not a flag: " + reply_text(list.bad_word));
  const unsigned flags = list.system;
  std::vector<std::string> keywords = std::move(list.keywords);
  const auto chosen = resolve(*set_text, uid);
  if (!chosen) return bad("not a sequence set");
  std::vector<int64_t> uids, modified;
  for (auto i : *chosen) {
    // The conditional STORE leaves alone what changed since the client looked.
    if (unchanged_since && messages_[i].modseq > *unchanged_since) {
      modified.push_back(uid ? messages_[i].uid : static_cast<int64_t>(i + 1));
      continue;
    }
    uids.push_back(messages_[i].uid);
  }
  std::vector<StoredMessage> changed;
  try {
    changed = service().mailboxes().change_flags(handle_, held_->key, uids, change, flags, keywords);
  } catch (const Error& e) {
    if (e.status() >= 500) throw;  // SERVERBUG, from run_blocking
    return refused(e);
  }
  std::map<int64_t, const StoredMessage*> now;
  for (const auto& m : changed) now[m.uid] = &m;
  for (const auto& m : changed) announce_keywords(m.meta.keywords);
  for (auto i : *chosen) {
    auto& m = messages_[i];
    const auto it = now.find(m.uid);
    if (it != now.end()) {
      m.flags = it->second->meta.flags;
      m.modseq = it->second->modseq;
      set_keywords(m.uid, it->second->meta.keywords);
    }
    if (silent && !(condstore_ && it != now.end())) continue;
    if (unchanged_since && std::find(uids.begin(), uids.end(), m.uid) == uids.end()) continue;
    out_ += "* " + std::to_string(i + 1) + " FETCH (" + (uid ? "UID " + std::to_string(m.uid) + " " : std::string()) + "FLAGS " +
            flags_of(m) + (condstore_ ? " MODSEQ (" + std::to_string(m.modseq) + ")" : std::string()) + ")\r\n";
  }
  if (!contexts_.empty()) report_search_updates();  // RFC 5267: the session's own STORE counts too
  tagged(modified.empty() ? "OK STORE completed" : "OK [MODIFIED " + uid_set(modified) + "] conditional STORE failed for some");
}

std::string Session::uid_set(const std::vector<int64_t>& uids) {
  std::string out;
  for (std::size_t i = 0; i < uids.size();) {
    std::size_t j = i;
    while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(uids[i]) + (j > i ? ":" + std::to_string(uids[j]) : "");
    i = j + 1;
  }
  return out;
}

void Session::copy(Cursor& c, bool uid, bool move) {
  std::optional<std::string> set_text, target;
  if (!c.space() || !(set_text = c.sequence_set()) || !c.space() || !(target = mailbox_arg(c))) return bad("COPY sequence-set mailbox");
  const auto chosen = resolve(*set_text, uid);
  if (!chosen) return bad("not a sequence set");
  if (move && read_only_) return tagged("NO [READ-ONLY] the mailbox was opened with EXAMINE");
  const auto boxes = service().mailboxes().mailboxes(handle_);
  const auto box = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.name == *target; });
  if (box == boxes.end()) return tagged("NO [TRYCREATE] no such mailbox");
  std::vector<int64_t> uids;
  for (auto i : *chosen) uids.push_back(messages_[i].uid);
  const auto pairs = service().mailboxes().copy(handle_, held_->key, *target, uids);
  std::vector<int64_t> from, to;
  for (const auto& [a, b] : pairs) {
    from.push_back(a);
    to.push_back(b);
  }
  // RFC 4315 COPYUID.
  const std::string code = pairs.empty() ? std::string()
                                         : "[COPYUID " + std::to_string(box->uidvalidity) + " " + uid_set(from) + " " + uid_set(to) + "] ";
  if (!move) {
    teach_spam_filter(from, box->special_use);
    if (*target == mailbox_) sync();  // the copies' EXISTS now, not at the next command
    return tagged("OK " + code + "COPY completed");
  }
  // RFC 6851: MOVE is copy, then expunge of just those, the COPYUID untagged first.
  out_ += "* OK " + code + "moved\r\n";
  service().mailboxes().change_flags(handle_, held_->key, from, MailboxStore::FlagChange::add, kDeleted);
  // The blobs are read before the expunge (this session's cache still lists them); the
  // lesson comes after the move is whole, so that no failure of it can leave one half done.
  const auto lesson = spam_lesson(from, box->special_use);
  auto gone = service().mailboxes().expunge(handle_, held_->key, from);
  forget(gone);
  learn(lesson);
  if (*target == mailbox_) sync();
  tagged("OK MOVE completed");
}

Session::SpamLesson Session::spam_lesson(const std::vector<int64_t>& uids, const std::string& target_use) {
  SpamLesson lesson;
  if (!settings_->spam || uids.empty()) return lesson;
  try {
    const auto boxes = service().mailboxes().mailboxes(handle_);
    const auto here = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.name == mailbox_; });
    const bool from_junk = here != boxes.end() && here->special_use == "\\Junk";
    lesson.spam = target_use == "\\Junk";
    if (from_junk == lesson.spam || (from_junk && target_use == "\\Trash")) return lesson;
    service().mailboxes().with_cache(handle_, mailbox_, [&](const MailboxCache& cache) {
      for (const auto uid : uids)
        if (const auto* m = cache.find(uid); m && lesson.blobs.size() < kMaxLessonMessages) lesson.blobs.push_back(m->blob);
    });
    if (uids.size() > kMaxLessonMessages)
      spdlog::info("imap {}: {} messages moved at once; the spam filter learns from the first {}", handle_, uids.size(),
                   kMaxLessonMessages);
  } catch (const std::exception& e) {
    spdlog::warn("imap {}: the spam filter cannot learn from this move: {}", handle_, e.what());
    lesson.blobs.clear();
  }
  return lesson;
}

void Session::learn(const SpamLesson& lesson) {
  // The blob names the message: the same delivery moved by two members teaches once.
  int taught = 0;
  for (const auto& blob : lesson.blobs) {
    try {
      taught += settings_->spam->train(handle_, blob, service().blobs().read(blob), lesson.spam) ? 1 : 0;
    } catch (const std::exception& e) {
      spdlog::warn("imap {}: teaching the spam filter {} failed: {}", handle_, blob.substr(0, 12), e.what());
    }
  }
  if (taught > 0) spdlog::info("imap {}: {} message(s) taught as {}", handle_, taught, lesson.spam ? "spam" : "ham");
}

void Session::teach_spam_filter(const std::vector<int64_t>& uids, const std::string& target_use) {
  learn(spam_lesson(uids, target_use));
}

void Session::expunge(Cursor& c, bool uid) {
  if (read_only_) return tagged("NO [READ-ONLY] the mailbox was opened with EXAMINE");
  std::optional<std::vector<int64_t>> only;
  if (uid) {
    std::optional<std::string> set_text;
    if (!c.space() || !(set_text = c.sequence_set())) return bad("UID EXPUNGE sequence-set");
    const auto chosen = resolve(*set_text, true);
    if (!chosen) return bad("not a sequence set");
    only.emplace();
    for (auto i : *chosen) only->push_back(messages_[i].uid);
  }
  const auto gone = service().mailboxes().expunge(handle_, held_->key, only);
  forget(gone);
  sync();  // and what other sessions expunged meanwhile, which this one was not yet told
  tagged("OK EXPUNGE completed");
}

// A message, or a part of one, that an RFC 5092 URL names in the member's own mailboxes.
std::optional<std::string> Session::catenate_part(const std::string& text) {
  auto url = imap::parse_message_url(text);
  if (!url) return std::nullopt;
  if (ascii_iequals(url->mailbox, "INBOX")) url->mailbox = "INBOX";
  std::string blob;
  int64_t validity = 0;
  const bool found = service().mailboxes().with_cache(handle_, url->mailbox, [&](const MailboxCache& cache) {
    validity = cache.uidvalidity;
    if (const auto* m = cache.find(url->uid)) blob = m->blob;
  });
  if (!found || blob.empty() || (url->uidvalidity && *url->uidvalidity != validity)) return std::nullopt;
  std::string bytes = service().blobs().read(blob);
  if (!url->section.empty()) {
    const auto items = imap::parse_fetch_items("BODY.PEEK[" + url->section + "]");
    if (!items || items->size() != 1 || items->front().kind != imap::FetchItem::Kind::section) return std::nullopt;
    const auto structure = service().mailboxes().summaries(handle_, url->mailbox, url->uid).second;
    auto part = imap::message_section(bytes, items->front(), structure);
    if (!part) return std::nullopt;
    bytes = std::move(*part);
  }
  if (url->partial) {
    const auto [offset, length] = *url->partial;
    if (offset >= bytes.size()) return std::string();
    bytes = bytes.substr(static_cast<std::size_t>(offset), length ? static_cast<std::size_t>(*length) : std::string::npos);
  }
  return bytes;
}

void Session::append(Cursor& c) {
  std::optional<std::string> mailbox;
  if (!c.space() || !(mailbox = mailbox_arg(c)) || !c.space()) return bad("APPEND mailbox [flags] [date] literal");
  // RFC 3502 MULTIAPPEND: one or more [flags] [date] literal groups, stored all or none.
  std::vector<std::string> bodies;
  std::vector<MailService::Appending> messages;
  do {
    unsigned flags = 0;
    std::string keywords;
    if (c.take('(')) {
      while (!c.take(')')) {
        c.take(' ');
        std::string flag;
        if (c.take('\\')) flag = "\\";
        auto word = c.atom();
        if (!word) return bad("flag list");
        if (auto bit = imap::system_flag_bit(flag + *word)) flags |= *bit;
        else if (flag.empty() && imap::valid_keyword(*word) && !has_keyword(keywords, *word)) keywords += (keywords.empty() ? "" : " ") + *word;
      }
      if (!c.space()) return bad("APPEND message");
    }
    int64_t date = static_cast<int64_t>(::time(nullptr));
    if (c.peek('"')) {
      auto text = c.string();
      const auto parsed = text ? imap::parse_imap_date_time(*text) : std::nullopt;
      if (!parsed || !c.space()) return bad("date-time is \"dd-Mon-yyyy hh:mm:ss +zzzz\"");
      date = *parsed;
    }
    // RFC 6855 4: after UTF8=ACCEPT a message with UTF-8 headers comes as UTF8 (literal8).
    bool utf8_data = false;
    if (utf8_names_ && c.peek('U')) {
      const auto word = c.atom();
      if (!word || upper(*word) != "UTF8" || !c.space() || !c.take('(')) return bad("APPEND ... UTF8 (literal8)");
      utf8_data = true;
    }
    std::optional<std::string> message;
    if (!utf8_data && (c.peek('C') || c.peek('c'))) {
      // RFC 4469 CATENATE: the message made of TEXT literals and parts of stored messages.
      const auto word = c.atom();
      if (!word || upper(*word) != "CATENATE" || !c.space() || !c.take('(')) return bad("APPEND ... CATENATE (parts)");
      std::string built;
      do {
        const auto kind = c.atom();
        if (!kind || !c.space()) return bad("CATENATE takes TEXT literal and URL url parts");
        if (upper(*kind) == "TEXT") {
          const auto text = c.string();
          if (!text) return bad("CATENATE TEXT needs a literal");
          built += *text;
        } else if (upper(*kind) == "URL") {
          const auto url = c.astring();
          if (!url) return bad("CATENATE URL needs a URL");
          const auto part = catenate_part(*url);
          if (!part) {
            // RFC 4469 5: BADURL names the URL that could not be used (when it can be echoed).
            const bool echo = std::all_of(url->begin(), url->end(), [](char ch) { return ch > ' ' && ch < 127 && ch != ']'; });
            return tagged("NO [BADURL" + (echo ? " " + *url : std::string()) + "] the URL names no message part here");
          }
          built += *part;
        } else {
          return bad("CATENATE takes TEXT literal and URL url parts");
        }
        if (built.size() > settings_->limits.max_literal) return tagged("NO [TOOBIG] the message would be too large");
      } while (c.space());
      if (!c.take(')')) return bad("CATENATE (parts)");
      message = std::move(built);
    } else {
      message = c.string();
    }
    if (!message || (utf8_data && !c.take(')'))) return bad("APPEND needs the message as a literal");
    if (static_cast<std::size_t>(std::count(keywords.begin(), keywords.end(), ' ')) >= kMaxKeywords)
      return tagged("NO [LIMIT] a message takes at most " + std::to_string(kMaxKeywords) + " keywords");
    bodies.push_back(std::move(*message));
    messages.push_back({{}, flags, date, std::move(keywords)});
  } while (c.space());
  if (!c.at_end()) return bad("APPEND mailbox [flags] [date] literal ...");
  for (std::size_t n = 0; n < messages.size(); ++n) messages[n].bytes = bodies[n];
  const auto boxes = service().mailboxes().mailboxes(handle_);
  const auto box = std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) { return b.name == *mailbox; });
  if (box == boxes.end()) return tagged("NO [TRYCREATE] no such mailbox");
  std::vector<StoredMessage> stored;
  try {
    stored = service().append_new(handle_, *mailbox, messages);
  } catch (const Error& e) {
    if (e.status() >= 500 && e.code() != errc::kQuotaExceeded) throw;  // SERVERBUG, from run_blocking
    return refused(e);
  }
  if (state_ == State::selected && *mailbox == mailbox_) sync();
  // RFC 4315 APPENDUID, with a set for a MULTIAPPEND.
  std::vector<int64_t> uids;
  for (const auto& m : stored) uids.push_back(m.uid);
  tagged("OK [APPENDUID " + std::to_string(box->uidvalidity) + " " + uid_set(uids) + "] APPEND completed");
}

}  // namespace coop::mail::imap_server
