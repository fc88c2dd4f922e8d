import sys

from devenv.cluster.cluster import main

raise SystemExit(main(sys.argv[1:]))
