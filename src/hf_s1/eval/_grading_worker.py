"""Grading subprocess used off the main thread: reads {"gold", "pred"} JSON lines, writes {"correct"} lines."""

import json
import sys

from hf_s1.eval.grading import verify_strings


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            correct = verify_strings(request["gold"], request["pred"])
        except Exception:  # a malformed expression grades as wrong, the worker stays up
            correct = False
        sys.stdout.write(json.dumps({"correct": correct}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
