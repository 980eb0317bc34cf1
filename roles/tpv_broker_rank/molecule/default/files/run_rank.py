"""Evaluate a deployed TPV Broker rank fragment the way TPV 3.3 evaluates a `rank:` code block
(every statement but the last executed, the last expression evaluated, in one namespace) with
stand-ins for the objects TPV puts in scope, and print the chosen order as JSON.

Not a replacement for tests/tpv (real TPV): this checks that the file the role wrote on a real
host ranks through the broker when it answers and falls back to TPV's order when it does not.

    python3 run_rank.py RANK_CODE_FILE JOB_JSON
JOB_JSON: {"tool_id", "cores", "mem", "candidates": [{"id", "score", "context"}], "datasets": {}}
"""

import ast
import json
import logging
import sys
import types


class Destination:
    def __init__(self, spec: dict):
        self.id = spec["id"]
        self.context = spec.get("context", {})
        self._score = spec.get("score", 0)

    def score(self, entity) -> int:
        return self._score


def main(code_file: str, job_file: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    with open(job_file) as f:
        spec = json.load(f)
    with open(code_file) as f:
        code = f.read()
    tree = ast.parse(code)
    last = tree.body[-1]
    assert isinstance(last, ast.Expr), "the rank block must end with an expression"
    namespace = {
        "candidate_destinations": [Destination(c) for c in spec["candidates"]],
        "entity": types.SimpleNamespace(cores=spec["cores"], mem=spec["mem"], gpus=None),
        "tool": types.SimpleNamespace(id=spec["tool_id"]),
        "job": types.SimpleNamespace(input_datasets=[]),
        "helpers": types.SimpleNamespace(get_dataset_attributes=lambda _: spec["datasets"]),
        "cores": spec["cores"],
        "mem": spec["mem"],
    }
    exec(compile(ast.Module(body=tree.body[:-1], type_ignores=[]), "rank", "exec"), namespace)
    result = eval(compile(ast.Expression(last.value), "rank", "eval"), namespace)
    print(json.dumps([d.id for d in result]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
