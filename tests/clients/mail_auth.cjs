// Authenticates a message with mailauth (npm) against DNS TXT records given in a JSON file
// instead of the network: DKIM, SPF and DMARC, as a receiving server would.
// usage: node mail_auth.cjs MESSAGE_FILE RECORDS_JSON [SENDER] [IP] [HELO]
//   records: {"name": "TXT value", ...}; prints {"dkim": [...], "spf": "...", "dmarc": "..."}
const fs = require('fs');
const { authenticate } = require('mailauth');

const [messageFile, recordsFile, sender = '', ip = '127.0.0.1', helo = 'sender.test'] = process.argv.slice(2);
const records = JSON.parse(fs.readFileSync(recordsFile, 'utf8'));

async function resolver(name, rrtype) {
  const key = name.replace(/\.$/, '').toLowerCase();
  if (rrtype === 'TXT' && records[key] !== undefined) {
    const values = Array.isArray(records[key]) ? records[key] : [records[key]];
    return values.map((value) => {
      const chunks = [];
      for (let i = 0; i < value.length; i += 255) chunks.push(value.slice(i, i + 255));
      return chunks;
    });
  }
  const err = new Error(`no ${rrtype} for ${name}`);
  err.code = records[key] !== undefined ? 'ENODATA' : 'ENOTFOUND';
  throw err;
}

(async () => {
  const result = await authenticate(fs.readFileSync(messageFile), {
    ip, helo, mta: 'receiver.test', sender, resolver, disableArc: true, disableBimi: true,
  });
  console.log(JSON.stringify({
    dkim: result.dkim.results.map((r) => ({
      result: r.status.result, comment: r.status.comment || '', domain: r.signingDomain, selector: r.selector,
      algo: r.algo,
    })),
    spf: result.spf && result.spf.status ? result.spf.status.result : 'none',
    dmarc: result.dmarc && result.dmarc.status ? result.dmarc.status.result : 'none',
    dmarcPolicy: result.dmarc && result.dmarc.policy ? result.dmarc.policy : '',
  }));
})().catch((e) => { console.error(e); process.exit(1); });
