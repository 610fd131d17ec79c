"""Mail client autoconfiguration on coop-dav's listener: Thunderbird's config-v1.1.xml (both
URLs) checked against the ConfigFileFormat and then used as a client would, logging in with
imaplib and smtplib exactly where and as it says; Outlook's POX Autodiscover answered for a
hosted address, refused in its own error codes otherwise; the [workers.mail.public] ports and
hostname advertised instead of the listeners'; hostile bodies answered without a restart."""
import http.client
import imaplib
import json
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from coopshard import Shard, bin_dir_from_args, run_tests

BIN = bin_dir_from_args()
DOMAIN = "mail.test"
ADDRESS = f"alice@{DOMAIN}"
STRONG = "correct horse battery staple"

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MOBILESYNC_NS = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
A = "{" + AUTODISCOVER_NS + "}"
O = "{" + OUTLOOK_NS + "}"


def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the shard's self-signed certificate
    return context


def start(shard, public=None):
    """Starts a shard hosting DOMAIN with alice in it; returns the dav URL and mail ports."""
    shard.init()
    if public:
        with open(f"{shard.home}/coop.toml", "a") as f:
            # JSON's strings and integers are TOML's too.
            f.write("\n[workers.mail.public]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in public.items()))
    shard.coop("up")
    shard.coop("mail", "domain", "add", DOMAIN)
    shard.coop("member", "add", "alice", "--email", ADDRESS, "--password-stdin", input=STRONG)
    status = shard.json("status")
    dav = next(w for w in status["workers"] if w["name"] == "dav")
    url = next(l["url"] for l in dav["listeners"] if l["name"] == "http")
    mail = next(w for w in status["workers"] if w["name"] == "mail")
    ports = {l["name"]: int(l["url"].rsplit(":", 1)[1]) for l in mail["listeners"]}
    return url, ports


def fetch(url, path, method="GET", body=None):
    req = urllib.request.Request(url + path, method=method, data=body)
    if body is not None:
        req.add_header("Content-Type", "text/xml")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def dav_pid(shard):
    return next(w.get("pid") for w in shard.json("status")["workers"] if w["name"] == "dav")


def text(element, path):
    found = element.find(path)
    assert found is not None, (path, ET.tostring(element))
    return (found.text or "").strip()


def servers(provider, tag):
    return [{child.tag: (child.text or "").strip() for child in s} | {"type": s.get("type")}
            for s in provider.findall(tag)]


def client_config(url, path):
    """Fetches and checks a Thunderbird config against the ConfigFileFormat; returns its parts."""
    status, body, content_type = fetch(url, path)
    assert status == 200, (path, status, body)
    assert content_type.split(";")[0].strip() in ("text/xml", "application/xml"), content_type
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1", body
    providers = root.findall("emailProvider")
    assert len(providers) == 1, body
    provider = providers[0]
    assert provider.get("id"), body
    assert text(provider, "displayName"), body
    incoming, outgoing = servers(provider, "incomingServer"), servers(provider, "outgoingServer")
    for server in incoming + outgoing:
        for field in ("hostname", "port", "socketType", "username", "authentication"):
            assert server.get(field), (field, server)
        assert server["socketType"] in ("SSL", "STARTTLS"), server  # never "plain"
        assert server["authentication"] == "password-cleartext", server
        assert server["port"].isdigit(), server
    assert incoming and all(s["type"] == "imap" for s in incoming), incoming
    assert outgoing and all(s["type"] == "smtp" for s in outgoing), outgoing
    return provider, incoming, outgoing, body


def login_name(template, address):
    """The user name a client derives from the advertised template (ConfigFileFormat placeholders)."""
    local, domain = address.rsplit("@", 1)
    return template.replace("%EMAILADDRESS%", address).replace("%EMAILLOCALPART%", local).replace("%EMAILDOMAIN%", domain)


def autodiscover_request(address, schema=OUTLOOK_NS):
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{REQUEST_NS}">\n  <Request>\n'
            f"    <EMailAddress>{address}</EMailAddress>\n"
            f"    <AcceptableResponseSchema>{schema}</AcceptableResponseSchema>\n"
            "  </Request>\n</Autodiscover>\n").encode()


