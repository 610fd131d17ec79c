// matrix-js-sdk with its Rust crypto (matrix-sdk-crypto-wasm) against coop-room.
//   node room_e2ee.mjs BASE_URL DOMAIN PASSWORD pair
//     alice and bob in an encrypted room, ten messages each way; cross-signing set up and a
//     second device of alice signed by it, which bob sees; a key backup that a new device of
//     alice restores (a wrong recovery key fails first); a deleted device vanishes for bob.
//   node room_e2ee.mjs BASE_URL DOMAIN PASSWORD peer USER ROOM_ID COUNT MINE THEIRS
//     one client for the matrix-nio test: joins ROOM_ID, sends COUNT messages "MINE i" and
//     waits until it has decrypted COUNT messages "THEIRS i".
// With COOP_SLIDING_SYNC=1 in the environment the clients sync with simplified sliding sync
// (MSC4186, js-sdk's SlidingSync with its to_device, e2ee, account_data, receipts and typing
// extensions) instead of /sync.
// Prints one JSON line of results; exits non-zero with a reason on the first failure.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";

logger.setLevel("warn");
const [baseUrl, domain, password, mode, ...rest] = process.argv.slice(2);
const fail = (why) => { console.error("FAIL:", why); process.exit(1); };
const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));
const within = (promise, what, ms = 30000) => Promise.race([promise, timeout(ms, what)]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const results = {};

async function login(user) {
  const anonymous = sdk.createClient({ baseUrl });
  const r = await anonymous.login("m.login.password", { identifier: { type: "m.id.user", user }, password });
  const client = sdk.createClient({ baseUrl, accessToken: r.access_token, userId: r.user_id, deviceId: r.device_id });
  await client.initRustCrypto({ useIndexedDB: false });
  // Every message body this client decrypts, whenever and however it arrives (a gappy sync
  // drops older events from the live timeline, so that alone is not enough).
  client.seenBodies = new Map();
  const record = (event) => {
    if (event.getType() !== "m.room.message" || event.isDecryptionFailure()) return;
    const roomId = event.getRoomId();
    if (!client.seenBodies.has(roomId)) client.seenBodies.set(roomId, new Set());
    client.seenBodies.get(roomId).add(event.getContent().body);
  };
  client.on(sdk.MatrixEventEvent.Decrypted, record);
  client.on(sdk.RoomEvent.Timeline, (event) => { if (!event.isEncrypted()) record(event); });
  const ready = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => { if (state === "PREPARED") resolve(); }));
  if (process.env.COOP_SLIDING_SYNC === "1") {
    const state = [["*", "*"]];
    const lists = new Map([["all", { ranges: [[0, 49]], timeline_limit: 50, required_state: state, filters: {} }]]);
    const slidingSync = new SlidingSync(undefined, lists, { timeline_limit: 50, required_state: state }, client, 10000);
    await client.startClient({ slidingSync });
  } else {
    await client.startClient({ initialSyncLimit: 50 });
  }
  await within(ready, `${user}'s first sync`);
  client.accessTokenForTest = r.access_token;
  return client;
}

