import sys

print("the benchmark harness is not written yet", file=sys.stderr)
sys.exit(2)
