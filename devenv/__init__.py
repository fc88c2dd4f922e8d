"""What developers and users run but the product does not contain: the local cluster
(cluster/), the Zoom simulator (zoomsim/) and the demo (demo.py)."""
