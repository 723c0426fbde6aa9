"""Kubernetes objects in rendered/: reading them fast, and validating them against schemas.

- `objects`: every rendered object with its file, document index and line; a content digest
  per document so that the thousands of identical objects across clusters are checked once.
- `core`: strict schemas of the built-in kinds (the files kubernetes-validate bundles), compiled once.
- `flux`: our own strict schemas of the Flux objects the renderer emits.
- `crd`: the real Flux CRDs → JSON Schema, plus their CEL rules (cel-python).
- `validate`: schema errors → violations (cached by digest) → findings at file:line.
"""
