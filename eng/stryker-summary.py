#!/usr/bin/env python3
"""Summarises a Stryker.NET mutation-report.json: score per folder of src/P2PLocal.Rpc and every survivor.

Usage: python3 eng/stryker-summary.py path/to/mutation-report.json [folder ...]
Score = (killed + timeout) / (killed + timeout + survived + no coverage), as Stryker counts it.
"""
import json
import sys
from collections import defaultdict

DETECTED = {"Killed", "Timeout"}
UNDETECTED = {"Survived", "NoCoverage"}


def folder_of(path):
    rel = path.split("src/P2PLocal.Rpc/", 1)[-1]
    return rel.split("/", 1)[0] if "/" in rel else "(node facade)"


def main():
    report = json.load(open(sys.argv[1]))
    wanted = set(sys.argv[2:])
    counts = defaultdict(lambda: defaultdict(int))
    survivors = []
    for path, data in sorted(report["files"].items()):
        folder = folder_of(path)
        if wanted and folder not in wanted:
            continue
        source = data["source"].splitlines()
        for m in data["mutants"]:
            status = m["status"]
            counts[folder][status] += 1
            if status in UNDETECTED:
                line = m["location"]["start"]["line"]
                original = source[line - 1].strip() if line <= len(source) else ""
                survivors.append((path.split("src/P2PLocal.Rpc/", 1)[-1], line, status, m["mutatorName"],
                                  m.get("replacement", "").replace("\n", " ")[:80], original[:90]))
    print("| folder | killed | timeout | survived | no coverage | score |")
    print("| --- | --- | --- | --- | --- | --- |")
    for folder, c in sorted(counts.items()):
        detected = sum(c[s] for s in DETECTED)
        total = detected + sum(c[s] for s in UNDETECTED)
        score = f"{100 * detected / total:.1f}%" if total else "-"
        print(f"| {folder} | {c['Killed']} | {c['Timeout']} | {c['Survived']} | {c['NoCoverage']} | {score} |")
    print()
    print("| where | status | mutation | original -> mutant | decision |")
    print("| --- | --- | --- | --- | --- |")
    for file, line, status, mutator, replacement, original in survivors:
        original = original.replace("|", "\\|")
        replacement = replacement.replace("|", "\\|")
        print(f"| {file}:{line} | {status} | {mutator} | `{original}` -> `{replacement}` | |")


if __name__ == "__main__":
    main()
