#!/usr/bin/env python3
"""Fills a campaign with synthetic sipas-individual responses through POST /api/v1/responses/batch.

Usage: load_campaign.py BASE_URL KEY CAMPAIGN COMMUNES_CSV TOTAL [CONNECTIONS] [SPREAD]

SPREAD `agency` (default): each batch holds the responses of 8 neighbouring communes, the way a
one-stop-shop system posts its own agency's responses; successive batches walk through all 3,321
communes. SPREAD `national`: each batch spreads its 1,000 responses over 1,000 communes (the worst
case for the tallies: every batch touches about ten thousand tally rows).

Each province gets its own satisfaction level (75% to 91% of answers 4 or 5) so that the figures
vary like real ones. A few dozen batch bodies are generated once and re-posted with fresh client
ids and agency codes, so the generator costs little next to the server. Prints the intake rate.
"""
import csv
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

base, key, campaign, communes_csv, total = sys.argv[1:6]
total = int(total)
connections = int(sys.argv[6]) if len(sys.argv) > 6 else 3
spread = sys.argv[7] if len(sys.argv) > 7 else "agency"
BATCH = 1000
TEMPLATES = 24
GROUPS = 8  # communes per batch with the `agency` spread

communes = []
with open(communes_csv, encoding="utf-8") as f:
    for row in csv.DictReader(f):
        if row["level"] == "commune":
            communes.append((row["code"], row["parent_code"]))
provinces = sorted({p for _, p in communes})
rng = random.Random(2026)
level = {p: rng.uniform(0.75, 0.91) for p in provinces}

def definition():
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    conn.request("GET", "/api/v1/surveys/sipas-individual")
    return json.loads(conn.getresponse().read())


questions = definition()["questions"]


def answers(p):
    out = {}
    for q in questions:
        if q["kind"] == "scale":
            if rng.random() < 0.04:
                continue  # "no experience of that service"
            out[q["id"]] = rng.choice([4, 5]) if rng.random() < p else rng.choice([1, 2, 3])
        elif q["kind"] == "single_choice":
            out[q["id"]] = rng.choice(q["options"])["value"]
    return out


LEVELS = [0.75 + 0.16 * t / (TEMPLATES - 1) for t in range(TEMPLATES)]


def template(t):
    """A batch body at satisfaction level LEVELS[t]; agency codes are placeholders @@Gk@@ (agency
    spread) or real codes spread over the nation (national spread)."""
    items = []
    for i in range(BATCH):
        if spread == "agency":
            agency = f"@@G{i * GROUPS // BATCH}@@"
            p = LEVELS[t]
        else:
            agency, province = communes[(t * BATCH + i * 7919) % len(communes)]
            p = level[province]
        items.append({
            "client_id": f"CLIENTPFX-{i:04d}",
            "campaign": campaign, "agency": agency, "respondent_type": "individual", "answers": answers(p),
        })
    return json.dumps({"items": items}).encode()


def body_for(n):
    """The n-th batch: fresh client ids and, with the agency spread, the next 8 communes."""
    # Client ids are idempotency keys of the API key: unique across campaigns loaded with it.
    prefix = f"{campaign}-{n:09d}".encode()
    if spread != "agency":
        return bodies[n % TEMPLATES].replace(b"CLIENTPFX", prefix)
    first = (n * GROUPS) % len(communes)
    group = [communes[(first + g) % len(communes)] for g in range(GROUPS)]
    p = level[group[0][1]]
    t = min(range(TEMPLATES), key=lambda k: abs(LEVELS[k] - p))
    body = bodies[t].replace(b"CLIENTPFX", prefix)
    for g, (code, _) in enumerate(group):
        body = body.replace(f"@@G{g}@@".encode(), code.encode())
    return body


print(f"generating {TEMPLATES} batch bodies ({spread} spread, {len(communes)} communes)…", file=sys.stderr)
bodies = [template(t) for t in range(TEMPLATES)]
posts = (total + BATCH - 1) // BATCH
next_post = 0
lock = threading.Lock()
stored = 0
failures = 0


def worker(worker_id):
    global next_post, stored, failures
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while True:
        with lock:
            if next_post >= posts:
                return
            n = next_post
            next_post += 1
        body = body_for(n)
        conn.request("POST", "/api/v1/responses/batch", body, headers)
        response = conn.getresponse()
        payload = response.read()
        ok = payload.count(b'"status":201')
        with lock:
            stored += ok
            failures += BATCH - ok
            if n % 200 == 0:
                print(f"  {stored:,} stored", file=sys.stderr)


started = time.time()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - started
print(f"intake: {stored:,} responses stored in {elapsed:.0f} s = {stored / elapsed:,.0f} responses/s "
      f"({failures} refused) through POST /api/v1/responses/batch, {connections} connections, {spread} spread")