def autodiscover(url, body, path="/autodiscover/autodiscover.xml", method="POST"):
    """Posts an Autodiscover request; returns ({protocol type: {field: text}}, error code or None)."""
    status, answer, content_type = fetch(url, path, method=method, body=body)
    assert status == 200, (status, answer[:300])
    assert content_type.split(";")[0].strip() in ("text/xml", "application/xml"), content_type
    root = ET.fromstring(answer)
    assert root.tag == A + "Autodiscover", answer
    response = root.find(O + "Response")
    assert response is not None, answer
    error = response.find(O + "Error")
    if error is not None:
        return {}, int(text(error, O + "ErrorCode"))
    account = response.find(O + "Account")
    assert text(account, O + "AccountType") == "email" and text(account, O + "Action") == "settings", answer
    protocols = {}
    for p in account.findall(O + "Protocol"):
        fields = {child.tag[len(O):]: (child.text or "").strip() for child in p}
        protocols[fields["Type"]] = fields
    return protocols, None


def test_thunderbird_config_is_served_both_ways_and_logs_in():
    with Shard(BIN) as shard:
        url, ports = start(shard)
        _, _, _, well_known = client_config(url, "/.well-known/autoconfig/mail/config-v1.1.xml")
        query = "/mail/config-v1.1.xml?emailaddress=" + urllib.parse.quote(ADDRESS)
        provider, incoming, outgoing, at_autoconfig = client_config(url, query)
        assert well_known == at_autoconfig
        assert provider.get("id") == shard.domain
        # Every hosted domain: the shard's own (hosted from the first start) and the added one.
        assert sorted(d.text for d in provider.findall("domain")) == sorted([shard.domain, DOMAIN])
        # Implicit TLS first (RFC 8314), then STARTTLS, at the shard's real listener ports.
        assert [(s["socketType"], int(s["port"])) for s in incoming] == [("SSL", ports["imaps"]), ("STARTTLS", ports["imap"])]
        assert [(s["socketType"], int(s["port"])) for s in outgoing] == [
            ("SSL", ports["submissions"]), ("STARTTLS", ports["submission"])]
        assert all(s["hostname"] == shard.domain for s in incoming + outgoing)
        # The registry takes a member's address as a login, so the address is the user name.
        assert {s["username"] for s in incoming + outgoing} == {"%EMAILADDRESS%"}

        # A client uses exactly what it was told (the host name is the shard's, which resolves
        # nowhere in a test, so the address is 127.0.0.1).
        imaps, imap = incoming
        with imaplib.IMAP4_SSL("127.0.0.1", int(imaps["port"]), ssl_context=tls_context()) as client:
            client.login(login_name(imaps["username"], ADDRESS), STRONG)
            assert client.select("INBOX")[0] == "OK"
        with imaplib.IMAP4("127.0.0.1", int(imap["port"])) as client:
            client.starttls(tls_context())
            client.login(login_name(imap["username"], ADDRESS), STRONG)
        submissions, submission = outgoing
        with smtplib.SMTP_SSL("127.0.0.1", int(submissions["port"]), context=tls_context(), timeout=30) as client:
            code, _ = client.login(login_name(submissions["username"], ADDRESS), STRONG)
            assert code == 235
        with smtplib.SMTP("127.0.0.1", int(submission["port"]), timeout=30) as client:
            client.starttls(context=tls_context())
            code, _ = client.login(login_name(submission["username"], ADDRESS), STRONG)
            assert code == 235

        # The routes sit beside DAV, not in place of it: the RFC 6764 redirect still answers.
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/.well-known/caldav")
        response = connection.getresponse()
        assert response.status == 301 and response.getheader("Location") == "/dav/"
        connection.close()


