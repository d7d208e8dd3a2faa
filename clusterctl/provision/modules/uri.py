"""``uri``: an HTTP request made FROM the host (so it sees what the host sees), with Ansible's result.

The request runs on the host with ``curl`` if present, else ``wget``, else a minimal HTTP/1.0
client over bash's ``/dev/tcp`` (plain http only). Headers and body come back in one command's
output (body base64-encoded), parsed by ``parse_http_response``. ``status_code`` (one or a list)
decides success; ``return_content`` and JSON responses fill ``content``/``json``; ``body_format:
json`` serialises ``body`` and sets the content type. Like Ansible's uri it is skipped in check
mode (a request may change the far side). Tests aim it only at servers on the lab host's loopback.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from urllib.parse import urlencode, urlsplit

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.results import failed, ok, skipped

q = shlex.quote
CLIENTS = ("curl", "wget", "devtcp")


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def validate_uri(args: dict) -> None:
    if args.get("url") is None:
        raise ModuleArgError("uri: missing required arguments: url")
    fmt = args.get("body_format")
    if fmt is not None and fmt not in ("raw", "json", "form-urlencoded"):
        raise ModuleArgError(f"uri: body_format must be raw, json or form-urlencoded, got {fmt}")


def _body(args: dict, headers: dict) -> bytes | None:
    body = args.get("body")
    if body is None:
        return None
    fmt = args.get("body_format") or "raw"
    lower = {k.lower() for k in headers}
    if fmt == "json":
        if "content-type" not in lower:
            headers["Content-Type"] = "application/json"
        return (body if isinstance(body, str) else json.dumps(body)).encode()
    if fmt == "form-urlencoded":
        if "content-type" not in lower:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return (body if isinstance(body, str) else urlencode(body, doseq=True)).encode()
    return body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else json.dumps(body).encode()


def _request_script(client: str, url: str, method: str, headers: dict, has_body: bool, timeout: float,
                    follow: bool, validate_certs: bool, auth: tuple[str, str] | None) -> str:
    hdr_args = " ".join(f"-H {q(f'{k}: {v}')}" for k, v in headers.items())
    t = max(1, int(timeout))
    pre = 't=$(mktemp -d /tmp/.clusterctl-uri.XXXXXXXX) || exit 90; trap \'rm -rf -- "$t"\' EXIT; cat > "$t/in"\n'
    post = 'echo "RC $rc"; echo "--HEADERS--"; cat "$t/h" 2>/dev/null; echo "--BODY--"; base64 "$t/b" 2>/dev/null; exit 0\n'
    body_file = '"$t/in"'
    if client == "curl":
        data_opt = f"--data-binary @{body_file} " if has_body else ""
        cmd = (f"curl -sS -X {q(method)} {hdr_args} --max-time {t} -D \"$t/h\" -o \"$t/b\" "
               f"{'-L ' if follow else ''}{'-k ' if not validate_certs else ''}"
               f"{('-u ' + q(auth[0] + ':' + auth[1]) + ' ') if auth else ''}"
               f"{data_opt}-- {q(url)} 2>\"$t/e\"; rc=$?; cat \"$t/e\" >&2\n")
        return pre + cmd + post
    if client == "wget":
        body_opt = f"--body-file={body_file} " if has_body else ""
        hdrs = " ".join(f"--header={q(f'{k}: {v}')}" for k, v in headers.items())
        cmd = (f"wget -q -S --content-on-error --method={q(method)} {hdrs} -T {t} -O \"$t/b\" "
               f"{'' if follow else '--max-redirect=0 '}{'--no-check-certificate ' if not validate_certs else ''}"
               f"{('--auth-no-challenge --user=' + q(auth[0]) + ' --password=' + q(auth[1]) + ' ') if auth else ''}"
               f"{body_opt}{q(url)} 2>\"$t/e\"; rc=$?; "
               "sed -n 's/^  //p' \"$t/e\" > \"$t/h\"; [ $rc -eq 8 ] && rc=0\n")
        return pre + cmd + post
    parts = urlsplit(url)
    if parts.scheme != "http":
        return "echo 'only http:// URLs without curl or wget on the host' >&2; exit 91\n"
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.0", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if auth:
        lines.append("Authorization: Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    request_head = "\r\n".join(lines) + "\r\n"
    len_arg = '"$len"' if has_body else "0"
    cmd = (f"command -v bash >/dev/null || {{ echo 'no curl, wget or bash on the host' >&2; exit 92; }}\n"
           f"len=$(wc -c < \"$t/in\")\n"
           f"timeout {t} bash -c 'exec 3<>/dev/tcp/$0/$1 || exit 7; {{ printf \"%s\" \"$2\"; [ \"$3\" -gt 0 ] && printf \"Content-Length: %s\\r\\n\" \"$3\"; printf \"\\r\\n\"; cat \"$4\"; }} >&3; cat <&3 > \"$5\"' "
           f"{q(host)} {port} {q(request_head)} {len_arg} \"$t/in\" \"$t/raw\"; rc=$?\n"
           "sed -n '1,/^\\r\\{0,1\\}$/p' \"$t/raw\" | tr -d '\\r' > \"$t/h\"\n"
           "hl=$(sed -n '1,/^\\r\\{0,1\\}$/p' \"$t/raw\" | wc -c); tail -c +$((hl + 1)) \"$t/raw\" > \"$t/b\"\n")
    return pre + cmd + post


def parse_http_response(text: str) -> dict:
    """Pure parser of the request script's output -> rc, status, reason, headers (last response), body bytes."""
    rc = 0
    head: list[str] = []
    body_b64: list[str] = []
    section = None
    for line in text.splitlines():
        if section is None and line.startswith("RC "):
            rc = int(line[3:].strip() or 0)
        elif line == "--HEADERS--":
            section = "h"
        elif line == "--BODY--":
            section = "b"
        elif section == "h":
            head.append(line.rstrip("\r"))
        elif section == "b":
            body_b64.append(line)
    status, reason, headers = -1, "", {}
    for line in head:
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
            reason = parts[2] if len(parts) > 2 else ""
            headers = {}
        elif ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip()] = v.strip()
    body = base64.b64decode("".join(body_b64)) if body_b64 else b""
    return {"rc": rc, "status": status, "reason": reason, "headers": headers, "body": body}


