// The page room_browser.mjs bundles: matrix-js-sdk with its browser crypto (Rust, in
// WebAssembly, keys in IndexedDB) against coop-room from another origin. Parameters come in
// the URL's fragment; the outcome goes to window.coopResult and into the page itself.
import * as sdk from "matrix-js-sdk";

const params = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const log = (text) => { document.getElementById("log").textContent += text + "\n"; };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function run() {
  const { baseUrl, user, password, roomId, expected } = params;
  const anonymous = sdk.createClient({ baseUrl });
  const login = await anonymous.login("m.login.password", { identifier: { type: "m.id.user", user }, password });
  const client = sdk.createClient({ baseUrl, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });
  await client.initRustCrypto();
  const ready = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => { if (state === "PREPARED") resolve(); }));
  await client.startClient({ initialSyncLimit: 30 });
  await ready;
  log(`signed in as ${login.user_id} (${login.device_id})`);
  // Join once this device's keys are on the server, so the sender encrypts to it.
  for (let i = 0; ; i++) {
    const keys = await client.downloadKeysForUsers([login.user_id]);
    if (keys.device_keys?.[login.user_id]?.[login.device_id]) break;
    if (i > 100) throw new Error("this device's keys never reached the server");
    await sleep(100);
  }
  if (client.getRoom(roomId)?.getMyMembership() !== "join") await client.joinRoom(roomId);
  document.title = "joined";

  // Wait for the message the other side encrypted for this device.
  let body = null;
  for (let i = 0; i < 600 && body === null; i++) {
    const room = client.getRoom(roomId);
    for (const event of room ? room.getLiveTimeline().getEvents() : []) {
      if (event.isEncrypted()) await client.decryptEventIfNeeded(event);
      if (event.getType() === "m.room.message" && event.getContent().body === expected) body = expected;
    }
    if (body === null) await sleep(100);
  }
  if (body === null) throw new Error("the encrypted message never decrypted");
  const text = document.createElement("p");
  text.id = "message";
  text.textContent = `decrypted: ${body}`;
  document.body.appendChild(text);
  log("decrypted the message");

  // An image: drawn, uploaded, sent (encrypted), and its authenticated thumbnail shown.
  const canvas = document.createElement("canvas");
  canvas.width = 320;
  canvas.height = 200;
  const g = canvas.getContext("2d");
  g.fillStyle = "#2a7"; g.fillRect(0, 0, 320, 200);
  g.fillStyle = "#fff"; g.font = "bold 40px sans-serif"; g.fillText("coop", 100, 115);
  const png = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const upload = await client.uploadContent(png, { type: "image/png", name: "coop.png" });
  await client.sendMessage(roomId, { msgtype: "m.image", body: "coop.png", url: upload.content_uri,
                                     info: { mimetype: "image/png", w: 320, h: 200, size: png.size } });
  const [server, mediaId] = upload.content_uri.slice("mxc://".length).split("/");
  const thumb = await fetch(`${baseUrl}/_matrix/client/v1/media/thumbnail/${server}/${mediaId}?width=96&height=96&method=scale`,
                            { headers: { Authorization: `Bearer ${login.access_token}` } });
  if (!thumb.ok) throw new Error(`thumbnail: HTTP ${thumb.status}`);
  const image = document.createElement("img");
  image.id = "thumbnail";
  image.src = URL.createObjectURL(await thumb.blob());
  await new Promise((resolve, reject) => { image.onload = resolve; image.onerror = () => reject(new Error("the thumbnail is not an image")); document.body.appendChild(image); });
  log(`thumbnail ${image.naturalWidth}x${image.naturalHeight}`);
  // Without the token the media is refused (authenticated media).
  const anonymousThumb = await fetch(`${baseUrl}/_matrix/client/v1/media/thumbnail/${server}/${mediaId}?width=96&height=96`);
  client.stopClient();
  return { decrypted: body, thumbnail: [image.naturalWidth, image.naturalHeight], unauthenticated_status: anonymousThumb.status };
}

run().then((result) => { window.coopResult = result; }, (error) => { window.coopResult = { error: String(error?.stack || error) }; log(String(error)); });
