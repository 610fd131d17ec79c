// RFC 5256 SORT keys and THREAD algorithms (ORDEREDSUBJECT, REFERENCES).
#include "workers/mail/imap_thread.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>

#include "common/text.h"

namespace coop::mail::imap {

namespace {

// A container of THREAD=REFERENCES (RFC 5256 3 step 1).
struct Node {
  std::optional<std::size_t> message;  // index into the caller's list; none for a dummy
  Node* parent = nullptr;
  std::vector<Node*> children;
  int64_t date = 0;
};

}  // namespace

int casemap_compare(std::string_view a, std::string_view b) {
  auto folded = [](char c) { return static_cast<unsigned char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c); };
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (folded(a[i]) != folded(b[i])) return folded(a[i]) < folded(b[i]) ? -1 : 1;
  return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
}

std::string base_subject(std::string subject, bool* reply) {
  bool marked = false;
  std::string text;
  for (char ch : subject) {
    const char c = (ch == '\t' || ch == '\r' || ch == '\n') ? ' ' : ch;
    if (c == ' ' && (text.empty() || text.back() == ' ')) continue;
    text += c;
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  for (bool changed = true; changed;) {
    changed = false;
    const std::string lower = ascii_lower(text);
    if (lower.size() >= 5 && lower.compare(lower.size() - 5, 5, "(fwd)") == 0) {
      text.resize(text.size() - 5);
      while (!text.empty() && text.back() == ' ') text.pop_back();
      changed = marked = true;
      continue;
    }
    // 2.1 step 5: "[fwd:" subject "]" is the subject.
    if (lower.size() > 6 && lower.rfind("[fwd:", 0) == 0 && lower.back() == ']') {
      text = text.substr(5, text.size() - 6);
      while (!text.empty() && text.front() == ' ') text.erase(0, 1);
      while (!text.empty() && text.back() == ' ') text.pop_back();
      changed = marked = true;
      continue;
    }
    std::size_t at = 0;
    auto skip_blob = [&](std::size_t from) {
      if (from < text.size() && text[from] == '[') {
        const auto close = text.find(']', from);
        if (close != std::string::npos) return close + 1;
      }
      return from;
    };
    for (const char* prefix : {"re", "fwd", "fw"})
      if (lower.rfind(prefix, 0) == 0) {
        std::size_t after = std::strlen(prefix);
        while (after < text.size() && text[after] == ' ') ++after;
        after = skip_blob(after);
        if (after < text.size() && text[after] == ':') {
          at = after + 1;
          marked = true;
          break;
        }
      }
    if (at == 0 && !text.empty() && text[0] == '[') {
      const auto after = skip_blob(0);
      if (after > 0 && after < text.size()) at = after;  // a leading [blob] unless it is all there is
    }
    if (at > 0) {
      text = text.substr(at);
      while (!text.empty() && text.front() == ' ') text.erase(0, 1);
      changed = true;
    }
  }
  if (reply) *reply = marked;
  return ascii_lower(text);
}


namespace {

// An RFC 5322 date-time as written ("Tue, 2 Feb 2027 23:30:00 -0800"): its day as a struct tm
// (time of day included) and its zone's offset from UTC in seconds.
struct DateParts {
  struct tm tm {};
  int zone_seconds = 0;
};

std::optional<DateParts> date_parts(const std::string& text) {
  static const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  const auto comma = text.find(',');
  const std::string rest = comma == std::string::npos ? text : text.substr(comma + 1);
  int day = 0, year = 0, h = 0, m = 0, sec = 0;
  char month[4] = {}, zone[8] = {};
  int used = 0;
  if (std::sscanf(rest.c_str(), " %d %3s %d %d:%d%n", &day, month, &year, &h, &m, &used) < 5) return std::nullopt;
  // Seconds are optional (RFC 5322 3.3); the zone follows either way.
  const char* after = rest.c_str() + used;
  if (int more = 0; std::sscanf(after, ":%d%n", &sec, &more) == 1) after += more;
  std::sscanf(after, " %7s", zone);
  int mon = -1;
  for (int i = 0; i < 12; ++i)
    if (ascii_lower(month) == kMonths[i]) mon = i;
  if (mon < 0) return std::nullopt;
  if (year < 100) year += year < 50 ? 2000 : 1900;
  DateParts parts;
  parts.tm.tm_mday = day;
  parts.tm.tm_mon = mon;
  parts.tm.tm_year = year - 1900;
  parts.tm.tm_hour = h;
  parts.tm.tm_min = m;
  parts.tm.tm_sec = sec;
  if ((zone[0] == '+' || zone[0] == '-') && std::strlen(zone) == 5) {
    const int offset = std::atoi(zone + 1);
    parts.zone_seconds = (zone[0] == '+' ? 1 : -1) * ((offset / 100) * 3600 + (offset % 100) * 60);
  }
  return parts;
}

}  // namespace

std::optional<int64_t> sent_date(const std::string& text) {
  auto parts = date_parts(text);
  if (!parts) return std::nullopt;
  return static_cast<int64_t>(timegm(&parts->tm)) - parts->zone_seconds;
}

std::optional<int64_t> sent_day(const std::string& text) {
  auto parts = date_parts(text);
  if (!parts) return std::nullopt;
  parts->tm.tm_hour = parts->tm.tm_min = parts->tm.tm_sec = 0;  // the day as written
  return static_cast<int64_t>(timegm(&parts->tm));
}

std::vector<std::string> message_ids(const std::string& text) {
  std::vector<std::string> ids;
  for (std::size_t at = text.find('<'); at != std::string::npos; at = text.find('<', at + 1)) {
    const auto end = text.find('>', at);
    if (end == std::string::npos) break;
    ids.push_back(text.substr(at + 1, end - at - 1));
  }
  return ids;
}


std::string thread_ordered_subject(const std::vector<SortKeys>& keys, const std::function<std::string(std::size_t)>& name) {
  // Grouped by base subject, each group in sent order, the first the parent of the others;
  // groups in the order of their first messages.
  std::vector<std::size_t> chosen(keys.size());
  for (std::size_t i = 0; i < chosen.size(); ++i) chosen[i] = i;
  std::stable_sort(chosen.begin(), chosen.end(), [&](std::size_t a, std::size_t b) {
    if (const int by = casemap_compare(keys[a].subject, keys[b].subject)) return by < 0;
    if (keys[a].date != keys[b].date) return keys[a].date < keys[b].date;
    return a < b;
  });
  std::vector<std::vector<std::size_t>> threads;
  for (auto i : chosen) {
    if (threads.empty() || keys[threads.back().front()].subject != keys[i].subject) threads.emplace_back();
    threads.back().push_back(i);
  }
  std::stable_sort(threads.begin(), threads.end(), [&](const auto& x, const auto& y) {
    return keys[x.front()].date != keys[y.front()].date ? keys[x.front()].date < keys[y.front()].date : x.front() < y.front();
  });
  std::string line;
  for (const auto& t : threads) {
    line += "(" + name(t.front());
    if (t.size() == 2) {
      line += " " + name(t[1]);
    } else if (t.size() > 2) {
      line += " ";
      for (std::size_t j = 1; j < t.size(); ++j) line += "(" + name(t[j]) + ")";
    }
    line += ")";
  }
  return line;
}

// RFC 5256 THREAD=REFERENCES: messages linked by Message-ID, References and In-Reply-To,
// empty containers pruned, roots with one base subject gathered, siblings in sent order.
std::string thread_references(const std::vector<SortKeys>& keys, const std::function<std::string(std::size_t)>& name) {
  std::deque<Node> nodes;
  std::unordered_map<std::string, Node*> by_id;
  auto container = [&](const std::string& id) {
    auto& slot = by_id[id];
    if (!slot) slot = &nodes.emplace_back();
    return slot;
  };
  auto descends = [](Node* node, Node* ancestor) {
    for (Node* p = node; p; p = p->parent)
      if (p == ancestor) return true;
    return false;
  };
  auto link = [&](Node* parent, Node* child) {
    if (child->parent == parent || descends(parent, child)) return;
    if (child->parent) {
      auto& siblings = child->parent->children;
      siblings.erase(std::remove(siblings.begin(), siblings.end(), child), siblings.end());
    }
    child->parent = parent;
    parent->children.push_back(child);
  };
  for (std::size_t i = 0; i < keys.size(); ++i) {
    // Step 1: the message's own id; one without an id, or repeating one, gets a container
    // that no id can name (a made-up id could be some other message's real one, and that
    // message would then go missing from the answer: found by fuzz_imap_search).
    const std::string& id = keys[i].message_id;
    const bool nameless = id.empty() || (by_id.count(id) && by_id[id]->message);
    Node* node = nameless ? &nodes.emplace_back() : container(id);
    node->message = i;
    node->date = keys[i].date;
    const auto& references = keys[i].references;
    // Step 1A: each reference the parent of the next, unless one already has a parent.
    for (std::size_t r = 0; r + 1 < references.size(); ++r) {
      Node* parent = container(references[r]);
      Node* child = container(references[r + 1]);
      if (!child->parent && child != parent) link(parent, child);
    }
    // Step 1B: the last reference is the message's parent. A parent that earlier messages'
    // references gave it goes first (a truncated References, says the RFC); the new link is
    // made unless it would close a loop (a message referring to itself, or to a reply of its
    // own), and then the message is a root. No references: a root too.
    Node* parent = references.empty() ? nullptr : container(references.back());
    if (node->parent != parent) {
      if (node->parent) {
        auto& siblings = node->parent->children;
        siblings.erase(std::remove(siblings.begin(), siblings.end(), node), siblings.end());
        node->parent = nullptr;
      }
      if (parent && parent != node) link(parent, node);
    }
  }
  std::vector<Node*> roots;
  for (auto& n : nodes)
    if (!n.parent && (n.message || !n.children.empty())) roots.push_back(&n);
  // Step 4: prune empty containers, promoting their children (at the root, only one).
  std::function<std::vector<Node*>(Node*, bool)> prune = [&](Node* node, bool at_root) -> std::vector<Node*> {
    std::vector<Node*> kept;
    for (Node* child : node->children)
      for (Node* k : prune(child, false)) kept.push_back(k);
    node->children = kept;
    for (Node* k : kept) k->parent = node;
    if (node->message) return {node};
    if (kept.empty()) return {};
    if (!at_root || kept.size() == 1) {
      for (Node* k : kept) k->parent = nullptr;
      return kept;
    }
    return {node};
  };
  std::vector<Node*> pruned;
  for (Node* root : roots)
    for (Node* k : prune(root, true)) pruned.push_back(k);
  // Step 5: threads whose subjects have the same base subject become one. (B) one root per
  // subject: a dummy before a message, an original before a reply or forward.
  auto keys_of_root = [&](Node* n) -> const SortKeys* {
    Node* m = n->message ? n : (n->children.empty() ? nullptr : n->children.front());
    return m && m->message ? &keys[*m->message] : nullptr;
  };
  std::unordered_map<std::string, Node*> table;
  for (Node* n : pruned) {
    const SortKeys* k = keys_of_root(n);
    if (!k || k->subject.empty()) continue;
    const auto [it, added] = table.emplace(k->subject, n);
    Node* had = it->second;
    if (!added && had->message && (!n->message || (keys[*had->message].reply && !k->reply))) it->second = n;
  }
  // (C) the others join it: a dummy's children become siblings, a message under a dummy or a
  // reply under an original becomes a child, otherwise a new dummy holds both.
  std::set<Node*> gone;
  std::vector<Node*> roots_now = pruned;
  auto adopt = [](Node* parent, Node* child) {
    child->parent = parent;
    parent->children.push_back(child);
  };
  for (Node* n : pruned) {
    const SortKeys* k = keys_of_root(n);
    if (!k || k->subject.empty()) continue;
    Node*& had = table[k->subject];
    if (had == n) continue;
    if (!had->message && !n->message) {
      for (Node* child : n->children) adopt(had, child);
      n->children.clear();
      gone.insert(n);
    } else if (!had->message || (k->reply && !keys[*had->message].reply)) {
      adopt(had, n);
    } else {
      Node* dummy = &nodes.emplace_back();
      adopt(dummy, had);
      adopt(dummy, n);
      roots_now.push_back(dummy);
      had = dummy;
    }
  }
  Node top;  // the root of step 2, to sort its children with everything else
  for (Node* n : roots_now)
    if (!n->parent && !gone.count(n)) top.children.push_back(n);
  // Step 6: every set of siblings in sent order, the deepest first; a dummy dates from its
  // first child.
  std::function<void(Node*)> order = [&](Node* node) {
    for (Node* child : node->children) order(child);
    std::stable_sort(node->children.begin(), node->children.end(), [](Node* a, Node* b) { return a->date < b->date; });
    if (!node->message && !node->children.empty()) node->date = node->children.front()->date;
  };
  order(&top);
  const std::vector<Node*>& threads = top.children;
  // RFC 5256 4: a single child continues the list; several are each parenthesized. Written
  // into one string: a long chain of replies is not copied at every level.
  std::string line;
  std::function<void(Node*)> render = [&](Node* node) {
    if (node->message) line += name(*node->message);
    if (node->children.empty()) return;
    if (node->message) line += ' ';
    if (node->children.size() == 1) return render(node->children.front());
    for (Node* child : node->children) {
      line += '(';
      render(child);
      line += ')';
    }
  };
  for (Node* t : threads) {
    line += '(';
    render(t);
    line += ')';
  }
  return line;
}


}  // namespace coop::mail::imap
