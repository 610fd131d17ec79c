/* Two (then three) chainpad-netflux clients edit one pad through coop-docs, then an
 * independent reader decrypts the history the way a libsodium implementation does and
 * replays it into ChainPad; a wrong key must read nothing.
 *
 *   node docs_scenario.cjs ws://127.0.0.1:PORT/cryptpad_websocket [TEXT_FILE]
 *   ROUNDS=80 MODE=v2|legacy EDIT_KEY=<24-char edit key> node docs_scenario.cjs URL
 *
 * Exit code 0 when every check passes; TEXT_FILE gets the converged plaintext, so the test
 * can look for it on the server's disk (it must not be there).
 * The npm packages are CommonJS; Node 20 has no global WebSocket, so `ws` is injected.
 */
'use strict';
const WebSocket = require('ws');
const Netflux = require('netflux-websocket');
const CPNF = require('chainpad-netflux');
const ChainPad = require('chainpad');
const Crypto = require('chainpad-crypto');
const Nacl = require('tweetnacl/nacl-fast');
const NaclUtil = require('tweetnacl-util');

const MODE = process.env.MODE || 'v2';          // v2 = CryptPad /2/ signed pads; legacy = createEncryptor(string)
const ROUNDS = +(process.env.ROUNDS || 150);     // each client makes ROUNDS edits -> >150 patches -> several checkpoints
const fs = require('fs');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- keys
const b64Decode = (s) => { s = s.replace(/-/g, '/'); if (s.length % 4) { s += '='.repeat(4 - s.length % 4); } return NaclUtil.decodeBase64(s); };
const toHex = (u8) => Buffer.from(u8).toString('hex');

let keys, channel, cryptor, validateKey, editKeyStr;
if (MODE === 'v2') {
    keys = Crypto.createEditCryptor2(process.env.EDIT_KEY);   // random 18-byte seed if undefined
    editKeyStr = keys.editKeyStr;
    channel = toHex(b64Decode(keys.chanId));                  // CryptPad: Hash.base64ToHex(keys.chanId) -> 32 hex chars
    cryptor = Crypto.createEncryptor(keys);                   // signs with keys.signKey
    validateKey = keys.validateKey;
} else {
    editKeyStr = process.env.EDIT_KEY || Crypto.genKey();     // 24-char std base64 of 18 random bytes
    cryptor = Crypto.createEncryptor(editKeyStr);             // secretbox only, no signatures
    channel = toHex(Nacl.randomBytes(16));                    // legacy: channel chosen by the app
    validateKey = undefined;
}

// -------------------------------------------------------------- client
const makeClient = (name, url, initialText) => new Promise((resolve, reject) => {
    const stats = { history: 0, historyCp: 0, live: 0 };
    const network = Netflux.connect(url, (u) => new WebSocket(u));
    let nwRef = null;
    network.then((nw) => { nwRef = nw; });
    const cfg = {
        network,                       // a promise is accepted (chainpad-netflux joinSession)
        channel,
        crypto: cryptor,
        validateKey,                   // -> metadata.validateKey, sent with GET_HISTORY
        ChainPad,
        userName: name,
        initialState: '',
        avgSyncMilliseconds: 20,
        logLevel: 0,
        onMessage: (msg, peer, vKey, isCp) => {
            if (nwRef && peer === nwRef.historyKeeper) { stats.history++; if (isCp) { stats.historyCp++; } } else { stats.live++; }
        },
        onReady: (info) => {
            const rt = info.realtime;
            if (initialText && rt.getUserDoc() === '') { rt.contentUpdate(initialText); }
            resolve({ name, rt, info, stats, stop: () => { out.stop(); info.network.disconnect(); } });
        },
        onError: (e) => reject(new Error(name + ' onError ' + JSON.stringify(e))),
        onChannelError: (e) => reject(new Error(name + ' onChannelError ' + JSON.stringify(e))),
    };
    const out = CPNF.start(cfg);
});

const waitConverged = async (clients, timeoutMs) => {
    const t0 = Date.now();
    let stableSince = 0;
    while (Date.now() - t0 < timeoutMs) {
        const docs = clients.map((c) => c.rt.getUserDoc());
        const auth = clients.map((c) => c.rt.getAuthDoc());
        const pending = clients.some((c) => c.rt.getLag().pending);
        const same = docs.every((d) => d === docs[0]) && auth.every((d, i) => d === docs[i]);
        if (same && !pending) { if (!stableSince) { stableSince = Date.now(); } if (Date.now() - stableSince > 500) { return true; } }
        else { stableSince = 0; }
        await sleep(50);
    }
    return false;
};

// ---------------------------------------------------- raw "CLI" reader
// Decrypts like a libsodium implementation would, without chainpad-crypto.
const rawDecrypt = (content, cryptKey, vKey, verify) => {
    const isCp = /^cp\|/.test(content);
    let s = content.replace(/^cp\|([A-Za-z0-9+\/=]{0,20}\|)?/, '');       // chainpad-netflux removeCp
    if (MODE === 'v2') {
        const signed = NaclUtil.decodeBase64(s);                              // 64-byte ed25519 sig || inner
        let inner;
        if (verify) { inner = Nacl.sign.open(signed, NaclUtil.decodeBase64(vKey)); if (!inner) { throw new Error('bad sig'); } }
        else { inner = signed.subarray(64); }
        s = Buffer.from(inner).toString('utf8');                               // "<b64 nonce>|<b64 box>"
    }
    const [n64, b64] = s.split('|');
    const plain = Nacl.secretbox.open(NaclUtil.decodeBase64(b64), NaclUtil.decodeBase64(n64), cryptKey); // box = MAC(16)||ct
    if (!plain) { throw new Error('secretbox open failed'); }
    return { isCp, text: Buffer.from(plain).toString('utf8').replace(/^\d+:/, '') };
};

