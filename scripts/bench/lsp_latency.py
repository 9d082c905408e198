#!/usr/bin/env python3
"""Latency of `topsail lsp` diagnostics: open a generated N-step pipeline,
then make edits (break a need, fix it) and time from sending each didChange
to receiving its publishDiagnostics. Prints min / median / p90 / max in ms.

usage: lsp_latency.py TOPSAIL_BIN PIPELINE.topsail [--edits 40]
"""
import json
import statistics
import subprocess
import sys
import time


def send(proc, msg):
    body = json.dumps(msg).encode()
    proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    proc.stdin.flush()


def recv(proc):
    length = None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("the server closed its output")
        line = line.strip()
        if not line:
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(proc.stdout.read(length))


def wait_diagnostics(proc):
    while True:
        msg = recv(proc)
        if msg.get("method") == "textDocument/publishDiagnostics":
            return msg["params"]["diagnostics"]


def main():
    binary, path = sys.argv[1], sys.argv[2]
    edits = int(sys.argv[sys.argv.index("--edits") + 1]) if "--edits" in sys.argv else 40
    text = open(path).read()
    steps = sum(1 for l in text.splitlines() if l and not l[0].isspace() and l.split(":")[0].startswith("step-"))
    uri = "file://" + path
    proc = subprocess.Popen([binary, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
    recv(proc)
    send(proc, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
    send(proc, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "topsail", "version": 1, "text": text}}})
    wait_diagnostics(proc)
    # Alternate a broken and a fixed file: the last step needs an unknown step.
    last = [l for l in text.splitlines() if l.startswith("step-")][-1]
    broken = text.replace(last, last.rstrip() + " no-such-step", 1)
    times = []
    counts = []
    for i in range(edits):
        new = broken if i % 2 == 0 else text
        t0 = time.perf_counter()
        send(proc, {"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": i + 2}, "contentChanges": [{"text": new}]}})
        diags = wait_diagnostics(proc)
        times.append((time.perf_counter() - t0) * 1000)
        counts.append(len([d for d in diags if d.get("severity") == 1]))
    send(proc, {"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
    recv(proc)
    send(proc, {"jsonrpc": "2.0", "method": "exit"})
    proc.wait(timeout=10)
    assert counts[0] >= 1 and counts[1] == 0, f"unexpected diagnostics counts {counts[:4]}"
    times.sort()
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"{steps} steps, {len(text)} bytes, {edits} edits: diagnostics after a change "
          f"min {times[0]:.1f} ms, median {statistics.median(times):.1f} ms, "
          f"p90 {p90:.1f} ms, max {times[-1]:.1f} ms")


if __name__ == "__main__":
    main()