async function api(client, method, path, body) {
  const response = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
    method, headers: { Authorization: `Bearer ${client.accessTokenForTest}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// Bodies of the decrypted m.room.message events of a room: those the client has seen, and
// those of its live timeline, decrypted again (keys from a backup arrive after the events).
async function clearBodies(client, roomId) {
  const bodies = [...(client.seenBodies.get(roomId) ?? [])];
  const room = client.getRoom(roomId);
  if (!room) return bodies;
  for (const event of room.getLiveTimeline().getEvents()) {
    if (event.isEncrypted()) await client.decryptEventIfNeeded(event);
    if (event.getType() === "m.room.message" && !event.isDecryptionFailure()) bodies.push(event.getContent().body);
  }
  return bodies;
}

async function waitForBodies(client, roomId, expected, what, ms = 60000) {
  const deadline = Date.now() + ms;
  for (let round = 0; ; round++) {
    const bodies = await clearBodies(client, roomId);
    if (expected.every((b) => bodies.includes(b))) return bodies;
    // A gappy sync (more new events than the timeline limit) leaves the older ones to be
    // paginated, as a client does when the member scrolls up.
    const room = client.getRoom(roomId);
    if (round % 4 === 3 && room?.getLiveTimeline().getPaginationToken(sdk.EventTimeline.BACKWARDS))
      await client.scrollback(room, 30);
    if (Date.now() > deadline) fail(`${what}: missing ${JSON.stringify(expected.filter((b) => !bodies.includes(b)))}`);
    await sleep(250);
  }
}

async function waitForMembership(client, roomId, membership) {
  for (let i = 0; i < 200; i++) {
    if (client.getRoom(roomId)?.getMyMembership() === membership) return;
    await sleep(100);
  }
  fail(`${client.getUserId()} never saw ${membership} in ${roomId}`);
}

const encryption = { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } };

async function pair() {
  const alice = await login("alice");
  const bob = await login("bob");
  const aliceId = alice.getUserId(), bobId = bob.getUserId();

  // Cross-signing: the first upload of the keys goes through without a password.
  let askedForPassword = false;
  await alice.getCrypto().bootstrapCrossSigning({
    authUploadDeviceSigningKeys: async (makeRequest) => {
      try {
        await makeRequest(null);
      } catch (e) {
        askedForPassword = true;
        await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: "alice" }, password });
      }
    },
  });
  if (!(await alice.getCrypto().isCrossSigningReady())) fail("alice's cross-signing is not ready");
  results.cross_signing_first_upload_without_password = !askedForPassword;
  await alice.getCrypto().resetKeyBackup();
  // resetKeyBackup starts the backup without waiting for it; the check is what enables it.
  const check = await alice.getCrypto().checkKeyBackupAndEnable();
  if (!check?.trustInfo?.trusted) fail(`the new backup is not trusted: ${JSON.stringify(check?.trustInfo)}`);
  const backupVersion = await alice.getCrypto().getActiveSessionBackupVersion();
  if (!backupVersion) fail("no active key backup after resetKeyBackup");
  results.backup_version = backupVersion;

  // One-time keys run out: bob claims all of alice's, then gets her fallback key (again, while
  // it is her only one); her client sees the count at zero and uploads new one-time keys. (The
  // Rust crypto replaces its fallback key by age, not on use; the server side of replacing it
  // is in test_key_claim_ordering.)
  const claimOne = async () => {
    const r = await api(bob, "POST", "/keys/claim", { one_time_keys: { [aliceId]: { [alice.getDeviceId()]: "signed_curve25519" } } });
    const [id, key] = Object.entries(r.body.one_time_keys?.[aliceId]?.[alice.getDeviceId()] ?? {})[0] ?? [];
    if (!id) fail(`no key for alice's device: ${JSON.stringify(r)}`);
    return { id, fallback: key.fallback === true };
  };
  let first = null;
  for (let i = 0; i < 500 && !first; i++) {
    const key = await claimOne();
    if (key.fallback) first = key.id;
  }
  if (!first) fail("alice's one-time keys never ran out");
  const again = await claimOne();
  if (!again.fallback || again.id !== first) fail(`the fallback key was not served again: ${JSON.stringify(again)}`);
  results.fallback_key_served = true;
  await alice.sendTextMessage((await alice.createRoom({ name: "poke" })).room_id, "wake alice's sync");
  for (let i = 0; ; i++) {
    // An initial sync (no since) acknowledges nothing: alice's client is not disturbed.
    const state = await api(alice, "GET", "/sync?timeout=0&filter=" + encodeURIComponent(JSON.stringify({ room: { rooms: [] } })));
    if ((state.body.device_one_time_keys_count?.signed_curve25519 ?? 0) > 0) break;
    if (i > 240) fail("alice's client never uploaded new one-time keys");
    await sleep(250);
  }
  const fresh = await claimOne();
  if (fresh.fallback) fail("a fallback key was served while one-time keys were there");
  results.one_time_keys_replenished = true;

  const { room_id: roomId } = await alice.createRoom({ name: "Secrets", invite: [bobId], initial_state: [encryption] });
  await waitForMembership(bob, roomId, "invite");
  await bob.joinRoom(roomId);
  await waitForMembership(bob, roomId, "join");
  if (!(await bob.getCrypto().isEncryptionEnabledInRoom(roomId))) fail("bob does not see the room as encrypted");

  const fromAlice = Array.from({ length: 10 }, (_, i) => `alice says ${i}`);
  const fromBob = Array.from({ length: 10 }, (_, i) => `bob says ${i}`);
  for (const body of fromAlice) await alice.sendTextMessage(roomId, body);
  for (const body of fromBob) await bob.sendTextMessage(roomId, body);
  await waitForBodies(bob, roomId, fromAlice, "bob decrypts alice");
  await waitForBodies(alice, roomId, fromBob, "alice decrypts bob");
  results.js_to_js = 20;

  // The backup holds the room keys once alice's client has uploaded them.
  for (let i = 0; ; i++) {
    const info = await api(alice, "GET", "/room_keys/version");
    if (info.status === 200 && info.body.count >= 2) { results.backed_up_keys = info.body.count; break; }
    if (i > 120) fail(`the key backup never filled: ${JSON.stringify(info)}`);
    await sleep(250);
  }

  // A second device of alice, signed with her self-signing key: bob sees it signed by its owner.
  const alice2 = await login("alice");
  // alice2's keys go up after its first sync; alice signs it once she sees them.
  for (let i = 0; ; i++) {
    const devices = await alice.getCrypto().getUserDeviceInfo([aliceId], true);
    if (devices.get(aliceId)?.has(alice2.getDeviceId())) break;
    if (i > 120) fail("alice never saw her second device");
    await sleep(250);
  }
  await alice.getCrypto().crossSignDevice(alice2.getDeviceId());
  let status = null;
  for (let i = 0; i < 120; i++) {
    await bob.getCrypto().getUserDeviceInfo([aliceId], true);
    status = await bob.getCrypto().getDeviceVerificationStatus(aliceId, alice2.getDeviceId());
    if (status?.signedByOwner) break;
    await sleep(250);
  }
  if (!status?.signedByOwner) fail("bob does not see alice's second device signed by her");
  results.second_device_signed_by_owner = true;

  // The new device restores room keys from the backup: a wrong key fails, the right one works.
  const rightKey = await alice.getCrypto().getSessionBackupPrivateKey();
  if (!rightKey) fail("alice's client has no backup key");
  const wrongKey = new Uint8Array(32).map(() => Math.floor(Math.random() * 256));
  await alice2.getCrypto().storeSessionBackupPrivateKey(wrongKey, backupVersion);
  let wrongFailed = false;
  try {
    await alice2.getCrypto().restoreKeyBackup();
  } catch (e) {
    wrongFailed = true;
  }
  if (!wrongFailed) fail("restoring the backup with a wrong key succeeded");
  results.wrong_recovery_key_fails = true;
  await alice2.getCrypto().storeSessionBackupPrivateKey(rightKey, backupVersion);
  const restored = await alice2.getCrypto().restoreKeyBackup();
  if (!restored || restored.imported < 1) fail(`nothing restored from the backup: ${JSON.stringify(restored)}`);
  results.restored_keys = restored.imported;
  await waitForBodies(alice2, roomId, fromBob, "alice's new device reads bob's messages from the backup");

  // A deleted device leaves bob's list of alice's devices.
  const uia = { type: "m.login.password", identifier: { type: "m.id.user", user: "alice" }, password };
  alice2.stopClient();
  const deleted = await api(alice, "POST", "/delete_devices", { devices: [alice2.getDeviceId()], auth: uia });
  if (deleted.status !== 200) fail(`delete_devices: ${JSON.stringify(deleted)}`);
  let gone = false;
  for (let i = 0; i < 120 && !gone; i++) {
    const devices = await bob.getCrypto().getUserDeviceInfo([aliceId], true);
    gone = !devices.get(aliceId)?.has(alice2.getDeviceId());
    if (!gone) await sleep(250);
  }
  if (!gone) fail("bob still lists alice's deleted device");
  await bob.sendTextMessage(roomId, "after the deletion");
  await waitForBodies(alice, roomId, ["after the deletion"], "alice decrypts after the deletion");
  results.deleted_device_gone = true;

  alice.stopClient();
  bob.stopClient();
}

