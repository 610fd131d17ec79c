// Push rule evaluation against the spec's predefined rules and conditions.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

#include "workers/room/push_rules.h"

using coop::room::PushContext;
using nlohmann::json;

namespace {

const std::string kMe = "@alice:example.org";

json message(const std::string& body, const std::string& sender = "@bob:example.org") {
  return {{"type", "m.room.message"}, {"sender", sender}, {"room_id", "!r:example.org"},
          {"content", {{"msgtype", "m.text"}, {"body", body}}}};
}

coop::room::PushActions evaluate(const json& event, int64_t members = 3, bool sender_may_notify = true,
                                 const json& rules = coop::room::default_push_rules(kMe)) {
  PushContext context;
  context.user_id = kMe;
  context.display_name = "Alice Liddell";
  context.member_count = members;
  context.sender_may_notify = [sender_may_notify](const std::string&) { return sender_may_notify; };
  return coop::room::evaluate_push_rules(rules, event, context);
}

}  // namespace

TEST_CASE("glob patterns match whole values, or whole words in a body") {
  using coop::room::glob_matches;
  CHECK(glob_matches("m.notice", "m.notice", false));
  CHECK_FALSE(glob_matches("m.notice", "m.notices", false));
  CHECK(glob_matches("m.*", "m.anything", false));
  CHECK(glob_matches("c?t", "CAT", false));
  CHECK(glob_matches("alice", "hello Alice!", true));
  CHECK_FALSE(glob_matches("alice", "malice aforethought", true));
  CHECK(glob_matches("ali*", "ask alison now", true));
  CHECK(glob_matches("@room", "hey @room listen", true));
  CHECK_FALSE(glob_matches("", "x", false));
  // A pattern made to backtrack finishes at once.
  CHECK_FALSE(glob_matches(std::string(100, '*') + "b", std::string(4000, 'a'), true));
}

TEST_CASE("the predefined rules: messages notify, mentions highlight, notices and edits do not") {
  auto plain = evaluate(message("lunch at noon"));
  CHECK(plain.notify);
  CHECK_FALSE(plain.highlight);
  CHECK(evaluate(message("lunch", "@bob:example.org"), 2).sound == "default");  // one-to-one
  CHECK(evaluate(message("are you there, alice?")).highlight);                // user name
  CHECK(evaluate(message("ask Alice Liddell")).highlight);                     // display name
  auto notice = message("bot says");
  notice["content"]["msgtype"] = "m.notice";
  CHECK_FALSE(evaluate(notice).notify);
  auto edit = message("* fixed");
  edit["content"]["m.relates_to"] = {{"rel_type", "m.replace"}, {"event_id", "$x"}};
  CHECK_FALSE(evaluate(edit).notify);
  // Intentional mentions: m.mentions decides; the legacy body rules step aside.
  auto mention = message("hi");
  mention["content"]["m.mentions"] = {{"user_ids", {kMe}}};
  CHECK(evaluate(mention).highlight);
  auto not_me = message("alice is away");
  not_me["content"]["m.mentions"] = json::object();
  CHECK_FALSE(evaluate(not_me).highlight);
  // @room needs the sender's power to notify the room.
  CHECK(evaluate(message("@room meeting now")).highlight);
  CHECK_FALSE(evaluate(message("@room meeting now"), 3, false).highlight);
  // Membership is quiet, except an invitation to the member.
  json join = {{"type", "m.room.member"}, {"state_key", "@bob:example.org"}, {"sender", "@bob:example.org"},
               {"content", {{"membership", "join"}}}};
  CHECK_FALSE(evaluate(join).notify);
  json invite = {{"type", "m.room.member"}, {"state_key", kMe}, {"sender", "@bob:example.org"},
                 {"content", {{"membership", "invite"}}}};
  CHECK(evaluate(invite).notify);
  json encrypted = {{"type", "m.room.encrypted"}, {"sender", "@bob:example.org"}, {"content", {{"ciphertext", "x"}}}};
  CHECK(evaluate(encrypted).notify);
  CHECK_FALSE(evaluate(json{{"type", "m.reaction"}, {"sender", "@bob:example.org"}, {"content", json::object()}}).notify);
}

TEST_CASE("a member's own rules and edits to defaults come first, the master rule first of all") {
  json stored = {{"override", json::array({{{"rule_id", "mute-bob"}, {"default", false}, {"enabled", true},
                                            {"conditions", json::array({{{"kind", "event_match"}, {"key", "sender"},
                                                                         {"pattern", "@bob:example.org"}}})},
                                            {"actions", json::array()}}})},
                 {"underride", json::array({{{"rule_id", ".m.rule.message"}, {"enabled", false}}})}};
  const auto rules = coop::room::complete_push_rules(stored, kMe);
  CHECK(rules["override"][0]["rule_id"] == ".m.rule.master");
  CHECK(rules["override"][1]["rule_id"] == "mute-bob");
  CHECK_FALSE(evaluate(message("alice!"), 3, true, rules).notify);
  CHECK_FALSE(evaluate(message("hello", "@carol:example.org"), 3, true, rules).notify);  // .m.rule.message off
  auto master = coop::room::complete_push_rules(json{{"override", json::array({{{"rule_id", ".m.rule.master"},
                                                                                 {"enabled", true}}})}},
                                                kMe);
  CHECK_FALSE(evaluate(message("alice!"), 3, true, master).notify);
  // Dotted keys with escaped dots, and conditions of unknown kinds never match.
  json custom = coop::room::default_push_rules(kMe);
  custom["override"].insert(custom["override"].begin() + 1,
                            json{{"rule_id", "x"}, {"enabled", true}, {"actions", json::array({"notify"})},
                                 {"conditions", json::array({{{"kind", "event_property_is"},
                                                              {"key", "content.org\\.example\\.flag"}, {"value", true}}})}});
  auto flagged = message("quiet");
  flagged["content"]["org.example.flag"] = true;
  flagged["content"]["msgtype"] = "m.notice";
  CHECK(evaluate(flagged, 3, true, custom).notify);
  custom["override"][1]["conditions"].push_back({{"kind", "org.example.unknown"}});
  CHECK_FALSE(evaluate(flagged, 3, true, custom).notify);
}
