#!/usr/bin/env python3
"""Write the valid photos that have no augmented copy in train as a manifest of their own.

`acdtcm dataset validate --json` finds copies of one photo across the export by local-feature
matching (the `augmented` check, internal/imgmatch). In ACNE04's Roboflow export 11 valid photos
are linked that way to train photos of other source ids (BENCHMARKS.md, "Valid photos with a
copy in train"). This keeps the valid records outside every such cross-split group, so that
`acdtcm eval` can score the grader on valid photos it has never seen in any form:

    acdtcm dataset validate data/acne04 --json > /tmp/validate.json
    python3 scripts/grader-experiments/unlinked_valid.py /tmp/validate.json data/acne04/manifest.jsonl \
        data/acne04/manifest-valid-unlinked.jsonl
    acdtcm eval --model builtin --data data/acne04/manifest-valid-unlinked.jsonl --split valid --bootstrap 1000

The output keeps the manifest's relative image paths, so write it beside the manifest.
"""
import json
import sys


def main():
    report, manifest, out = sys.argv[1:4]
    linked = set()
    for g in json.load(open(report))["duplicate_groups"]:
        if g["kind"] == "augmented" and len({m["split"] for m in g["members"]}) > 1:
            linked |= {m["image_id"] for m in g["members"] if m["split"] == "valid"}
    kept = 0
    with open(manifest) as f, open(out, "w") as w:
        for line in f:
            r = json.loads(line)
            if r.get("split") == "valid" and r["image_id"] not in linked:
                w.write(line)
                kept += 1
    print(f"{len(linked)} valid photos linked to another split; {kept} kept in {out}")


if __name__ == "__main__":
    main()
