#!/usr/bin/env python3
"""Summarise one Autobahn Testsuite role from its index.json.

The expected case list is computed independently of the report: the same
spec.json that was given to wstest is expanded by wstest's own code
(autobahntestsuite.caseset.CaseSet.parseSpecCases, exactly as fuzzing.py
does it), run under python2.7. Expected cases that are missing from the
report (e.g. because the implementation crashed mid-run and wstest silently
left them out) count as FAILED.

Per case the verdict is the worst of `behavior` and `behaviorClose`.
Exit status: 0 only if every expected case is OK or INFORMATIONAL;
1 otherwise (NON-STRICT, UNIMPLEMENTED, FAILED or missing all fail);
2 on a usage / tooling error (no report, python2 helper failed, ...).
"""

import argparse
import json
import os
import subprocess
import sys

# Runs under python2.7 with autobahntestsuite importable.
PY2_EXPAND = r"""
import json, sys
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, \
    CaseSetname, CaseBasename
from autobahntestsuite.caseset import CaseSet
spec = json.load(open(sys.argv[1]))
cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
sys.stdout.write(json.dumps(cs.parseSpecCases(spec)))
"""

PASSING = ("OK", "INFORMATIONAL")
CATEGORIES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
# Higher is worse. Anything not listed (WRONG CODE, UNCLEAN, FAILED BY CLIENT,
# NO_CLOSE, unknown strings, missing fields) is treated as FAILED.
SEVERITY = {"OK": 0, "INFORMATIONAL": 1, "NON-STRICT": 2, "UNIMPLEMENTED": 3, "FAILED": 4}


def category(value):
    return value if value in SEVERITY else "FAILED"


def case_key(case_id):
    try:
        return tuple(int(x) for x in case_id.split("."))
    except ValueError:
        return (float("inf"), case_id)


def expected_cases(args):
    if args.expected_file:
        with open(args.expected_file) as f:
            return json.load(f)
    proc = subprocess.run(
        [args.python2, "-c", PY2_EXPAND, args.spec],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace"))
        raise SystemExit("autobahn_summary: expanding the case list with %s failed" % args.python2)
    return json.loads(proc.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", required=True, help="label only: server or client")
    ap.add_argument("--index", required=True, help="path to wstest's index.json")
    ap.add_argument("--spec", required=True, help="the spec.json given to wstest")
    ap.add_argument("--agent", default="wsmachine", help="agent name in index.json")
    ap.add_argument("--python2", default=os.environ.get("AUTOBAHN_PYTHON2", "/usr/bin/python2.7"))
    ap.add_argument("--expected-file", help="JSON list of expected case ids (skips python2)")
    args = ap.parse_args()

    try:
        expected = expected_cases(args)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    if not expected:
        print("autobahn_summary: the spec selects no case at all", file=sys.stderr)
        return 2

    results = {}
    note = ""
    if not os.path.isfile(args.index):
        note = "no report at %s: every expected case counts as missing" % args.index
    else:
        with open(args.index) as f:
            index = json.load(f)
        if args.agent in index:
            results = index[args.agent]
        else:
            note = "agent %r not in report (agents: %s): every expected case counts as missing" % (
                args.agent, ", ".join(sorted(index)) or "none")

    counts = dict.fromkeys(CATEGORIES, 0)
    failing = []   # (id, text)
    missing = []
    for cid in expected:
        r = results.get(cid)
        if r is None:
            missing.append(cid)
            counts["FAILED"] += 1
            failing.append((cid, "MISSING"))
            continue
        b, bc = r.get("behavior"), r.get("behaviorClose")
        worst = max(category(b), category(bc), key=SEVERITY.get)
        counts[worst] += 1
        if worst not in PASSING:
            failing.append((cid, "%s/%s" % (b, bc)))
    extra = sorted(set(results) - set(expected), key=case_key)

    ok = not failing
    print("== Autobahn %s role (agent %s): %d cases expected, %d reported, %d missing"
          % (args.role, args.agent, len(expected), len(expected) - len(missing), len(missing)))
    if note:
        print("   " + note)
    print("   " + "  ".join("%s %d" % (c, counts[c]) for c in CATEGORIES)
          + "   (FAILED includes missing)")
    if failing:
        print("   failing cases (behavior/behaviorClose):")
        line = "    "
        for cid, text in failing:
            item = " %s %s" % (cid, text)
            if len(line) + len(item) > 100:
                print(line)
                line = "    "
            line += item
        print(line)
    if extra:
        print("   note: %d reported cases were not expected: %s" % (len(extra), " ".join(extra[:20])))
    print("   RESULT %s: %s" % (args.role, "PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
