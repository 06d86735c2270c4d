"""A recording stand-in for kubectl / docker (no cluster exists here): appends its argv to $STANDIN_LOG
and answers from the rules in $STANDIN_RULES (first rule whose `match` substrings all occur in the
joined argv wins): stdout, stderr, exit code, optional sleep; a rule with "once" answers one call."""

import json
import os
import sys
import time

name = os.path.basename(sys.argv[0])
argv = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a", encoding="utf-8") as fh:
    fh.write(json.dumps({"tool": name, "argv": argv, "stdin": None}) + "\n")
rules = []
if os.environ.get("STANDIN_RULES") and os.path.exists(os.environ["STANDIN_RULES"]):
    with open(os.environ["STANDIN_RULES"], encoding="utf-8") as fh:
        rules = json.load(fh)
joined = " ".join([name, *argv])
for i, rule in enumerate(rules):
    if all(m in joined for m in rule.get("match", [])):
        if rule.get("once"):  # answers one call, then later rules take over (state that changes)
            del rules[i]
            with open(os.environ["STANDIN_RULES"], "w", encoding="utf-8") as fh:
                json.dump(rules, fh)
        if rule.get("sleep"):
            time.sleep(rule["sleep"])
        sys.stdout.write(rule.get("stdout", ""))
        sys.stderr.write(rule.get("stderr", ""))
        sys.exit(rule.get("exit", 0))
sys.exit(0)
