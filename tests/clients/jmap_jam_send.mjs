// jmap-jam (npm) sending through coop's JMAP, as a mail app does: the identity, a draft made
// in Drafts, and in one request its EmailSubmission whose success moves the draft to Sent
// and clears $draft (RFC 8621 7.5). The token: an app password with the mail scope.
// Usage: node jmap_jam_send.mjs SESSION_URL TOKEN USER TO SUBJECT
import JamClient from "jmap-jam";

const [sessionUrl, token, user, to, subject] = process.argv.slice(2);
const jam = new JamClient({ sessionUrl, bearerToken: token });
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
