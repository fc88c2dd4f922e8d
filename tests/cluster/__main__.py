import sys

from tests.cluster.cluster import main

raise SystemExit(main(sys.argv[1:]))
