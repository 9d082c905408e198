"""Line-to-screen latency of cloud step logs (issue 15), on the local
emulator (scripts/services start): a host step prints `LAT <ns>` lines
(its own clock) every 250 ms; `topsail start --follow` reads them back from
CloudWatch Logs; each line's latency is the time it reached follow's stdout
less the time the step printed it. Reports median and p90 (goal < 2 s).

Usage: .venv/bin/python scripts/bench/log_latency.py TOPSAIL [--lines N] [--runs R]
"""

import argparse
import atexit
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("topsail")
ap.add_argument("--lines", type=int, default=40)
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()
topsail = os.path.realpath(args.topsail)

endpoint = open("target/services/sfn.endpoint").read().strip()
env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
           AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", NO_COLOR="1")
work = tempfile.mkdtemp(prefix="topsail-latency-")
# Removed however the script ends (a failed deploy, an interrupt).
atexit.register(shutil.rmtree, work, True)
open(f"{work}/p.topsail", "w").write(
    "pipeline latency\n\ntalk:\n    run:\n"
    f"        for i in $(seq {args.lines}); do echo \"LAT $(date +%s%N)\"; sleep 0.25; done\n")
machine = f"latency-{os.getpid()}"
out = subprocess.run([topsail, "deploy", "p.topsail", "--name", machine, "--role-arn",
                      "arn:aws:iam::123456789012:role/bench"], cwd=work, env=env,
                     capture_output=True, text=True, check=True).stdout
activity = re.search(r"^activity \w+: (\S+)", out, re.M).group(1)
worker = subprocess.Popen([topsail, "worker", "--activity-arn", activity, "--name", "wlat",
                           "--allow-host"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
lat = []
try:
    for r in range(args.runs):
        f = subprocess.Popen([topsail, "start", "p.topsail", "--machine", machine, "--name",
                              f"lat-{os.getpid()}-{r}", "--follow"], cwd=work, env=env,
                             stdout=subprocess.PIPE, text=True)
        for line in f.stdout:
            m = re.search(r"LAT (\d+)$", line.rstrip())
            if m:
                lat.append((time.time_ns() - int(m.group(1))) / 1e6)
        f.wait()
finally:
    worker.terminate()
    worker.wait()
    subprocess.run(["rm", "-rf", work])
if not lat:
    print("no LAT line reached the screen")
    sys.exit(1)
q = statistics.quantiles(lat, n=10)
print(f"line-to-screen latency over {len(lat)} lines ({args.runs} executions): "
      f"median {statistics.median(lat):.0f} ms, p90 {q[8]:.0f} ms, max {max(lat):.0f} ms")
sys.exit(0 if len(lat) == args.lines * args.runs else 1)