def test_outlook_autodiscover_answers_for_hosted_addresses():
    with Shard(BIN) as shard:
        url, ports = start(shard)
        protocols, error = autodiscover(url, autodiscover_request(ADDRESS))
        assert error is None and set(protocols) == {"IMAP", "SMTP"}, protocols
        imap, smtp = protocols["IMAP"], protocols["SMTP"]
        assert (imap["Server"], int(imap["Port"]), imap["SSL"]) == (shard.domain, ports["imaps"], "on"), imap
        assert (smtp["Server"], int(smtp["Port"]), smtp["SSL"]) == (shard.domain, ports["submissions"], "on"), smtp
        assert imap["LoginName"] == smtp["LoginName"] == ADDRESS
        assert imap["SPA"] == smtp["SPA"] == "off"  # absent, Outlook would insist on NTLM
        assert smtp["AuthRequired"] == "on"
        with imaplib.IMAP4_SSL("127.0.0.1", int(imap["Port"]), ssl_context=tls_context()) as client:
            client.login(imap["LoginName"], STRONG)
        with smtplib.SMTP_SSL("127.0.0.1", int(smtp["Port"]), context=tls_context(), timeout=30) as client:
            assert client.login(smtp["LoginName"], STRONG)[0] == 235

        # Outlook's capitalised spelling of the path, and an address in any case.
        protocols, error = autodiscover(url, autodiscover_request("Alice@Mail.Test"), path="/Autodiscover/Autodiscover.xml")
        assert error is None and protocols["IMAP"]["LoginName"] == "Alice@Mail.Test"
        # The shard's own domain is hosted too; the local part is never looked up, so an unknown
        # member gets the same answer as a known one (nothing learnt about who is a member).
        protocols, error = autodiscover(url, autodiscover_request(f"nobody@{shard.domain}"))
        assert error is None and protocols["IMAP"]["LoginName"] == f"nobody@{shard.domain}"
        # MS-OXDSCLI's error codes: 500 not ours, 600 invalid request, 601 schema not offered.
        assert autodiscover(url, autodiscover_request("alice@example.org"))[1] == 500
        assert autodiscover(url, None, method="GET")[1] == 600
        assert autodiscover(url, autodiscover_request(ADDRESS, schema=MOBILESYNC_NS))[1] == 601


def test_hostile_autodiscover_bodies_are_answered_without_a_restart():
    with Shard(BIN) as shard:
        url, _ = start(shard)
        before = dav_pid(shard)
        garbage = [
            b"",
            b"\xff\xfe\x00garbage\x00\xff",
            b"<EMailAddress>",
            b"</EMailAddress><EMailAddress>",
            b"<EMailAddress></EMailAddress>",
            b"<EMailAddress>" + b"a" * 70 + b"@mail.test</EMailAddress>",
            b"<EMailAddress>alice@" + b"x" * 300 + b"</EMailAddress>",
            b"<EMailAddress>\xc3\x28@mail.test</EMailAddress>",
            b"<EMailAddress><script>alert(1)</script>@mail.test</EMailAddress>",
            b"<EMailAddress>a&amp;b@mail.test</EMailAddress>",
            b"<EMailAddress>a\x00b@mail.test</EMailAddress>",
            b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><EMailAddress>&e;</EMailAddress>",
            b"<a>" * 20000,  # deep, but under the 64 KiB looked at
        ]
        for body in garbage:
            protocols, error = autodiscover(url, body)
            assert error == 600, (body[:80], protocols, error)
        # What is echoed is escaped: a quote in a local part comes back as the same text.
        protocols, error = autodiscover(url, autodiscover_request('"o\'hara"@mail.test'))
        assert error is None and protocols["IMAP"]["LoginName"] == '"o\'hara"@mail.test'
        # 5 MB is refused at once, before it is searched.
        status, _, _ = fetch(url, "/autodiscover/autodiscover.xml", method="POST",
                             body=autodiscover_request(ADDRESS) + b" " * (5 << 20))
        assert status == 413, status
        # The worker is the same process and still answers.
        protocols, error = autodiscover(url, autodiscover_request(ADDRESS))
        assert error is None and "IMAP" in protocols
        assert client_config(url, "/mail/config-v1.1.xml")
        assert dav_pid(shard) == before


def test_published_ports_and_hostname_replace_the_listeners():
    with Shard(BIN) as shard:
        public = {"hostname": "mail.example.org", "imaps_port": 993, "submissions_port": 465}
        url, ports = start(shard, public)
        _, incoming, outgoing, _ = client_config(url, "/.well-known/autoconfig/mail/config-v1.1.xml")
        assert {s["hostname"] for s in incoming + outgoing} == {"mail.example.org"}
        # Published ports where set, the listeners' own where not.
        assert [int(s["port"]) for s in incoming] == [993, ports["imap"]]
        assert [int(s["port"]) for s in outgoing] == [465, ports["submission"]]
        protocols, error = autodiscover(url, autodiscover_request(ADDRESS))
        assert error is None
        assert (protocols["IMAP"]["Server"], protocols["IMAP"]["Port"]) == ("mail.example.org", "993")
        assert (protocols["SMTP"]["Server"], protocols["SMTP"]["Port"]) == ("mail.example.org", "465")


if __name__ == "__main__":
    run_tests([
        test_thunderbird_config_is_served_both_ways_and_logs_in,
        test_outlook_autodiscover_answers_for_hosted_addresses,
        test_hostile_autodiscover_bodies_are_answered_without_a_restart,
        test_published_ports_and_hostname_replace_the_listeners,
    ])