const rawRead = (url) => new Promise((resolve, reject) => {
    // CryptPad v2: cryptKey = SHA512(SHA512(seed18)[32:64])[16:48]; legacy: SHA512(b64dec(key))[0:32]
    const cryptKey = MODE === 'v2'
        ? Nacl.hash(Nacl.hash(b64Decode(editKeyStr)).subarray(32, 64)).subarray(16, 48)
        : Nacl.hash(NaclUtil.decodeBase64(editKeyStr)).subarray(0, 32);
    const ws = new WebSocket(url);
    let seq = 1, hk = null, myId = null;
    const txid = 4242;
    const lines = [];
    ws.on('message', (data) => {
        const m = JSON.parse(String(data));
        if (m[0] === 0 && m[2] === 'IDENT') { myId = m[3]; return void ws.send(JSON.stringify([seq++, 'JOIN', channel])); }
        if (m[0] === 0 && m[2] === 'JOIN' && m[1].length === 16) { hk = m[1]; return; }
        if (m[0] === 0 && m[2] === 'JOIN' && m[1] === myId) {
            return void ws.send(JSON.stringify([seq++, 'MSG', hk, JSON.stringify(['GET_HISTORY', channel, { txid, metadata: { validateKey } }])]));
        }
        if (m[0] === 0 && m[2] === 'MSG' && m[1] === hk && m[3] === myId) {
            const p = JSON.parse(m[4]);
            if (Array.isArray(p)) { if (p[0] === txid && p[3] === channel) { lines.push(p); } return; }
            if (p.state === 1 && p.channel === channel) { ws.close(); resolve({ lines, cryptKey }); }
            if (p.error) { ws.close(); reject(new Error(p.error)); }
        }
    });
    ws.on('error', reject);
});

// ------------------------------------------------------------------ main
(async () => {
    const url = process.argv[2];
    const textFile = process.argv[3];
    if (!url) { console.error('usage: node docs_scenario.cjs WS_URL [TEXT_FILE]'); process.exit(2); }
    console.log('mode', MODE, 'url', url);
    console.log('channel', channel, 'validateKey', validateKey);

    const A = await makeClient('alice', url, 'Hello from Alice.\n');
    const B = await makeClient('bob', url);
    console.log('A userList', A.info.userList.users.length);

    // Concurrent edits: each client inserts a token at a random position on every round.
    for (let i = 0; i < ROUNDS; i++) {
        for (const c of [A, B]) {
            const doc = c.rt.getUserDoc();
            const pos = Math.floor(Math.random() * (doc.length + 1));
            c.rt.contentUpdate(doc.slice(0, pos) + `[${c.name[0]}${i}]` + doc.slice(pos));
        }
        await sleep(15 + Math.random() * 30);
    }
    const ok = await waitConverged([A, B], 30000);
    const text = A.rt.getUserDoc();
    // Only insertions were made: nothing typed may be lost, so the text holds at least the
    // initial characters and every token's. (ChainPad merges concurrent whole-document diffs;
    // under network jitter it can repeat a few characters of a concurrent insert, with
    // CryptPad's own server as well, so an excess is reported, not failed.)
    let expected = 'Hello from Alice.\n';
    for (let i = 0; i < ROUNDS; i++) { expected += `[a${i}][b${i}]`; }
    const counts = (x) => { const m = new Map(); for (const ch of x) { m.set(ch, (m.get(ch) || 0) + 1); } return m; };
    const have = counts(text);
    let lost = 0;
    for (const [ch, n] of counts(expected)) { lost += Math.max(0, n - (have.get(ch) || 0)); }
    const charsOk = lost === 0;
    console.log('A/B converged:', ok, 'length', text.length, 'expected length', expected.length, 'characters lost:', lost,
        'repeated:', text.length - expected.length + lost);
    if (textFile) { fs.writeFileSync(textFile, text); }

    // A late joiner loads from the relevant checkpoint, not from the start.
    const C = await makeClient('carol', url);
    const ok2 = await waitConverged([A, B, C], 15000);
    console.log('late joiner C converged:', ok2, 'history msgs', C.stats.history, 'of which checkpoints', C.stats.historyCp);

    // An independent reader with plain NaCl (what coop's CLI does) gets the same text...
    const { lines, cryptKey } = await rawRead(url);
    const fresh = ChainPad.create({ userName: 'raw', logLevel: 0 });
    let cps = 0;
    for (const l of lines) {
        const { isCp, text: t } = rawDecrypt(l[4], cryptKey, validateKey, true);
        if (isCp) { cps++; }
        fresh.message(t);
    }
    const ok3 = fresh.getUserDoc() === text;
    console.log('raw reader: lines', lines.length, 'checkpoints', cps, 'doc equals converged text:', ok3,
        'first line starts with cp|:', /^cp\|/.test(lines[0] ? lines[0][4] : ''));
    // ...and a wrong key reads nothing.
    const wrongKey = Nacl.randomBytes(32);
    let wrongReads = 0;
    for (const l of lines) { try { rawDecrypt(l[4], wrongKey, validateKey, false); wrongReads++; } catch (e) { /* expected */ } }
    const ok4 = lines.length > 0 && wrongReads === 0;
    console.log('wrong key decrypted', wrongReads, 'of', lines.length);

    [A, B, C].forEach((c) => c.stop());
    const pass = ok && ok2 && ok3 && ok4 && charsOk && C.stats.history < 2 * ROUNDS;
    console.log(pass ? 'RESULT: PASS' : 'RESULT: FAIL');
    setTimeout(() => process.exit(pass ? 0 : 1), 200);
})().catch((e) => { console.error(e); process.exit(2); });
