/* The npm clients and the coop CLI on one document: opens the pad behind an edit key with
 * CryptPad's own libraries (chainpad-netflux, chainpad, chainpad-crypto), prints the document it
 * reads (written by `coop docs new|push` or coop's editor), then appends a paragraph as
 * CryptPad's pad editor writes one (hyper-json, JSON.sortify, metadata last; a plain-text
 * document from an older coop gets the text appended) and waits until the server has stored it
 * (so `coop docs pull` must see it).
 *
 *   node docs_interop.cjs WS_URL EDIT_KEY APPEND_TEXT
 * Prints "TEXT <json>" with the document it read, then "APPENDED".
 */
'use strict';
const WebSocket = require('ws');
const Netflux = require('netflux-websocket');
const CPNF = require('chainpad-netflux');
const ChainPad = require('chainpad');
const Crypto = require('chainpad-crypto');
const NaclUtil = require('tweetnacl-util');
const Sortify = require('json.sortify');

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
    patchTransformer: ChainPad.NaiveJSONTransformer,
    userName: 'node',
    initialState: '',
    avgSyncMilliseconds: 20,
    logLevel: 0,
    onReady: async (info) => {
        const rt = info.realtime;
        const text = rt.getUserDoc();
        console.log('TEXT ' + JSON.stringify(text));
        let next = text + append;
        let doc = null;
        try { doc = JSON.parse(text); } catch (e) { doc = null; }
        if (Array.isArray(doc) && doc[0] === 'BODY') {
            // The paragraph goes before the metadata, which CryptPad keeps last.
            doc[2].push(['P', {}, [append.replace(/\n$/, '')]]);
            next = Sortify(doc);
        }
        rt.contentUpdate(next);
        for (let i = 0; i < 200; i++) {
            await sleep(50);
            if (!rt.getLag().pending && rt.getAuthDoc() === next) {
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
