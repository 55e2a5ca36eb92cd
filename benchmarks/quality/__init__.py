"""The quality library: what the `quality` scenario (benchmarks/scenarios/quality.py),
`benchmarks.post_corpus` and `benchmarks.injection` use to write and score posts. It imports no
scenario and no harness module.

request_set  the 24 fixed requests with their seeds, and on-topic bodies written by hand
checks       the post contract as pure `check_*` functions (no model; tests/test_quality.py)
embedding    all-MiniLM-L6-v2 sentence embeddings for relevance
generation   posts written in this process exactly as an idle service writes them
evaluation   every post scored (contract, relevance, craft defects) and the report's tables

Import from the module that defines a name; this package re-exports nothing, so importing one
module never pulls in the others (and the package cannot become part of an import loop).
"""
