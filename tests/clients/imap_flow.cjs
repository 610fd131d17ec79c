/* imapflow (npm) against coop-mail: lists the mailboxes, opens INBOX, fetches envelopes and
 * a whole message, idles until a message delivered meanwhile shows up, and moves it.
 *   node imap_flow.cjs PORT USER PASSWORD
 * Prints one JSON line; the test delivers a message over SMTP when it sees "IDLING". */
'use strict';
const { ImapFlow } = require('imapflow');

const [port, user, pass] = [+process.argv[2], process.argv[3], process.argv[4]];
const client = new ImapFlow({
    host: '127.0.0.1', port, secure: true, auth: { user, pass },
    tls: { rejectUnauthorized: false }, logger: false,
});

(async () => {
    await client.connect();
    const list = await client.list();
    const lock = await client.getMailboxLock('INBOX');
    const out = { mailboxes: list.map((m) => [m.path, m.specialUse || null]), subjects: [], idle: false };
    try {
        for await (const m of client.fetch('1:*', { envelope: true, uid: true, flags: true })) {
            out.subjects.push(m.envelope.subject);
        }
        const first = await client.fetchOne('1', { source: true });
        out.firstBytes = first.source.length;
        const existsBefore = client.mailbox.exists;
        const grew = new Promise((resolve) => client.on('exists', (data) => resolve(data.count)));
        console.log('IDLING');
        const idle = client.idle();
        out.existsAfter = await Promise.race([grew, new Promise((_, reject) => setTimeout(() => reject(new Error('no EXISTS within 10 s')), 10000))]);
        out.idle = out.existsAfter === existsBefore + 1;
        await client.messageMove(String(out.existsAfter), 'Archive');
        out.inboxAfterMove = (await client.status('INBOX', { messages: true })).messages;
        out.archive = (await client.status('Archive', { messages: true })).messages;
        void idle;
    } finally {
        lock.release();
    }
    await client.logout();
    console.log(JSON.stringify(out));
    process.exit(0);  // the IDLE deadline's timer would hold the process
})().catch((e) => { console.error(e); process.exit(1); });
