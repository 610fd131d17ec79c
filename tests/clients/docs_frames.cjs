/* Bad input to coop-docs over raw WebSockets: malformed commands get errors and the session
 * goes on; a frame that is not JSON or a message over the size limit ends only that
 * connection; another client keeps working throughout.
 *
 *   node docs_frames.cjs ws://127.0.0.1:PORT/cryptpad_websocket
 */
'use strict';
const WebSocket = require('ws');

const url = process.argv[2];
const failures = [];
const check = (ok, what) => { console.log((ok ? 'ok   ' : 'FAIL ') + what); if (!ok) { failures.push(what); } };

// A raw Netflux connection: resolves with helpers once IDENT arrived.
const open = () => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const inbox = [];
    const waiters = [];
    let closed = null;
    ws.on('message', (data) => {
        const frame = JSON.parse(String(data));
        if (frame[2] === 'IDENT') {
            return resolve({
                id: frame[3], ws,
                send: (f) => ws.send(typeof f === 'string' ? f : JSON.stringify(f)),
                next: (pred, ms = 5000) => new Promise((res, rej) => {
                    const i = inbox.findIndex(pred);
                    if (i >= 0) { return res(inbox.splice(i, 1)[0]); }
                    const t = setTimeout(() => rej(new Error('timeout')), ms);
                    waiters.push({ pred, res: (f) => { clearTimeout(t); res(f); } });
                }),
                closed: () => new Promise((res) => { if (closed) { return res(closed); } ws.on('close', (code) => res({ code })); }),
            });
        }
        const w = waiters.findIndex((x) => x.pred(frame));
        if (w >= 0) { return waiters.splice(w, 1)[0].res(frame); }
        inbox.push(frame);
    });
    ws.on('close', (code) => { closed = { code }; });
    ws.on('error', reject);
});

(async () => {
    const good = await open();
    const bad = await open();
    check(/^[0-9a-f]{32}$/.test(good.id), 'IDENT gives a 32-hex user id');

    bad.send([1, 'BOGUS']);
    let f = await bad.next((x) => x[0] === 1);
    check(f[1] === 'ERROR' && f[2] === 'EINVAL', 'an unknown command gets ERROR EINVAL');
    bad.send([2, 'JOIN', 'not-a-channel']);
    f = await bad.next((x) => x[0] === 2);
    check(f[1] === 'ERROR', 'a JOIN of a malformed channel id gets ERROR');
    bad.send([3, 'MSG']);
    f = await bad.next((x) => x[0] === 3);
    check(f[1] === 'ERROR', 'a MSG without a target gets ERROR');
    bad.send([4, 'MSG', 'ffffffffffffffffffffffffffffffff', 'x']);
    f = await bad.next((x) => x[0] === 4);
    check(f[1] === 'ERROR' && f[2] === 'enoent', 'a MSG to nowhere gets enoent');
    bad.send([5, 'LEAVE', 'ffffffffffffffffffffffffffffffff']);
    f = await bad.next((x) => x[0] === 5);
    check(f[1] === 'ERROR' && f[2] === 'ENOENT', 'a LEAVE of an unknown channel gets ENOENT');
    bad.send({ not: 'an array' });
    bad.send([6, 'PING']);
    f = await bad.next((x) => x[0] === 6);
    check(f[1] === 'ACK', 'the session goes on after malformed commands (PING answered)');

    // Two members of one channel: a message reaches the other, not the sender, after its ACK.
    const channel = 'ab'.repeat(16);
    good.send([1, 'JOIN', channel]);
    f = await good.next((x) => x[0] === 1);
    check(f[1] === 'JACK' && f[2] === channel, 'JOIN answered with JACK');
    const hkJoin = await good.next((x) => x[2] === 'JOIN' && x[1].length === 16);
    check(Boolean(hkJoin), 'the history keeper (16-hex id) is announced on JOIN');
    await good.next((x) => x[2] === 'JOIN' && x[1] === good.id);
    bad.send([7, 'JOIN', channel]);
    await bad.next((x) => x[0] === 7);
    await good.next((x) => x[2] === 'JOIN' && x[1] === bad.id);
    bad.send([8, 'JOIN', channel]);
    f = await bad.next((x) => x[0] === 8);
    check(f[1] === 'ERROR' && f[2] === 'EJOINED', 'a second JOIN gets EJOINED');
    good.send([2, 'MSG', channel, 'opaque-ciphertext']);
    f = await bad.next((x) => x[2] === 'MSG' && x[3] === channel);
    check(f[4] === 'opaque-ciphertext' && f[1] === good.id && typeof f[5] === 'number', 'a channel message is relayed with its time');
    f = await good.next((x) => x[0] === 2);
    check(f[1] === 'ACK', 'the sender gets ACK');

    // Oversized and non-JSON frames end only the sender's connection.
    bad.send('x'.repeat(2 * 1024 * 1024));
    let c = await bad.closed();
    check(c.code === 1009 || c.code === 1006, 'a 2 MB frame closes that connection (' + c.code + ')');
    const left = await good.next((x) => x[2] === 'LEAVE' && x[1] === bad.id);
    check(Boolean(left), 'its channels hear LEAVE');
    const third = await open();
    third.send('this is not json');
    c = await third.closed();
    check(c.code === 1008, 'a frame that is not JSON closes that connection (' + c.code + ')');
    good.send([3, 'PING']);
    f = await good.next((x) => x[0] === 3);
    check(f[1] === 'ACK', 'the other client still works');
    good.ws.close();
    console.log(failures.length ? 'RESULT: FAIL' : 'RESULT: PASS');
    process.exit(failures.length ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