async function peer() {
  const [user, roomId, countText, mine, theirs] = rest;
  const count = Number(countText);
  const client = await login(user);
  // The Rust crypto uploads this device's keys after the first sync; join once they are on
  // the server, so that the peer can encrypt to this device from the first message.
  for (let i = 0; ; i++) {
    const mine = await api(client, "POST", "/keys/query", { device_keys: { [client.getUserId()]: [client.getDeviceId()] } });
    if (mine.body.device_keys?.[client.getUserId()]?.[client.getDeviceId()]) break;
    if (i > 200) fail("this device's keys never reached the server");
    await sleep(100);
  }
  if (client.getRoom(roomId)?.getMyMembership() !== "join") await client.joinRoom(roomId);
  await waitForMembership(client, roomId, "join");
  for (let i = 0; i < count; i++) await client.sendTextMessage(roomId, `${mine} ${i}`);
  const expected = Array.from({ length: count }, (_, i) => `${theirs} ${i}`);
  await waitForBodies(client, roomId, expected, `${user} decrypts ${theirs}`, 90000);
  results.decrypted = count;
  results.device_id = client.getDeviceId();
  // Stay a moment so the peer can claim keys and share its own before this device goes quiet.
  await sleep(2000);
  client.stopClient();
}

try {
  if (mode === "pair") await pair();
  else if (mode === "peer") await peer();
  else fail(`unknown mode ${mode}`);
  console.log(JSON.stringify(results));
  process.exit(0);
} catch (e) {
  fail(e?.stack || String(e));
}
