-- A token authentication provider for Prosody 0.12, written for coop's tests: it admits a
-- BOSH session whose URL carries ?token=JWT&room=CONFERENCE when the token passes the checks
-- Jitsi's token authentication makes (mod_auth_token with luajwtjitsi, mod_token_verification
-- on the conference MUC): header typ "JWT" and alg HS256, the HS256 signature with
-- app_secret (Prosody's own util.jwt), iss in asap_accepted_issuers, aud in
-- asap_accepted_audiences, sub the host (or "*"), exp and nbf against the clock with no
-- leeway, and the room claim, lowercased, naming the conference (or "*"). Jitsi's own module
-- needs luajwtjitsi, which Debian does not package; this one needs nothing beyond Prosody.
local jwt = require "util.jwt";
local json = require "util.json";
local sasl = require "util.sasl";
local http_util = require "util.http";
local encodings = require "util.encodings";
local new_id = require "util.id".medium;

local secret = module:get_option_string("app_secret");
local issuers = module:get_option_set("asap_accepted_issuers", {});
local audiences = module:get_option_set("asap_accepted_audiences", {});
local host = module.host;

-- Jitsi Meet's client puts the token and the conference in the BOSH URL.
module:hook_global("bosh-session", function (event)
	local query = event.request.url.query;
	if query then
		local params = http_util.formdecode(query);
		event.session.coop_token = params.token;
		event.session.coop_room = params.room;
	end
end);

local function base64url_decode(text)
	local standard = text:gsub("-", "+"):gsub("_", "/");
	return encodings.base64.decode(standard .. string.rep("=", (4 - #standard % 4) % 4));
end

local function check(session)
	local token, room = session.coop_token, session.coop_room;
	if not token or not room then return false, "no token or room in the URL"; end
	local header_part = token:match("^([A-Za-z0-9_-]+)%.");
	local header = header_part and json.decode(base64url_decode(header_part) or "");
	if type(header) ~= "table" or header.typ ~= "JWT" then return false, "header typ is not JWT"; end
	if header.alg ~= "HS256" then return false, "alg is not HS256"; end
	local ok, claims = jwt.verify(secret, token);
	if not ok then return false, "signature: " .. tostring(claims); end
	local now = os.time();
	if type(claims.exp) ~= "number" or now >= claims.exp then return false, "expired"; end
	if type(claims.nbf) == "number" and now < claims.nbf then return false, "not yet valid"; end
	if not issuers:contains(claims.iss) then return false, "issuer " .. tostring(claims.iss); end
	if not audiences:contains(claims.aud) then return false, "audience " .. tostring(claims.aud); end
	if claims.sub ~= host and claims.sub ~= "*" then return false, "sub " .. tostring(claims.sub); end
	if type(claims.room) ~= "string" or (claims.room ~= "*" and claims.room:lower() ~= room:lower()) then
		return false, "room " .. tostring(claims.room) .. " is not " .. room:lower();
	end
	session.coop_user = type(claims.context) == "table" and claims.context.user or nil;
	return true;
end

-- SASL ANONYMOUS that can fail: util.sasl's own asks its profile until it says yes.
sasl.registerMechanism("ANONYMOUS", { "anonymous" }, function (self)
	local username = new_id():lower();
	local ok, reason = self.profile.anonymous(self, username, self.realm);
	if not ok then return "failure", "not-authorized", reason; end
	self.username = username;
	return "success";
end);

local provider = {};
function provider.test_password() return nil, "tokens only"; end
function provider.get_password() return nil; end
function provider.set_password() return nil, "tokens only"; end
function provider.user_exists() return nil; end
function provider.create_user() return nil, "tokens only"; end
function provider.delete_user() return nil; end
function provider.get_sasl_handler(session)
	return sasl.new(host, {
		anonymous = function ()
			local ok, reason = check(session);
			local user = session.coop_user;
			module:log("info", "token %s: %s", ok and "admitted" or "refused",
				ok and json.encode(user or {}) or reason);
			return ok, reason;
		end;
	});
end
module:provides("auth", provider);
