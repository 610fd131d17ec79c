// IMAP NOTIFY (RFC 5465): the events a client asks to hear about, for the selected mailbox and
// for others, sent as they happen (between commands too) as STATUS, LIST, METADATA, EXISTS,
// EXPUNGE and FETCH responses.
#include "workers/mail/imap_server.h"

#include <map>

namespace coop::mail::imap_server {

namespace {

// RFC 5465 5: the events coop reports (AnnotationChange is not among them: no ANNOTATE).
const std::map<std::string, std::string> kEvents = {
    {"MESSAGENEW", "MessageNew"},       {"MESSAGEEXPUNGE", "MessageExpunge"},
    {"FLAGCHANGE", "FlagChange"},       {"MAILBOXNAME", "MailboxName"},
    {"SUBSCRIPTIONCHANGE", "SubscriptionChange"}, {"MAILBOXMETADATACHANGE", "MailboxMetadataChange"},
    {"SERVERMETADATACHANGE", "ServerMetadataChange"}};
constexpr const char* kBadEvent =
    "NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange "
    "ServerMetadataChange)] ";
// RFC 5465 5.1: MessageNew may ask for these fetch attributes of new messages (the ones a
// session knows without reading the message).
const std::set<std::string> kNotifyFetch = {"UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE"};

}  // namespace

void Session::notify(Cursor& c) {
  std::optional<std::string> verb;
  if (!c.space() || !(verb = c.atom())) return bad("NOTIFY SET ... or NOTIFY NONE");
  if (upper(*verb) == "NONE") {
    if (!c.at_end()) return bad("NOTIFY NONE");
    // RFC 5465 3.1: every event is cancelled (which is not the behaviour before NOTIFY).
    notify_stop();
    notify_.emplace();
    return tagged("OK NOTIFY completed");
  }
  if (upper(*verb) != "SET" || !c.space()) return bad("NOTIFY SET [STATUS] (filter events) ...");
  bool status = false;
  if (c.peek('S') || c.peek('s')) {
    const auto word = c.atom();
    if (!word || upper(*word) != "STATUS" || !c.space()) return bad("NOTIFY SET [STATUS] (filter events) ...");
    status = true;
  }
  NotifyState next;
  bool selected_seen = false, unsupported = false;
  do {
    NotifyGroup group;
    std::optional<std::string> filter;
    if (!c.take('(') || !(filter = c.atom())) return bad("an event group is (filter events)");
    const auto f = upper(*filter);
    using Filter = NotifyGroup::Filter;
    if (f == "SELECTED" || f == "SELECTED-DELAYED") {
      if (selected_seen) return bad("one SELECTED or SELECTED-DELAYED filter at most");
      selected_seen = true;
      group.filter = f == "SELECTED" ? Filter::selected : Filter::selected_delayed;
    } else if (f == "INBOXES" || f == "PERSONAL" || f == "SUBSCRIBED") {
      // RFC 5465 6.3: inboxes are where mail is delivered; coop files into any of them
      // (Junk, by the filters members set), so inboxes are the personal namespace.
      group.filter = f == "SUBSCRIBED" ? Filter::subscribed : Filter::personal;
    } else if (f == "SUBTREE" || f == "MAILBOXES") {
      group.filter = f == "SUBTREE" ? Filter::subtree : Filter::mailboxes;
      if (!c.space()) return bad(f + " needs mailboxes");
      const bool many = c.take('(');
      do {
        auto name = mailbox_arg(c);
        if (!name) return bad(f + " needs mailboxes");
        group.names.push_back(std::move(*name));
      } while (many && c.space());
      if (many && !c.take(')')) return bad(f + " (mailbox ...)");
    } else {
      return bad("unknown filter " + reply_text(*filter));
    }
    if (!c.space()) return bad("an event group is (filter events)");
    if (c.take('(')) {
      for (;;) {
        const auto event = c.atom();
        if (!event) return bad("events are atoms");
        const auto known = kEvents.find(upper(*event));
        if (known == kEvents.end()) unsupported = true;  // event-ext is any atom: NO below, not BAD
        else group.events.insert(known->second);
        if (!c.space()) break;
        // RFC 5465 5.1: MessageNew (fetch-att ...), for the selected mailbox only.
        if (known != kEvents.end() && known->second == "MessageNew" && c.take('(')) {
          if (group.filter != Filter::selected && group.filter != Filter::selected_delayed)
            return bad("fetch attributes are for the selected mailbox only");
          do {
            const auto att = c.atom();
            if (!att || !kNotifyFetch.count(upper(*att)))
              return bad("MessageNew takes UID, FLAGS, MODSEQ, INTERNALDATE and RFC822.SIZE here");
            group.fetch.push_back(upper(*att));
          } while (c.space());
          if (!c.take(')')) return bad("MessageNew (fetch-att ...)");
          if (!c.space()) break;
        }
      }
      if (!c.take(')')) return bad("(event ...)");
    } else {
      const auto none = c.atom();
      if (!none || upper(*none) != "NONE") return bad("events are (event ...) or NONE");
    }
    if (!c.take(')')) return bad("an event group is (filter events)");
    // RFC 5465 5: MessageNew and MessageExpunge come together, and FlagChange needs both.
    const bool has_new = group.events.count("MessageNew"), has_expunge = group.events.count("MessageExpunge");
    if (has_new != has_expunge) return bad("MessageNew and MessageExpunge go together");
    if (group.events.count("FlagChange") && !has_new) return bad("FlagChange needs MessageNew and MessageExpunge");
    const bool selected = group.filter == NotifyGroup::Filter::selected || group.filter == NotifyGroup::Filter::selected_delayed;
    if (selected && std::any_of(group.events.begin(), group.events.end(), [](const std::string& e) {
          return e != "MessageNew" && e != "MessageExpunge" && e != "FlagChange";
        }))
      return bad("the selected mailbox takes message events only");
    next.groups.push_back(std::move(group));
  } while (c.space());
  if (!c.at_end()) return bad("NOTIFY SET [STATUS] (filter events) ...");
  if (unsupported) return tagged(std::string(kBadEvent) + "coop does not report that");

  // RFC 5465 3.1: SET replaces what was asked before, and is an implicit NOOP.
  notify_stop();
  notify_ = std::move(next);
  notify_->boxes.clear();
  for (auto& box : service().mailboxes().mailboxes(handle_)) notify_->boxes.emplace(box.name, box);
  for (auto& name : service().mailboxes().subscriptions(handle_)) notify_->subscribed.insert(name);
  notify_->metadata = notify_metadata();
  std::weak_ptr<Session> weak = weak_from_this();
  const auto executor = conn_->executor();
  notify_->watcher = service().mailboxes().watch(handle_, [weak, executor] {
    asio::post(executor, [weak] {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      self->notify_changed_ = true;
      if (!self->busy_ && !self->writing_) self->flush();
    });
  });
  if (status) {
    // RFC 5465 3.1 STATUS: where message events are wanted, the state now.
    for (const auto& [name, box] : notify_->boxes) {
      if (state_ == State::selected && name == mailbox_) continue;
      const auto events = notify_events_for(name);
      if (!events.count("MessageNew")) continue;
      std::vector<std::string> items = {"UIDVALIDITY", "UIDNEXT", "MESSAGES", "UNSEEN"};
      if (events.count("FlagChange") && condstore_) items.push_back("HIGHESTMODSEQ");
      out_ += status_line(box, items);
    }
  }
  if (state_ == State::selected) sync();
  tagged("OK NOTIFY completed");
}

void Session::notify_stop() {
  if (notify_ && notify_->watcher) service().mailboxes().unwatch(handle_, notify_->watcher);
  notify_.reset();
  notify_changed_ = false;
}

// The events the groups other than the selected filters ask for on this mailbox.
std::set<std::string> Session::notify_events_for(const std::string& name) const {
  return notify_ ? notify_events_for(name, notify_->subscribed) : std::set<std::string>{};
}

std::set<std::string> Session::notify_events_for(const std::string& name, const std::set<std::string>& subscribed) const {
  std::set<std::string> out;
  if (!notify_) return out;
  for (const auto& g : notify_->groups) {
    bool applies = false;
    switch (g.filter) {
      case NotifyGroup::Filter::selected:
      case NotifyGroup::Filter::selected_delayed: break;
      case NotifyGroup::Filter::personal: applies = true; break;
      case NotifyGroup::Filter::subscribed: applies = subscribed.count(name) > 0; break;
      case NotifyGroup::Filter::mailboxes: applies = std::find(g.names.begin(), g.names.end(), name) != g.names.end(); break;
      case NotifyGroup::Filter::subtree:
        applies = std::any_of(g.names.begin(), g.names.end(), [&](const std::string& root) {
          return name == root || name.rfind(root + "/", 0) == 0;
        });
        break;
    }
    if (applies) out.insert(g.events.begin(), g.events.end());
  }
  return out;
}

const Session::NotifyGroup* Session::notify_selected() const {
  if (!notify_) return nullptr;
  for (const auto& g : notify_->groups)
    if (g.filter == NotifyGroup::Filter::selected || g.filter == NotifyGroup::Filter::selected_delayed) return &g;
  return nullptr;
}

// Metadata entries per mailbox ("" for the server's), for the mailboxes whose changes are asked.
std::map<std::string, std::vector<std::pair<std::string, std::string>>> Session::notify_metadata() {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> out;
  if (!notify_) return out;
  const bool server = std::any_of(notify_->groups.begin(), notify_->groups.end(),
                                  [](const NotifyGroup& g) { return g.events.count("ServerMetadataChange") > 0; });
  if (server) out[""] = service().mailboxes().metadata(handle_, "");
  for (const auto& [name, box] : notify_->boxes)
    if (notify_events_for(name).count("MailboxMetadataChange")) out[name] = service().mailboxes().metadata(handle_, name);
  return out;
}

// On the pool, when the store told of a commit: what changed since the last look, as the
// responses RFC 5465 5 gives each event.
void Session::notify_collect() {
  if (!notify_ || notify_->groups.empty()) return;
  // The selected mailbox (6.1): SELECTED tells everything at once; SELECTED-DELAYED holds
  // expunges back until a command may report them, so a change with one waits whole.
  if (state_ == State::selected) {
    if (const auto* g = notify_selected(); g && g->events.count("MessageNew")) {
      bool expunged = false;
      if (g->filter == NotifyGroup::Filter::selected_delayed)
        service().mailboxes().with_cache(handle_, held_->key, [&](const MailboxCache& cache) {
          for (const auto& m : messages_)
            if (!cache.find(m.uid)) {
              expunged = true;
              break;
            }
        });
      if (!expunged) {
        const int64_t known = messages_.empty() ? 0 : messages_.back().uid;
        sync();
        if (!g->fetch.empty())
          for (std::size_t i = 0; i < messages_.size(); ++i) {
            const auto& m = messages_[i];
            if (m.uid <= known) continue;
            std::string items;
            for (const auto& att : g->fetch) {
              items += items.empty() ? "" : " ";
              if (att == "UID") items += "UID " + std::to_string(m.uid);
              else if (att == "FLAGS") items += "FLAGS " + flags_of(m);
              else if (att == "MODSEQ") items += "MODSEQ (" + std::to_string(m.modseq) + ")";
              else if (att == "INTERNALDATE") items += "INTERNALDATE \"" + imap::internal_date_text(m.internal_date) + "\"";
              else if (att == "RFC822.SIZE") items += "RFC822.SIZE " + std::to_string(m.size);
            }
            out_ += "* " + std::to_string(i + 1) + " FETCH (" + items + ")\r\n";
          }
      }
    }
  }

  std::map<std::string, MailboxInfo> now;
  for (auto& box : service().mailboxes().mailboxes(handle_)) now.emplace(box.name, box);
  std::set<std::string> subscribed;
  for (auto& name : service().mailboxes().subscriptions(handle_)) subscribed.insert(name);
  auto& before = notify_->boxes;
  std::map<int64_t, std::string> gone_by_validity;  // a rename keeps its UIDVALIDITY
  for (const auto& [name, box] : before)
    if (!now.count(name)) gone_by_validity.emplace(box.uidvalidity, name);
  std::set<std::string> listed;  // one LIST a name, whatever several events say of it
  const auto list_line = [&](const std::string& name, const std::string& attributes, const std::string& extra = {}) {
    listed.insert(name);
    return "* LIST (" + attributes + ") \"/\" " + mailbox_text(name) + extra + "\r\n";
  };
  for (const auto& [name, box] : now) {
    const auto events = notify_events_for(name);
    const auto old = before.find(name);
    if (old == before.end()) {
      // RFC 5465 5.4 MailboxName: created, or renamed (with OLDNAME).
      const auto renamed = gone_by_validity.find(box.uidvalidity);
      if (renamed != gone_by_validity.end()) {
        if (events.count("MailboxName") || notify_events_for(renamed->second).count("MailboxName"))
          out_ += list_line(name, subscribed.count(name) ? "\\Subscribed" : "",
                            " (\"OLDNAME\" (" + mailbox_text(renamed->second) + "))");
        gone_by_validity.erase(renamed);
      } else if (events.count("MailboxName")) {
        out_ += list_line(name, subscribed.count(name) ? "\\Subscribed" : "");
      }
      continue;
    }
    if (state_ == State::selected && name == mailbox_) continue;  // the selected filter's
    // RFC 5465 5.1-5.3: a STATUS with what moved.
    const auto& was = old->second;
    const bool messages = was.uidnext != box.uidnext || was.messages != box.messages || was.uidvalidity != box.uidvalidity;
    const bool flags = was.unseen != box.unseen || (condstore_ && was.highest_modseq != box.highest_modseq);
    if (events.count("MessageNew") && messages) {
      std::vector<std::string> items = {"UIDVALIDITY", "UIDNEXT", "MESSAGES", "UNSEEN"};
      if (condstore_) items.push_back("HIGHESTMODSEQ");
      out_ += status_line(box, items);
    } else if (events.count("FlagChange") && flags) {
      std::vector<std::string> items = {"UIDVALIDITY", "UNSEEN"};
      if (condstore_) items.push_back("HIGHESTMODSEQ");
      out_ += status_line(box, items);
    }
  }
  for (const auto& [validity, name] : gone_by_validity)
    if (notify_events_for(name).count("MailboxName")) out_ += list_line(name, "\\NonExistent");
  // RFC 5465 5.5 SubscriptionChange: LIST with \Subscribed exactly when it now is.
  std::set<std::string> changed;
  std::set_symmetric_difference(notify_->subscribed.begin(), notify_->subscribed.end(), subscribed.begin(), subscribed.end(),
                                std::inserter(changed, changed.end()));
  for (const auto& name : changed) {
    if (listed.count(name)) continue;
    // Either side's view decides: unsubscribing from a "subscribed" filter is still told.
    if (!notify_events_for(name, subscribed).count("SubscriptionChange") &&
        !notify_events_for(name, notify_->subscribed).count("SubscriptionChange"))
      continue;
    std::string attributes = subscribed.count(name) ? "\\Subscribed" : "";
    if (!now.count(name)) attributes += std::string(attributes.empty() ? "" : " ") + "\\NonExistent";
    out_ += list_line(name, attributes);
  }
  notify_->subscribed = std::move(subscribed);
  notify_->boxes = std::move(now);
  // RFC 5465 5.6-5.7: METADATA naming the entries that changed (removed ones too).
  auto metadata = notify_metadata();
  for (const auto& [name, entries] : metadata) {
    const auto old = notify_->metadata.find(name);
    std::map<std::string, std::string> was, is(entries.begin(), entries.end());
    if (old != notify_->metadata.end()) was.insert(old->second.begin(), old->second.end());
    std::string names;
    for (const auto& [entry, value] : is)
      if (!was.count(entry) || was[entry] != value) names += (names.empty() ? "" : " ") + entry;
    for (const auto& [entry, value] : was)
      if (!is.count(entry)) names += (names.empty() ? "" : " ") + entry;
    if (!names.empty()) out_ += "* METADATA " + (name.empty() ? std::string("\"\"") : mailbox_text(name)) + " " + names + "\r\n";
  }
  notify_->metadata = std::move(metadata);
}

}  // namespace coop::mail::imap_server
