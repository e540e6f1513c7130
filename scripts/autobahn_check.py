#!/usr/bin/env python3
"""Judge an Autobahn fuzzingclient report (index.json).

Fails when a case has a verdict we never accept, or got worse than the committed
expectation in scripts/autobahn/expected.json (case id -> behavior).
`--write-expected` rewrites that file from this report (do it on purpose, after
looking at what changed).

Usage: scripts/autobahn_check.py [--write-expected] [--expected FILE] REPORT/index.json
"""

import argparse
import collections
import json
import os
import sys

ACCEPTED_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
ACCEPTED_CLOSE = {"OK", "INFORMATIONAL"}
# Lower is better. INFORMATIONAL cases are informational for every server, so they
# rank with OK; anything unknown (FAILED, UNIMPLEMENTED, missing) ranks worst.
RANK = {"OK": 0, "INFORMATIONAL": 0, "NON-STRICT": 1, "UNIMPLEMENTED": 2}
WORST = 3

DEFAULT_EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "autobahn", "expected.json")


def case_key(case_id):
    # "9.10.2" sorts after "9.2.1": compare the numeric parts.
    return [int(p) if p.isdigit() else p for p in case_id.split(".")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", help="the report's index.json")
    ap.add_argument("--expected", default=DEFAULT_EXPECTED, help="expected file (case id -> behavior)")
    ap.add_argument("--write-expected", action="store_true", help="rewrite the expected file from this report")
    args = ap.parse_args()

    with open(args.index) as f:
        index = json.load(f)
    if len(index) != 1:
        sys.exit(f"autobahn_check: expected one agent in {args.index}, found {sorted(index)}")
    agent, cases = next(iter(index.items()))
    if not cases:
        sys.exit(f"autobahn_check: no cases in {args.index}")

    print(f"Autobahn report for agent {agent!r}: {len(cases)} cases")
    for field in ("behavior", "behaviorClose"):
        counts = collections.Counter(c[field] for c in cases.values())
        print(f"  {field:13}: " + ", ".join(f"{v} {n}" for v, n in counts.most_common()))

    problems = []
    for cid in sorted(cases, key=case_key):
        c = cases[cid]
        if c["behavior"] not in ACCEPTED_BEHAVIOR or c["behaviorClose"] not in ACCEPTED_CLOSE:
            problems.append(f"case {cid}: behavior {c['behavior']}, behaviorClose {c['behaviorClose']}"
                            f" (see {c.get('reportfile', '?')})")

    if args.write_expected:
        expected = {cid: cases[cid]["behavior"] for cid in sorted(cases, key=case_key)}
        with open(args.expected, "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        print(f"  wrote {len(expected)} expectations to {args.expected}")
    elif not os.path.exists(args.expected):
        problems.append(f"no expected file {args.expected}: run once with --write-expected")
    else:
        with open(args.expected) as f:
            expected = json.load(f)
        better = []
        for cid in sorted(expected, key=case_key):
            want = expected[cid]
            got = cases[cid]["behavior"] if cid in cases else "MISSING"
            if RANK.get(got, WORST) > RANK.get(want, WORST):
                problems.append(f"case {cid}: worse than expected: {want} -> {got}")
            elif RANK.get(got, WORST) < RANK.get(want, WORST):
                better.append(f"{cid} ({want} -> {got})")
        new = sorted(set(cases) - set(expected), key=case_key)
        if better:
            print(f"  better than expected (consider --write-expected): {', '.join(better)}")
        if new:
            print(f"  cases not in the expected file: {', '.join(new)}")

    for p in problems:
        print(f"  FAIL {p}")
    if problems:
        print(f"Autobahn: {len(problems)} problem(s)")
        sys.exit(1)
    print("Autobahn: all cases acceptable and none worse than expected")


if __name__ == "__main__":
    main()
