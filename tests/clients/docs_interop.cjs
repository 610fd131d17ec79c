/* The npm clients and the coop CLI on one document: opens the pad behind an edit key with
 * chainpad-netflux, prints the text it reads (written by `coop docs push`), then appends a
 * line and waits until the server has stored it (so `coop docs pull` must see it).
 *
 *   node docs_interop.cjs WS_URL EDIT_KEY APPEND_TEXT
 * Prints "TEXT <json>" with what it read, then "APPENDED".
 */
'use strict';
const WebSocket = require('ws');
const Netflux = require('netflux-websocket');
const CPNF = require('chainpad-netflux');
const ChainPad = require('chainpad');
const Crypto = require('chainpad-crypto');
const NaclUtil = require('tweetnacl-util');

const [url, editKey, append] = process.argv.slice(2);
const keys = Crypto.createEditCryptor2(editKey);
const b64Decode = (s) => { s = s.replace(/-/g, '/'); if (s.length % 4) { s += '='.repeat(4 - s.length % 4); } return NaclUtil.decodeBase64(s); };
const channel = Buffer.from(b64Decode(keys.chanId)).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const session = CPNF.start({
    network: Netflux.connect(url, (u) => new WebSocket(u)),
    channel,
    crypto: Crypto.createEncryptor(keys),
    validateKey: keys.validateKey,
    ChainPad,
    userName: 'node',
    initialState: '',
    avgSyncMilliseconds: 20,
    logLevel: 0,
    onReady: async (info) => {
        const rt = info.realtime;
        const text = rt.getUserDoc();
        console.log('TEXT ' + JSON.stringify(text));
        rt.contentUpdate(text + append);
        for (let i = 0; i < 200; i++) {
            await sleep(50);
            if (!rt.getLag().pending && rt.getAuthDoc() === text + append) {
                console.log('APPENDED');
                session.stop();
                info.network.disconnect();
                return setTimeout(() => process.exit(0), 100);
            }
        }
        console.log('TIMEOUT');
        process.exit(1);
    },
    onError: (e) => { console.log('ERROR ' + JSON.stringify(e)); process.exit(1); },
    onChannelError: (e) => { console.log('CHANNEL ERROR ' + JSON.stringify(e)); process.exit(1); },
});
