"""Soak benchmark of the Step Functions worker (issue 5), against the local
emulator (scripts/services start): N executions (default 200) of a 10-step
pipeline (one step, a fan of eight, one join), W workers (default 4) killed
with SIGKILL at random and restarted, and the report:

  executions succeeded, tasks lost (units that never succeeded), tasks
  retried after a kill (ActivityTimedOut / WorkerShutdown in the histories),
  and per-task time in the worker (poll answered -> SendTaskSuccess answered)
  against a plain `docker run --rm` of the same image.

Usage: .venv/bin/python scripts/bench/soak.py TOPSAIL [--executions N]
       [--workers W] [--host] [--kill-every SECONDS]
"""

import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import boto3

IMAGE = "topsail-test/busybox:latest"
ap = argparse.ArgumentParser()
ap.add_argument("topsail")
ap.add_argument("--executions", type=int, default=200)
ap.add_argument("--workers", type=int, default=4)
ap.add_argument("--concurrency", type=int, default=2)
ap.add_argument("--in-flight", type=int, default=20)
ap.add_argument("--kill-every", type=float, default=5.0)
ap.add_argument("--host", action="store_true", help="host steps instead of containers")
ap.add_argument("--no-logs", action="store_true", help="workers ship no step logs (to measure their cost)")
args = ap.parse_args()

endpoint = open("target/services/sfn.endpoint").read().strip()
env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
           AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", NO_COLOR="1")
sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
work = tempfile.mkdtemp(prefix="topsail-soak-")
# Removed however the script ends (a failed deploy, an interrupt).
atexit.register(shutil.rmtree, work, True)
image = "" if args.host else f'image "{IMAGE}"\n'
steps = ["first:\n    heartbeat 3s\n    output V\n    run echo \"V=1\" >> \"$TOPSAIL_OUTPUT\"\n"]
for i in range(8):
    steps.append(f"fan{i}: first\n    heartbeat 3s\n    run echo fan {i} {{{{ first.V }}}}\n")
steps.append("join: " + " ".join(f"fan{i}" for i in range(8)) + "\n    heartbeat 3s\n    run echo joined\n")
open(f"{work}/soak.topsail", "w").write(f"pipeline soak\n{image}\n" + "\n".join(steps))
machine = f"soak-{os.getpid()}"
out = subprocess.run([args.topsail, "deploy", "soak.topsail", "--name", machine, "--role-arn",
                      "arn:aws:iam::123456789012:role/soak"], cwd=work, env=env,
                     capture_output=True, text=True, check=True).stdout
activity = re.search(r"^activity \w+: (\S+)", out, re.M).group(1)
sm = re.search(r"^state machine \w+: (\S+)", out, re.M).group(1)

logs, workers, lock = [], {}, threading.Lock()
flags = ["--allow-host"] if args.host else ["--allow-image", "topsail-test/*"]
if args.no_logs:
    flags.append("--no-logs")


def start_worker(i):
    log = open(f"{work}/worker-{i}-{time.time_ns()}.log", "w")
    logs.append(log.name)
    workers[i] = subprocess.Popen(
        [args.topsail, "worker", "--activity-arn", activity, "--name", f"w{i}",
         "--concurrency", str(args.concurrency), "--grace", "5s", *flags],
        cwd=work, env=dict(env, TMPDIR=work), stdout=log, stderr=subprocess.STDOUT)


for i in range(args.workers):
    start_worker(i)
kills, stop = 0, threading.Event()


def killer():
    global kills
    while not stop.wait(random.uniform(0.5, 1.5) * args.kill_every):
        with lock:
            i = random.randrange(args.workers)
            workers[i].send_signal(signal.SIGKILL)
            workers[i].wait()
            kills += 1
            start_worker(i)


threading.Thread(target=killer, daemon=True).start()
t0 = time.time()
pending, done = [], {}
for n in range(args.executions):
    while len(pending) >= args.in_flight:
        time.sleep(0.2)
        for arn in list(pending):
            st = sfn.describe_execution(executionArn=arn)["status"]
            if st != "RUNNING":
                pending.remove(arn)
                done[arn] = st
    arn = sfn.start_execution(stateMachineArn=sm, name=f"soak-{n}",
                              input=json.dumps({"params": {}}))["executionArn"]
    pending.append(arn)
