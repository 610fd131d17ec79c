"""coop proxy nginx|caddy: the printed nginx configuration passes `nginx -t`, and nginx run
on loopback in front of a shard serves Matrix, DAV (the .well-known redirect included) and
the map through it, over TLS with the shard's certificate. Caddy's passes `caddy validate`."""
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile

from coopshard import Shard, bin_dir_from_args, free_port_block, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "proxy.test"


def get(port, host, path, method="GET"):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname=host)
    conn.request(method, path, headers={"Host": host})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_nginx_in_front_of_a_shard():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx is not installed: run scripts/install-deps"
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        shard.init()
        shard.coop("up")
        conf = shard.coop("proxy", "nginx").stdout
        assert "server_name matrix.proxy.test;" in conf and "location /.well-known/matrix/" in conf, conf
        assert "client_max_body_size 50m;" in conf and "proxy_read_timeout 600s;" in conf
        # The same configuration, moved from ports 80/443 of every address to a free port on loopback.
        port, plain = free_port_block(1), free_port_block(1)
        local = conf.replace("    listen [::]:80;\n", "").replace("listen 80;", f"listen 127.0.0.1:{plain};")
        local = local.replace("    listen [::]:443 ssl http2;\n", "").replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl;")
        with open(os.path.join(tmp, "coop.conf"), "w") as f:
            f.write(local)
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
                    f"http {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n"
                    f"  fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;\n"
                    f"  include {tmp}/coop.conf;\n}}\n")
        # The printed file as it is, checked by nginx itself.
        with open(os.path.join(tmp, "as-printed.conf"), "w") as f:
            f.write(f"pid {tmp}/t.pid;\nerror_log {tmp}/t.log;\nevents {{}}\nhttp {{\n  access_log off;\n"
                    f"  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n"
                    f"  fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;\n{conf}\n}}\n")
        checked = subprocess.run([nginx, "-t", "-p", tmp, "-c", os.path.join(tmp, "as-printed.conf")], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        proc = subprocess.Popen([nginx, "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            def up():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return proc.poll() is not None
            wait_for(up, what="nginx listening")
            assert proc.poll() is None, proc.stderr.read().decode()
            status, _, body = get(port, f"matrix.{DOMAIN}", "/_matrix/client/versions")
            assert status == 200 and b"v1.1" in body, (status, body[:200])
            status, _, body = get(port, DOMAIN, "/portal/")
            assert status == 200 and b"Sign in" in body, (status, body[:200])
            status, _, body = get(port, DOMAIN, "/.well-known/matrix/client")
            assert status == 200 and b"m.homeserver" in body, (status, body[:200])
            status, headers, _ = get(port, DOMAIN, "/.well-known/caldav")
            assert status in (301, 302, 307, 308) and "/dav/" in headers.get("Location", ""), (status, headers)
            status, _, body = get(port, f"dav.{DOMAIN}", "/dav/", method="OPTIONS")
            assert status in (200, 204), status
            status, _, body = get(port, f"map.{DOMAIN}", "/tiles/assets/maplibre-gl.js")
            assert status == 200 and b"maplibre" in body[:4000].lower(), (status, body[:200])
            status, _, body = get(port, f"map.{DOMAIN}", "/tiles/")
            assert status == 200 and body.startswith(b"["), (status, body[:200])
            # Port 80 sends browsers to https, but lets an ACME server's HTTP-01 fetch through
            # to coop, which answers what its ACME client published (run/acme/http-01/TOKEN).
            challenges = os.path.join(shard.home, "run", "acme", "http-01")
            os.makedirs(challenges, exist_ok=True)
            with open(os.path.join(challenges, "tok_EN-1"), "w") as f:
                f.write("tok_EN-1.thumbprint")
            for host in (f"matrix.{DOMAIN}", DOMAIN, f"dav.{DOMAIN}", f"map.{DOMAIN}", f"docs.{DOMAIN}"):
                conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
                conn.request("GET", "/.well-known/acme-challenge/tok_EN-1", headers={"Host": host})
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, b"tok_EN-1.thumbprint"), host
                conn.request("GET", "/_matrix/client/versions", headers={"Host": host})
                response = conn.getresponse()
                response.read()
                assert response.status == 301 and response.getheader("Location").startswith("https://"), host
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shard.coop("down")


def test_caddy_configuration_validates():
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        shard.init()
        conf = shard.coop("proxy", "caddy").stdout
        assert f"matrix.{DOMAIN} {{" in conf and "reverse_proxy 127.0.0.1:" in conf and "handle /.well-known/matrix/*" in conf
        caddy = shutil.which("caddy")
        assert caddy, "caddy is not installed: run scripts/install-deps"
        path = os.path.join(tmp, "Caddyfile")
        with open(path, "w") as f:
            f.write(conf)
        checked = subprocess.run([caddy, "validate", "--config", path, "--adapter", "caddyfile"],
                                 capture_output=True, text=True, env=dict(os.environ, HOME=tmp, XDG_DATA_HOME=tmp))
        assert checked.returncode == 0, checked.stdout + checked.stderr


if __name__ == "__main__":
    run_tests([test_nginx_in_front_of_a_shard, test_caddy_configuration_validates])
