"""`python -m hf_s1.hub push|pull ...`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
