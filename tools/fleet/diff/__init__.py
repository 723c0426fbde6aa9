"""`fleet diff`: what a change does to rendered/ and to the telemetry, as a reviewer reads it.

* worktree.py  — the two sides: REF rendered in a temporary git worktree by its own code, the
                 working tree rendered in memory (reusing what `fleet render` would keep);
* grouping.py  — the same change in many clusters (or regions) shown once, then the exceptions;
* telemetry.py — per destination, which jobs and label names can reach it, and the GDPR
                 verdict, before and after (the relabel proof's analyser);
* formats.py   — text, markdown (a bounded PR comment) and json.

`compare.diff(root, ref)` runs it all and returns a `DiffReport`.
"""
