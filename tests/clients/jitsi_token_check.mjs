// The checks Jitsi's Prosody token authentication makes (mod_auth_token with luajwtjitsi, and
// mod_token_verification on the conference MUC), applied with jsonwebtoken to the tokens coop
// signs. Reads {secret, app_id, audience, domain, now?, cases: [{name, jwt, conference}]} as
// JSON on stdin; prints [{name, ok, reason}] as JSON. `now` (seconds) stands for Prosody's
// clock, to see a token after its expiry without waiting for it.
import jwt from "jsonwebtoken";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, app_id, audience, domain, now, cases } = JSON.parse(input);

function check(token, conference) {
  // luajwtjitsi: three parts, a header with typ "JWT" and the algorithm Prosody expects.
  const decoded = jwt.decode(token, { complete: true });
  if (!decoded) return "not a JWT";
  if (decoded.header.typ !== "JWT") return "header typ is not JWT";
  if (decoded.header.alg !== "HS256") return "alg is not HS256";
  let claims;
  try {
    // Signature, iss in asap_accepted_issuers, aud in asap_accepted_audiences, exp and nbf
    // with no leeway.
    claims = jwt.verify(token, secret, {
      algorithms: ["HS256"],
      issuer: app_id,
      audience,
      clockTolerance: 0,
      clockTimestamp: now ?? Math.floor(Date.now() / 1000),
    });
  } catch (e) {
    return e.message;
  }
  if (typeof claims.exp !== "number") return "no exp";
  // enable_domain_verification: sub is the Jitsi domain (or "*").
  if (claims.sub !== domain && claims.sub !== "*") return `sub ${claims.sub} is not ${domain}`;
  // mod_token_verification: the room claim, lowercased, is the conference joined (or "*").
  if (typeof claims.room !== "string") return "no room claim";
  if (claims.room !== "*" && claims.room.toLowerCase() !== conference.toLowerCase())
    return `token is for room ${claims.room}, not ${conference.toLowerCase()}`;
  if (!claims.context || !claims.context.user || typeof claims.context.user.name !== "string")
    return "no context.user.name";
  return null;
}

const results = cases.map(({ name, jwt: token, conference }) => {
  const reason = check(token, conference);
  return { name, ok: reason === null, reason };
});
console.log(JSON.stringify(results));
