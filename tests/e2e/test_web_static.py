"""The web page's files (src/server/static.c): content types, caching,
conditional requests, 404s, the placeholder when no page is installed, and
request paths that try to leave web_root.

Each test builds its own web root in a temporary directory, with files
beside it that must never be served: a secret next to the root, a symbolic
link inside the root pointing at it, a linked directory, dotfiles.
"""
import os
import socket
import tempfile
import time

import pytest

from parleytest import Server

SECRET = b"top secret: outside the web root"
HTML = b"<!doctype html><title>parley test page</title><p>hello</p>\n"
JS = b"export const x = 1;\n"
CSS = b"body { color: black; }\n"


def wait_log(server, text, timeout=10):
    """The server's stderr is read by another thread: wait for a line."""
    end = time.time() + timeout
    while text not in server.log():
        assert time.time() < end, "no %r in the log:\n%s" % (text, server.log())
        time.sleep(0.02)


def raw_request(port, target, method="GET", headers=()):
    """Sends one request with the target exactly as given (no client-side
    normalisation); returns (status, headers dict, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, target)
        for k, v in headers:
            req += "%s: %s\r\n" % (k, v)
        s.sendall(req.encode("latin-1") + b"\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


@pytest.fixture(scope="module")
def site():
    """A web root with a page, hashed assets and traps around it, and a
    parleyd serving it."""
    base = tempfile.mkdtemp(prefix="parley-web-")
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "assets", "deep"))
    with open(os.path.join(base, "secret.txt"), "wb") as f:
        f.write(SECRET)
    os.makedirs(os.path.join(base, "outside"))
    with open(os.path.join(base, "outside", "also-secret.txt"), "wb") as f:
        f.write(SECRET)
    files = {
        "index.html": HTML,
        "assets/app.0123456789ab.js": JS,
        "assets/style.abcdef012345.css": CSS,
        "assets/deep/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "notes.txt": b"plain text\n",
        "data.bin": b"\x00\x01\x02",
        ".env": SECRET,
        "assets/.hidden.js": SECRET,
        "name with space.txt": SECRET,
    }
    for rel, content in files.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(content)
    os.makedirs(os.path.join(root, ".git"))
    with open(os.path.join(root, ".git", "config"), "wb") as f:
        f.write(SECRET)
    os.symlink(os.path.join(base, "secret.txt"), os.path.join(root, "link.txt"))
    os.symlink(os.path.join(base, "outside"), os.path.join(root, "linkdir"))
    os.symlink("../secret.txt", os.path.join(root, "assets", "rel-link.js"))
    os.mkfifo(os.path.join(root, "fifo.js"))
    with Server("--web-root", root) as s:
        s.base = base
        s.root = root
        yield s


def test_index_and_assets_with_types_and_caching(site):
    st, h, body = raw_request(site.http_port, "/")
    assert st == 200 and body == HTML
    assert h["content-type"] == "text/html; charset=utf-8"
    assert h["cache-control"] == "no-cache"
    assert h["etag"].startswith('"') and h["etag"].endswith('"')
    assert "last-modified" in h
    assert h["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    st, h2, body = raw_request(site.http_port, "/index.html")
    assert st == 200 and body == HTML and h2["etag"] == h["etag"]

    st, h, body = raw_request(site.http_port, "/assets/app.0123456789ab.js")
    assert st == 200 and body == JS
    assert h["content-type"] == "text/javascript; charset=utf-8"
    assert h["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-security-policy" not in h
    st, h, body = raw_request(site.http_port, "/assets/style.abcdef012345.css")
    assert st == 200 and h["content-type"] == "text/css; charset=utf-8" and body == CSS
    st, h, _ = raw_request(site.http_port, "/assets/deep/logo.svg")
    assert st == 200 and h["content-type"] == "image/svg+xml" and h["cache-control"] == "no-cache"
    st, h, _ = raw_request(site.http_port, "/notes.txt")
    assert st == 200 and h["content-type"] == "text/plain; charset=utf-8"
    st, h, body = raw_request(site.http_port, "/data.bin")
    assert st == 200 and h["content-type"] == "application/octet-stream" and body == b"\x00\x01\x02"


def test_conditional_get_and_head(site):
    _, h, _ = raw_request(site.http_port, "/")
    etag = h["etag"]
    st, h304, body = raw_request(site.http_port, "/", headers=[("If-None-Match", etag)])
    assert st == 304 and body == b"" and h304["etag"] == etag
    st, _, _ = raw_request(site.http_port, "/", headers=[("If-None-Match", 'W/"x", ' + "W/" + etag)])
    assert st == 304
    st, _, _ = raw_request(site.http_port, "/", headers=[("If-None-Match", "*")])
    assert st == 304
    st, _, body = raw_request(site.http_port, "/", headers=[("If-None-Match", '"other"')])
    assert st == 200 and body == HTML
    st, h, body = raw_request(site.http_port, "/assets/app.0123456789ab.js", method="HEAD")
    assert st == 200 and body == b"" and int(h["content-length"]) == len(JS)


def test_unknown_files_are_404_and_the_api_is_untouched(site):
    for target in ["/nope.html", "/assets/", "/assets", "/assets/app.js", "/INDEX.HTML", "/index.html/"]:
        st, h, body = raw_request(site.http_port, target)
        assert st == 404, target
        assert h["cache-control"] == "no-store"
        assert h["content-type"] == "application/json", "unknown paths get the API's JSON 404"
        assert SECRET not in body
    st, h, body = raw_request(site.http_port, "/v1/nothing")
    assert st == 404 and h["content-type"] == "application/json"
    st, _, _ = raw_request(site.http_port, "/healthz")
    assert st == 200
    st, _, _ = raw_request(site.http_port, "/", method="POST")
    assert st in (404, 405)


TRAVERSALS = [
    # plain and percent-encoded dot segments
    "/../secret.txt",
    "/../../../../../../etc/passwd",
    "/assets/../../secret.txt",
    "/assets/../index.html",
    "/./index.html",
    "/assets/./app.0123456789ab.js",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/assets/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/assets%2f..%2f..%2fsecret.txt",
    "/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/.%2e/secret.txt",
    # double encoding arrives as a literal %2e after one decode
    "/%252e%252e/secret.txt",
    # backslashes, overlong UTF-8, NUL
    "/..\\secret.txt",
    "/assets\\..\\..\\secret.txt",
    "/%5c..%5csecret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/index.html%00.js",
    # empty segments and absolute forms
    "//secret.txt",
    "//etc/passwd",
    "/assets//app.0123456789ab.js",
    # links, hidden files and odd names inside the root
    "/link.txt",
    "/linkdir/also-secret.txt",
    "/linkdir/",
    "/assets/rel-link.js",
    "/fifo.js",
    "/.env",
    "/%2eenv",
    "/assets/.hidden.js",
    "/.git/config",
    "/name with space.txt",
    "/name%20with%20space.txt",
    # long and deep
    "/" + "a/" * 200 + "secret.txt",
    "/" + "../" * 300 + "etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_paths_that_try_to_leave_the_root(site, target):
    st, _, body = raw_request(site.http_port, target)
    assert SECRET not in body, target
    assert b"root:" not in body, target
    assert st in (400, 404), (target, st)
    # The same path through HEAD answers the same way.
    st2, _, _ = raw_request(site.http_port, target, method="HEAD")
    assert st2 == st, target


def test_server_survives_traversal_attempts(site):
    st, _, body = raw_request(site.http_port, "/")
    assert st == 200 and body == HTML
    wait_log(site, '"web page loaded"')
    wait_log(site, '"symbolic link"')


def test_no_page_installed_shows_a_placeholder():
    empty = tempfile.mkdtemp(prefix="parley-noweb-")
    with Server("--web-root", os.path.join(empty, "missing")) as s:
        st, h, body = raw_request(s.http_port, "/")
        assert st == 200 and h["content-type"].startswith("text/html")
        assert b"not installed" in body and b"web_root" in body
        st, _, _ = raw_request(s.http_port, "/assets/app.0123456789ab.js")
        assert st == 404
        wait_log(s, "web page not installed")
    # A directory without index.html is not a page either.
    with open(os.path.join(empty, "other.js"), "wb") as f:
        f.write(JS)
    with Server("--web-root", empty) as s:
        st, _, body = raw_request(s.http_port, "/")
        assert st == 200 and b"not installed" in body
        st, _, _ = raw_request(s.http_port, "/other.js")
        assert st == 404
