// Verifies a message's DKIM signatures with mailauth (npm), against DNS records given in a
// JSON file instead of the network. Prints mailauth's dkim results as JSON.
// usage: node mail_auth.cjs MESSAGE_FILE RECORDS_JSON   (records: {"name": "TXT value"})
const fs = require('fs');
const { authenticate } = require('mailauth');

const [messageFile, recordsFile] = process.argv.slice(2);
const records = JSON.parse(fs.readFileSync(recordsFile, 'utf8'));

async function resolver(name, rrtype) {
  const key = name.replace(/\.$/, '').toLowerCase();
  if (rrtype === 'TXT' && records[key]) {
    const value = records[key];
    const chunks = [];
    for (let i = 0; i < value.length; i += 255) chunks.push(value.slice(i, i + 255));
    return [chunks];
  }
  const err = new Error(`no ${rrtype} for ${name}`);
  err.code = 'ENOTFOUND';
  throw err;
}

(async () => {
  const result = await authenticate(fs.readFileSync(messageFile), {
    ip: '127.0.0.1', helo: 'sender.test', mta: 'receiver.test', sender: process.argv[4] || '', resolver,
    disableArc: true, disableBimi: true,
  });
  console.log(JSON.stringify(result.dkim.results.map((r) => ({
    result: r.status.result, comment: r.status.comment || '', domain: r.signingDomain, selector: r.selector,
    algo: r.algo,
  }))));
})().catch((e) => { console.error(e); process.exit(1); });
