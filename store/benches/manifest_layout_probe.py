#!/usr/bin/env python3
# python3 store/benches/manifest_layout_probe.py DIR [RECORDS]   (docs/benchmarks.md)
# One manifest record, two layouts, on this machine's disk: an append + fdatasync to one
# JSON-lines file, against a new file per record (O_EXCL create, write, fsync, fsync dir).
import os, sys, time
d = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
line = b'{"seq":0,"state":"committed","files":[' + b'x' * 600 + b']}\n'
def q(xs, p): return sorted(xs)[int(p * (len(xs) - 1))] * 1000
log = os.open(os.path.join(d, "log.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
a = []
for i in range(n):
    t = time.perf_counter(); os.write(log, line); os.fdatasync(log); a.append(time.perf_counter() - t)
os.makedirs(os.path.join(d, "records"), exist_ok=True)
dirfd = os.open(os.path.join(d, "records"), os.O_RDONLY)
b = []
for i in range(n):
    t = time.perf_counter()
    fd = os.open(os.path.join(d, "records", f"{i:020}.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, line); os.fsync(fd); os.close(fd); os.fsync(dirfd)
    b.append(time.perf_counter() - t)
print(f"append + fdatasync:        p50 {q(a,.5):.2f} ms  p99 {q(a,.99):.2f} ms")
print(f"file per record (2 syncs): p50 {q(b,.5):.2f} ms  p99 {q(b,.99):.2f} ms")
