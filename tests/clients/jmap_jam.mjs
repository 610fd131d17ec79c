// jmap-jam (npm) against coop's JMAP: reads the mailboxes, searches, reads a message with its
// text, flags it and moves it, the way a script would. jmap-jam speaks Bearer tokens: the
// token is an app password with the mail scope, from the member portal or
// `coop member app-password add`. Nothing of the client is changed.
// Usage: node jmap_jam.mjs SESSION_URL TOKEN SUBJECT_WORD TARGET_ROLE
import JamClient from "jmap-jam";

const [sessionUrl, token, word, targetRole] = process.argv.slice(2);
const jam = new JamClient({ sessionUrl, bearerToken: token });
const accountId = await jam.getPrimaryAccount();
const [mailboxes] = await jam.api.Mailbox.get({ accountId });
const inbox = mailboxes.list.find((m) => m.role === "inbox");
const target = mailboxes.list.find((m) => m.role === targetRole);
const [{ emails }] = await jam.requestMany((t) => {
  const ids = t.Email.query({ accountId, filter: { inMailbox: inbox.id, text: word }, sort: [{ property: "receivedAt", isAscending: false }] });
  const emails = t.Email.get({ accountId, ids: ids.$ref("/ids"), properties: ["id", "subject", "from", "textBody", "bodyValues", "keywords"], fetchTextBodyValues: true });
  return { ids, emails };
});
const email = emails.list[0];
const text = Object.values(email.bodyValues)[0].value;
const [flagged] = await jam.api.Email.set({ accountId, update: { [email.id]: { "keywords/$flagged": true, "keywords/$seen": true } } });
const [moved] = await jam.api.Email.set({ accountId, update: { [email.id]: { mailboxIds: { [target.id]: true } } } });
console.log(JSON.stringify({
  accountId,
  roles: mailboxes.list.map((m) => m.role).filter(Boolean).sort(),
  found: emails.list.length,
  subject: email.subject,
  from: email.from[0].email,
  text,
  flagged: Object.keys(flagged.updated || {}),
  moved: Object.keys(moved.updated || {}),
}));
