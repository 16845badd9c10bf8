#!/usr/bin/env python3
"""Photos per second through `gpen serve`: starts the server, sends N copies of one photo to
POST /api/enhance from C concurrent clients, and prints the rate, latency percentiles, and what
/api/health says of the GPU (GPEN batches and faces: how well concurrent photos shared forwards).
Python standard library only, so it runs on the GPU machine's image as it is.

  python3 tools/bench/serve_photos.py --gpen build/gpen --model W --detector D --photo P \\
      [--requests 256] [--clients 16] [--warmup 16] -- [extra gpen serve options, e.g. --device cuda]
"""
import argparse
import concurrent.futures
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid


def multipart(field, filename, data, fields):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 f'Content-Type: image/jpeg\r\n\r\n'.encode() + data + b'\r\n')
    parts.append(f'--{boundary}--\r\n'.encode())
    return b''.join(parts), f'multipart/form-data; boundary={boundary}'


def enhance(base, body, ctype):
    t0 = time.perf_counter()
    req = urllib.request.Request(base + '/api/enhance', data=body, headers={'Content-Type': ctype})
    with urllib.request.urlopen(req, timeout=300) as r:
        r.read()
        return r.status, time.perf_counter() - t0


def run(base, body, ctype, n, clients):
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        t0 = time.perf_counter()
        results = list(pool.map(lambda _: enhance(base, body, ctype), range(n)))
        return time.perf_counter() - t0, results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--gpen', required=True)
    ap.add_argument('--model', required=True)
    ap.add_argument('--detector', required=True)
    ap.add_argument('--photo', required=True)
    ap.add_argument('--requests', type=int, default=256)
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--warmup', type=int, default=16)
    ap.add_argument('serve_args', nargs='*')
    a = ap.parse_args()

    cmd = [a.gpen, 'serve', '--port', '0', '--quiet', '--model', a.model, '--detector', a.detector,
           '--queue', str(4 * a.clients)] + a.serve_args
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    try:
        line = server.stdout.readline()
        m = re.search(r'http://([^/]+)/', line)
        if not m:
            sys.exit(f'gpen serve did not start: {line!r}')
        base = 'http://' + m.group(1)
        body, ctype = multipart('image', 'photo.jpg', open(a.photo, 'rb').read(), {'format': 'jpeg'})
        run(base, body, ctype, a.warmup, a.clients)  # compiles every batch size, fills caches
        seconds, results = run(base, body, ctype, a.requests, a.clients)
        statuses = {}
        for status, _ in results:
            statuses[status] = statuses.get(status, 0) + 1
        lat = sorted(t for _, t in results)
        health = json.load(urllib.request.urlopen(base + '/api/health'))
        print(f'{a.requests} photos from {a.clients} clients in {seconds:.2f} s = {a.requests / seconds:.1f} photos/s '
              f'(after {a.warmup} warm-up requests); statuses {statuses}')
        print(f'latency p50 {statistics.median(lat) * 1000:.0f} ms, p90 {lat[int(0.9 * (len(lat) - 1))] * 1000:.0f} ms, '
              f'max {lat[-1] * 1000:.0f} ms')
        print('device in use:', health.get('device_in_use'), '| devices:', json.dumps(health.get('devices')))
        print('last image:', json.dumps(health.get('queue', {}).get('last_image')))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == '__main__':
    main()