async def _pick_client(ctx: ModuleContext, forced: str | None) -> str:
    if forced:
        return forced
    res = await ctx.run("command -v curl >/dev/null 2>&1 && echo curl || { command -v wget >/dev/null 2>&1 && echo wget; } || echo devtcp")
    return res.stdout.strip() or "devtcp"


async def run_uri(ctx: ModuleContext, args: dict) -> dict:
    if ctx.check_mode:
        return skipped("uri does not run in check mode")
    url = str(args["url"])
    method = str(args.get("method") or "GET").upper()
    headers = {str(k): str(v) for k, v in (args.get("headers") or {}).items()}
    body = _body(args, headers)
    codes = args.get("status_code", [200])
    codes = [int(c) for c in (codes if isinstance(codes, list) else str(codes).split(","))]
    auth = (str(args["url_username"]), str(args.get("url_password", ""))) if args.get("url_username") else None
    if args.get("user") is not None:
        auth = (str(args["user"]), str(args.get("password", "")))
    client = await _pick_client(ctx, args.get("_client"))
    script = _request_script(client, url, method, headers, body is not None, float(args.get("timeout", 30)),
                             (args.get("follow_redirects") or "safe") not in ("none", "no", False),
                             _bool(args.get("validate_certs"), True), auth)
    t0 = time.monotonic()
    res = await ctx.run(script, stdin=body or b"")
    elapsed = round(time.monotonic() - t0, 3)
    if res.rc != 0:
        return failed(f"Request to {url} could not run on the host: {res.stderr.strip()}", url=url, status=-1)
    parsed = parse_http_response(res.stdout)
    result = ok(False, url=url, status=parsed["status"], elapsed=elapsed, redirected=False, cookies={})
    for k, v in parsed["headers"].items():
        result[k.lower().replace("-", "_")] = v
    content = parsed["body"]
    ctype = parsed["headers"].get("Content-Type", parsed["headers"].get("content-type", ""))
    text = content.decode("utf-8", errors="replace")
    if _bool(args.get("return_content")) or "json" in ctype:
        if _bool(args.get("return_content")):
            result["content"] = text
        if "json" in ctype:
            try:
                result["json"] = json.loads(text)
            except ValueError:
                pass
    if parsed["status"] < 0:
        err = res.stderr.strip() or "no response"
        result.update(failed=True, msg=f"Status code was -1 and not {codes}: Request failed: {err}")
        return result
    if parsed["status"] not in codes:
        result.update(failed=True, msg=f"Status code was {parsed['status']} and not {codes}: HTTP Error {parsed['status']}: {parsed['reason']}")
        if "content" not in result:
            result["content"] = text
        return result
    result["msg"] = f"OK ({len(content)} bytes)"
    if args.get("dest") and not ctx.check_mode:
        from clusterctl.provision.modules.remote_file import probe_one, write_file, sha1

        cur = await probe_one(ctx, str(args["dest"]))
        if cur.checksum != sha1(content):
            await write_file(ctx, str(args["dest"]), content, cur)
            result["changed"] = True
    return result