deadline = time.time() + 600
while pending and time.time() < deadline:
    time.sleep(0.5)
    for arn in list(pending):
        st = sfn.describe_execution(executionArn=arn)["status"]
        if st != "RUNNING":
            pending.remove(arn)
            done[arn] = st
wall = time.time() - t0
stop.set()
with lock:
    for p in workers.values():
        p.send_signal(signal.SIGTERM)
    for p in workers.values():
        p.wait()

succeeded = sum(1 for s in done.values() if s == "SUCCEEDED")
lost = retried = 0
for arn in list(done) + pending:
    units = {}
    for ev in sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]:
        t = ev["type"]
        if t == "ActivityScheduled":
            units.setdefault(json.loads(ev["activityScheduledEventDetails"]["input"])["step"], False)
        elif t == "ActivitySucceeded":
            pass
        elif t == "ActivityTimedOut" or (t == "ActivityFailed" and ev["activityFailedEventDetails"].get("error") == "topsail.WorkerShutdown"):
            retried += 1
    succeeded_steps = sum(1 for ev in sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                          if ev["type"] == "ActivitySucceeded")
    lost += 10 - succeeded_steps

# Step logs (issue 15): every succeeded unit's line must be in CloudWatch Logs.
log_lost = log_checked = 0
if not args.no_logs:
    cwl = boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    group = f"/topsail/{machine}"
    for arn in done:
        if done[arn] != "SUCCEEDED":
            continue
        name = arn.rsplit(":", 1)[1]
        msgs, token = [], None
        while True:
            kw = dict(logGroupName=group, logStreamNamePrefix=f"{name}/")
            if token:
                kw["nextToken"] = token
            page = cwl.filter_log_events(**kw)
            msgs += [e["message"] for e in page["events"]]
            token = page.get("nextToken")
            if not token or not page["events"]:
                break
        expected = [f"fan {i} 1" for i in range(8)] + ["joined"]
        log_checked += len(expected)
        log_lost += sum(1 for m in expected if m not in msgs)

handled = []
for name in logs:
    for line in open(name):
        m = re.search(r"handled in (\d+) ms", line)
        if m:
            handled.append(int(m.group(1)))
plain = []
if not args.host:
    for _ in range(10):
        t = time.time()
        subprocess.run(["docker", "run", "--rm", IMAGE, "true"], check=True, capture_output=True)
        plain.append((time.time() - t) * 1000)
# A SIGKILLed worker cannot remove the container it was running.
left = subprocess.run(["docker", "ps", "-aq", "--filter", "label=topsail.pipeline=soak"],
                      capture_output=True, text=True).stdout.split() if not args.host else []
if left:
    subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
subprocess.run(["rm", "-rf", work])
print(f"executions: {len(done) + len(pending)} started, {succeeded} succeeded, "
      f"{len(pending)} unfinished after the deadline; wall {wall:.0f}s")
print(f"containers left behind by killed workers (removed now): {len(left)}")
print(f"workers: {args.workers} x concurrency {args.concurrency}; SIGKILLs: {kills}; "
      f"tasks retried after a lost worker: {retried}; tasks lost: {lost}")
if not args.no_logs:
    print(f"step log lines checked in CloudWatch Logs: {log_checked}; lost: {log_lost}")
if handled:
    q = statistics.quantiles(handled, n=20)
    print(f"per task in the worker (poll answered -> SendTaskSuccess answered), "
          f"{len(handled)} tasks: median {statistics.median(handled):.0f} ms, p95 {q[18]:.0f} ms")
if plain:
    print(f"plain `docker run --rm {IMAGE} true`: median {statistics.median(plain):.0f} ms "
          f"-> worker overhead about {statistics.median(handled) - statistics.median(plain):.0f} ms per task")
sys.exit(0 if succeeded == args.executions and lost == 0 and log_lost == 0 else 1)
