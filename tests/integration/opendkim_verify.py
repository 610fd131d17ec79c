"""Runs libopendkim's verifier (opendkim-testmsg) on a message with DNS answered by a server
the test controls. libopendkim asks the system resolver, which only reads /etc/resolv.conf
and port 53: so this runs in its own mount and network namespace (unshare, as root), where
a private /etc/resolv.conf points at a DNS server on that namespace's loopback.

usage (by the tests): unshare --mount --net /usr/bin/python3 opendkim_verify.py RECORDS_JSON MESSAGE
Exit status: opendkim-testmsg's (0: every signature verified); its complaints on stderr."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dnslib import TXT, RR, QTYPE, RCODE  # noqa: E402
from dnslib.server import BaseResolver, DNSLogger, DNSServer  # noqa: E402


class Records(BaseResolver):
    def __init__(self, records):
        self.records = {k.rstrip(".").lower(): v for k, v in records.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        value = self.records.get(name)
        if value is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            data = value.encode()
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT([data[i:i + 255] for i in range(0, len(data), 255)]), ttl=1))
        return reply


def main():
    records = json.load(open(sys.argv[1]))
    message = sys.argv[2]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = DNSServer(Records(records), port=53, address="127.0.0.1",
                       logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", f.name, "/etc/resolv.conf"], check=True)
    with open(message, "rb") as m:
        result = subprocess.run(["opendkim-testmsg"], stdin=m)
    server.stop()
    sys.exit(result.returncode)


main()
