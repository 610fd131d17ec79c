// jmap-jam (npm) sending through coop's JMAP, as a mail app does: the identity, a draft made
// in Drafts, and in one request its EmailSubmission whose success moves the draft to Sent
// and clears $draft (RFC 8621 7.5). Credentials as in jmap_jam.mjs.
// Usage: node jmap_jam_send.mjs SESSION_URL USER PASSWORD TO SUBJECT [TOKEN]
import JamClient from "jmap-jam";

const [sessionUrl, user, password, to, subject, token] = process.argv.slice(2);
if (!token) {
  const basic = "Basic " + Buffer.from(`${user}:${password}`).toString("base64");
  const realFetch = globalThis.fetch;
  globalThis.fetch = (url, init = {}) => {
    const headers = new Headers(init.headers || {});
    headers.set("Authorization", basic);
    return realFetch(url, { ...init, headers });
  };
}

const jam = new JamClient({ sessionUrl, bearerToken: token || "unused" });
const accountId = await jam.getPrimaryAccount();
const [mailboxes] = await jam.api.Mailbox.get({ accountId });
const drafts = mailboxes.list.find((m) => m.role === "drafts");
const sent = mailboxes.list.find((m) => m.role === "sent");
const [identities] = await jam.api.Identity.get({ accountId });
const identity = identities.list.find((i) => i.email.startsWith(user + "@"));
const [result, meta] = await jam.requestMany((t) => {
  const draft = t.Email.set({
    accountId,
    create: {
      draft: {
        mailboxIds: { [drafts.id]: true },
        keywords: { $draft: true, $seen: true },
        from: [{ name: identity.name, email: identity.email }],
        to: [{ email: to }],
        subject,
        bodyValues: { body: { value: "Sent from jmap-jam through coop.\n" } },
        textBody: [{ partId: "body", type: "text/plain" }],
      },
    },
  });
  const send = t.EmailSubmission.set({
    accountId,
    create: { send: { identityId: identity.id, emailId: "#draft" } },
    onSuccessUpdateEmail: { "#send": { [`mailboxIds/${drafts.id}`]: null, [`mailboxIds/${sent.id}`]: true, "keywords/$draft": null } },
  });
  return { draft, send };
});
// jmap-jam keys its results by method call id, so the implicit Email/set (same id, after
// the EmailSubmission/set) is what "send" holds: the draft it moved.
console.log(JSON.stringify({
  identity: identity.email,
  created: Object.keys(result.draft.created || {}),
  draftId: result.draft.created?.draft?.id,
  moved: Object.keys(result.send.updated || {}),
  sessionState: meta.sessionState,
}));
